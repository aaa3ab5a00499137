import { createHash } from "node:crypto";
import type { MemoryQueueStore } from "../../../server/src/modules/queue/memory-queue-store.js";

/** The parts of the store a digest reads (its fields, by name). */
interface Internals {
  readonly tokens: Map<string, Record<string, unknown>>;
  readonly users: Map<string, Map<string, string>>;
  readonly lines: Map<
    string,
    {
      version: number;
      averageMs: number | undefined;
      open: boolean;
      admitted: Set<string>;
      waiting: { inOrder(): Iterable<string> };
    }
  >;
}

/**
 * A hash of everything a store's line is: every token record, every
 * concert's counters and its line in order, and each user's current token.
 * Read synchronously from the store's fields, so it describes exactly one
 * instant (a crash test compares a restored store with the states the
 * crashed one went through).
 */
export function lineDigest(store: MemoryQueueStore): string {
  const { tokens, users, lines } = store as unknown as Internals;
  const byKey = <T>(entries: Iterable<[string, T]>) =>
    [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const text = JSON.stringify({
    tokens: byKey(tokens).map(([id, t]) => [
      id,
      Object.entries(t)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => [k, typeof v === "number" ? String(v) : v]),
    ]),
    lines: byKey(lines).map(([id, line]) => [
      id,
      line.version,
      line.averageMs ?? null,
      line.open,
      [...line.admitted].sort(),
      [...line.waiting.inOrder()],
    ]),
    users: byKey(users)
      .map(([c, u]) => [c, byKey(u)] as const)
      .filter(([, u]) => u.length > 0),
  });
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

/**
 * What must hold in any state of a store: no line admits more than
 * `maxActive`, and the waiting tokens are exactly the ones in the lines.
 */
export function lineInvariants(store: MemoryQueueStore, maxActive: number): string[] {
  const { tokens, lines } = store as unknown as Internals;
  const broken: string[] = [];
  const inLine = new Set<string>();
  for (const [id, line] of lines) {
    if (line.admitted.size > maxActive) broken.push(`${id} admits ${line.admitted.size}`);
    for (const tokenId of line.waiting.inOrder()) inLine.add(tokenId);
  }
  for (const [id, token] of tokens) {
    if ((token.state === "waiting") !== inLine.has(id)) broken.push(`${id} is ${token.state}`);
  }
  return broken;
}
