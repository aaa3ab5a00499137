/**
 * `npm run bench:checkpoint`: what the in-process store's checkpoint costs the
 * event loop with a big line. Builds a MemoryQueueStore on a file in a temp
 * folder with CHECKPOINT_TOKENS (200,000) tokens in one concert
 * (CHECKPOINT_MAX_ACTIVE admitted, the rest waiting), then checkpoints it as
 * the server does every 2 s, in rounds:
 *
 * - "idle": the admitter ran 8 times (every 250 ms) and nothing changed;
 * - "busy": 2 s of a live sale: the admitter, CHECKPOINT_TOUCHES waiters
 *   whose watch streams or polls moved their idle clock, CHECKPOINT_ARRIVALS
 *   new fans, a few leaving and paying (each payment admits the next);
 *
 * and prints, per kind of round, the longest event-loop block during a
 * checkpoint (perf_hooks monitorEventLoopDelay, 1 ms resolution), the time a
 * checkpoint took and the bytes it wrote. The workload itself runs before the
 * measurement of each round and is not counted.
 *
 * A benchmark, not a test: it prints figures and asserts only that a restart
 * from the files restores the same line. CHECKPOINT_STORE_MODULE names
 * another module exporting MemoryQueueStore to measure instead (e.g. a copy
 * of an earlier version, for a before/after).
 */
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import type { QueueLimits, QueueStore } from "../../server/src/modules/queue/queue-store.js";
import { fmt, formatTable, percentile } from "./load.js";

const TOKENS = Number(process.env.CHECKPOINT_TOKENS ?? 200_000);
const MAX_ACTIVE = Number(process.env.CHECKPOINT_MAX_ACTIVE ?? 5_000);
const ROUNDS = Number(process.env.CHECKPOINT_ROUNDS ?? 100);
const TOUCHES = Number(process.env.CHECKPOINT_TOUCHES ?? 4_000);
const ARRIVALS = Number(process.env.CHECKPOINT_ARRIVALS ?? 500);
/** Ids shaped like the server's: a UUID concert, 128-bit hex token ids, base64url SHA-256 hashes. */
const CONCERT = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9e01";
const tokenIdOf = (n: number) => createHash("md5").update(`token ${n}`).digest("hex");
const hashOf = (n: number) => createHash("sha256").update(`token ${n}`).digest("base64url");

interface CheckpointingStore extends QueueStore {
  checkpoint(): Promise<void>;
}
type StoreClass = new (
  limits: QueueLimits,
  options: { persistPath?: string },
) => CheckpointingStore;

interface Round {
  readonly kind: string;
  readonly blockMs: number;
  readonly wallMs: number;
  readonly bytes: number;
}

async function folderBytes(dir: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const name of await readdir(dir)) sizes.set(name, (await stat(path.join(dir, name))).size);
  return sizes;
}

/** Bytes written between two listings: grown files, and new files (a rewritten snapshot) whole. */
function written(before: Map<string, number>, after: Map<string, number>, rewrote: boolean) {
  let bytes = 0;
  for (const [name, size] of after) {
    const old = before.get(name);
    bytes += old === undefined || (rewrote && !name.endsWith(".journal")) ? size : size - old;
  }
  return Math.max(0, bytes);
}

