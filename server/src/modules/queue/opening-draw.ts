import { createHash } from "node:crypto";
import { randomHex } from "../../shared/random-hex.js";

/**
 * The opening draw's shuffle, the one rule both queue stores follow (the
 * Redis store's Lua copy is `drawLobby` in lua/prelude.lua) and the rule an
 * auditor re-derives an order with: the lobby's token ids sorted ascending
 * (byte order; ids are ASCII), then a Fisher–Yates shuffle from the last
 * position down, where step i (n-1 down to 1) swaps position i with j drawn
 * uniformly from 0..i.
 *
 * The random numbers are a counter-mode stream over the seed: the k-th
 * number (k = 0, 1, ...) is the first 13 hex digits (52 bits) of
 * SHA-1(`<seed hex>:<k>`). j is that number modulo i + 1, after rejecting
 * numbers at or above the largest multiple of i + 1 below 2^52 (no modulo
 * bias). SHA-1 because it is the hash Redis's Lua offers (`redis.sha1hex`);
 * the unpredictability comes from the 32-byte secret-until-drawn seed, not
 * from the hash's collision resistance.
 */
export function drawOrder(seed: string, tokenIds: readonly string[]): string[] {
  const order = [...tokenIds].sort(byteOrder);
  let counter = 0;
  for (let i = order.length - 1; i >= 1; i--) {
    const bound = i + 1;
    const limit = Math.floor(TWO_52 / bound) * bound;
    let r: number;
    do {
      r = Number.parseInt(
        createHash("sha1").update(`${seed}:${counter++}`).digest("hex").slice(0, 13),
        16,
      );
    } while (r >= limit);
    const j = r % bound;
    const swap = order[i] as string;
    order[i] = order[j] as string;
    order[j] = swap;
  }
  return order;
}

/**
 * A fresh draw seed: 32 crypto-random bytes as 64 lowercase hex digits. One
 * rides along with every issue and promotion step, so it comes from the
 * batched pool (see `randomHex`), not one CSPRNG call each.
 */
export function newDrawSeed(): string {
  return randomHex(32);
}

const TWO_52 = 2 ** 52;

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
