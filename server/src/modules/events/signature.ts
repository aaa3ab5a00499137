import { createHmac, timingSafeEqual } from "node:crypto";

/** The header that carries a webhook's signature: `t=<unix seconds>,v1=<hex>`. */
export const SIGNATURE_HEADER = "Stagedoor-Signature";
/** The header that carries the event id (the same as the body's `id`). */
export const EVENT_ID_HEADER = "Stagedoor-Event-Id";

/** The hex HMAC-SHA256 of `<t>.<body>` under the secret. */
function mac(secret: string, t: number, body: string): string {
  return createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
}

/**
 * The signature header of a webhook body sent at `t` (unix seconds). The
 * timestamp is signed with the body, so a receiver can refuse replays of an
 * old delivery (see {@link verifyWebhookSignature}).
 */
export function signWebhook(secret: string, body: string, t: number): string {
  return `t=${t},v1=${mac(secret, t, body)}`;
}

/**
 * What a receiver does with a delivery (exported for receivers written in
 * TypeScript, and for the tests): parse `t` and every `v1` from the header,
 * refuse a `t` further than `toleranceSeconds` from its own clock, recompute
 * the HMAC over `<t>.<raw body>` and compare in constant time. The raw body
 * is the bytes as received, before any JSON parsing.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined,
  body: string,
  nowSeconds: number,
  toleranceSeconds = 300,
): boolean {
  if (header === undefined) return false;
  let t: number | undefined;
  const candidates: string[] = [];
  for (const part of header.split(",")) {
    const [key, value = ""] = part.trim().split("=", 2);
    if (key === "t" && /^\d{1,12}$/.test(value)) t = Number(value);
    if (key === "v1" && /^[0-9a-f]{64}$/.test(value)) candidates.push(value);
  }
  if (t === undefined || Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = Buffer.from(mac(secret, t, body), "hex");
  return candidates.some((candidate) => timingSafeEqual(Buffer.from(candidate, "hex"), expected));
}
