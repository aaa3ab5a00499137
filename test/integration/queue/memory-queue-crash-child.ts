/**
 * The process memory-queue-crash.spec.ts kills with SIGKILL: a
 * MemoryQueueStore on a file, changed by random calls as fast as it goes,
 * checkpointed every few milliseconds (compacting often). Appends to the log
 * file, synchronously, `s <digest>` after every call (the state it left) and
 * `c <i>` when a checkpoint that started at state i is on disk.
 *
 * Arguments: the store's file, the log file, a run number (for unique ids).
 */
import { openSync, writeSync } from "node:fs";
import { setImmediate as nextTurn } from "node:timers/promises";
import { MemoryQueueStore } from "../../../server/src/modules/queue/memory-queue-store.js";
import { lineDigest } from "./memory-queue-digest.js";

const [file, logFile, run] = process.argv.slice(2) as [string, string, string];
const log = openSync(logFile, "a");
const limits = { maxActive: 5, admissionTtlMs: 5_000, idleMs: 20_000, graceMs: 30_000 };
const store = new MemoryQueueStore(limits, { persistPath: file, compactAfterBytes: 32 * 1024 });
const concerts = ["concert-a", "concert-b"];
let now = Date.UTC(2030, 0, 1) + Number(run) * 3_600_000;
let states = 0;
let seed = Number(run) * 7919 + 1;
const random = () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
  return seed / 2_147_483_648;
};
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const issued: { concertId: string; tokenId: string; hash: string }[] = [];

function state(): void {
  writeSync(log, `s ${lineDigest(store)}\n`);
  states++;
}

state();
setInterval(() => {
  const at = states - 1;
  store.checkpoint().then(
    () => writeSync(log, `c ${at}\n`),
    (error: unknown) => writeSync(log, `e ${String(error)}\n`),
  );
}, 3);

for (let n = 0; ; n++) {
  const r = random();
  const concertId = pick(concerts);
  const known = issued.length > 0 ? pick(issued) : undefined;
  // Each call changes the store synchronously; its promise is awaited after
  // the state is logged, so the log holds every state the store went through.
  let call: Promise<unknown>;
  if (r < 0.4 || known === undefined) {
    const tokenId = `tok-${run}-${n}`;
    const hash = `hash-${run}-${n}`;
    issued.push({ concertId, tokenId, hash });
    const userId = `user-${Math.floor(random() * 400)}`;
    call = store.issue({ concertId, userId, tokenId, tokenHash: hash, now });
  } else if (r < 0.55) {
    call = store.lookup(known.concertId, known.hash, now, true);
  } else if (r < 0.65) {
    call = store.leave(known.concertId, known.tokenId, now);
  } else if (r < 0.75) {
    call = store.complete(known.concertId, known.tokenId, now);
  } else if (r < 0.95) {
    call = store.promote(concertId, now);
  } else {
    now += Math.floor(random() * 8_000);
    call = Promise.resolve();
  }
  state();
  await call.catch(() => undefined);
  if (n % 4 === 0) await nextTurn();
}