async function main(): Promise<void> {
  const other = process.env.CHECKPOINT_STORE_MODULE;
  const modulePath = other ?? "server/src/modules/queue/memory-queue-store.ts";
  const moduleUrl =
    other === undefined
      ? new URL("../../server/src/modules/queue/memory-queue-store.js", import.meta.url).href
      : pathToFileURL(path.resolve(other)).href;
  const { MemoryQueueStore } = (await import(moduleUrl)) as { MemoryQueueStore: StoreClass };
  const dir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-bench-checkpoint-"));
  const file = path.join(dir, "queue-state.json");
  const limits: QueueLimits = {
    maxActive: MAX_ACTIVE,
    admissionTtlMs: 600_000,
    idleMs: 300_000,
    graceMs: 3_600_000,
  };
  try {
    const store = new MemoryQueueStore(limits, { persistPath: file });
    let now = Date.UTC(2030, 0, 1);
    let n = 0;
    /** Token numbers (see tokenIdOf and hashOf). */
    const waiting: number[] = [];
    const admitted: number[] = [];
    const join = async () => {
      n++;
      const { snapshot } = await store.issue({
        concertId: CONCERT,
        userId: `fan-${n}`,
        tokenId: tokenIdOf(n),
        tokenHash: hashOf(n),
        now,
      });
      (snapshot.state === "admitted" ? admitted : waiting).push(n);
    };
    let started = performance.now();
    for (let i = 0; i < TOKENS; i++) await join();
    console.log(
      `built a line of ${fmt(TOKENS)} tokens (${fmt(admitted.length)} admitted) in ${fmt(
        (performance.now() - started) / 1000,
        1,
      )} s (${modulePath})`,
    );

    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const measure = async (kind: string): Promise<Round> => {
      await nextTurn();
      const before = await folderBytes(dir);
      const snapshotBefore = before.get("queue-state.json");
      const mtimeBefore = await stat(file).then(
        (s) => s.mtimeMs,
        () => 0,
      );
      // The histogram measures between two of its own ticks, so it needs a
      // tick after reset() (or it misses a block that starts at once) and
      // one after the checkpoint (or it misses the last block).
      delay.reset();
      await sleep(5);
      started = performance.now();
      await store.checkpoint();
      const wallMs = performance.now() - started;
      await sleep(5);
      const blockMs = delay.max / 1e6;
      const after = await folderBytes(dir);
      const mtimeAfter = await stat(file).then(
        (s) => s.mtimeMs,
        () => 0,
      );
      const rewrote =
        mtimeAfter !== mtimeBefore || after.get("queue-state.json") !== snapshotBefore;
      return {
        kind: rewrote && kind === "busy" ? "busy (snapshot written)" : kind,
        blockMs,
        wallMs,
        bytes: written(before, after, rewrote),
      };
    };

    const rounds: Round[] = [];
    rounds.push(await measure("first (the whole line is new)"));
    let seed = 12345;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    for (let round = 0; round < ROUNDS; round++) {
      const busy = round % 3 !== 2;
      if (busy) {
        now += 2_000;
        for (let i = 0; i < TOUCHES; i++) {
          const fan = waiting[Math.floor(random() * waiting.length)] as number;
          await store.lookup(CONCERT, hashOf(fan), now - Math.floor(random() * 2_000), true);
        }
        for (let i = 0; i < ARRIVALS; i++) await join();
        for (let i = 0; i < ARRIVALS / 5; i++) {
          const at = Math.floor(random() * waiting.length);
          const [gone] = waiting.splice(at, 1);
          if (gone !== undefined) await store.leave(CONCERT, tokenIdOf(gone), now);
        }
        for (let i = 0; i < 50 && admitted.length > 0; i++) {
          const paid = admitted.shift() as number;
          await store.complete(CONCERT, tokenIdOf(paid), now);
        }
      }
      for (let i = 0; i < 8; i++) await store.promote(CONCERT, now);
      rounds.push(await measure(busy ? "busy" : "idle (the admitter only)"));
    }
    delay.disable();

    const kinds = [...new Set(rounds.map((round) => round.kind))];
    console.log(
      `\ncheckpoints of a ${fmt(TOKENS)}-token line (${fmt(ROUNDS)} rounds; busy: ${fmt(
        TOUCHES,
      )} touches, ${fmt(ARRIVALS)} arrivals, ${fmt(ARRIVALS / 5)} leaves, 50 payments per 2 s):`,
    );
    console.log(
      formatTable(
        [
          "round",
          "n",
          "longest block ms (max)",
          "block p50 ms",
          "checkpoint ms (p50)",
          "MB written (p50)",
        ],
        kinds.map((kind) => {
          const of = rounds.filter((round) => round.kind === kind);
          const sorted = (pick: (r: Round) => number) => of.map(pick).sort((a, b) => a - b);
          const blocks = sorted((r) => r.blockMs);
          return [
            kind,
            fmt(of.length),
            fmt(blocks.at(-1) ?? 0, 1),
            fmt(percentile(blocks, 50), 1),
            fmt(
              percentile(
                sorted((r) => r.wallMs),
                50,
              ),
              0,
            ),
            fmt(
              percentile(
                sorted((r) => r.bytes),
                50,
              ) / 1e6,
              2,
            ),
          ];
        }),
      ),
    );

    // The files restore the line the store has.
    const ids = [...waiting.slice(0, 1000), ...waiting.slice(-1000)].map(tokenIdOf);
    const live = await store.snapshots(CONCERT, ids, now, false);
    await store.close();
    const reopened = new MemoryQueueStore(limits, { persistPath: file });
    const restored = await reopened.snapshots(CONCERT, ids, now, false);
    const same = JSON.stringify([...live]) === JSON.stringify([...restored]);
    console.log(`\nrestart from the files: ${same ? "same line" : "DIFFERENT LINE"}`);
    if (!same) process.exitCode = 1;
    await reopened.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
