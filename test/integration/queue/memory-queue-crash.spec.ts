import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { MemoryQueueStore } from "../../../server/src/modules/queue/memory-queue-store.js";
import { lineDigest, lineInvariants } from "./memory-queue-digest.js";

const REPO_ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const CHILD = "test/integration/queue/memory-queue-crash-child.ts";
const LIMITS = { maxActive: 5, admissionTtlMs: 5_000, idleMs: 20_000, graceMs: 30_000 };

/** A child's log: the digest of every state it went through, and its finished checkpoints. */
async function readLog(
  file: string,
): Promise<{ states: string[]; done: number; errors: string[] }> {
  const text = await readFile(file, "utf8").catch(() => "");
  const states: string[] = [];
  const errors: string[] = [];
  let done = -1;
  for (const line of text.split("\n")) {
    if (line.startsWith("s ")) states.push(line.slice(2));
    else if (line.startsWith("c ")) done = Math.max(done, Number(line.slice(2)));
    else if (line.startsWith("e ")) errors.push(line);
  }
  return { states, done, errors };
}

/**
 * kill -9 of a process whose in-process line changes without pause while it
 * checkpoints every few milliseconds and compacts its journals often: every
 * restart finds a line the process really had (never a torn one), no older
 * than its last finished checkpoint, and the next run goes on from it.
 */
describe("MemoryQueueStore killed with SIGKILL", () => {
  let dir: string;
  const children = new Set<ChildProcess>();

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-queue-crash-"));
  });
  after(async () => {
    for (const child of children) child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  it("restores a consistent line after each of several crashes", async function () {
    this.timeout(120_000);
    const file = path.join(dir, "queue-state.json");
    // Different moments in the life of the files: early, mid-compaction, later.
    const targets = [150, 900, 400, 1600];
    let previous: string | undefined;
    for (const [run, target] of targets.entries()) {
      const logFile = path.join(dir, `run-${run}.log`);
      const child = spawn(
        process.execPath,
        ["--conditions=stagedoor-source", "--import", "tsx", CHILD, file, logFile, String(run)],
        { cwd: REPO_ROOT, stdio: ["ignore", "ignore", "pipe"] },
      );
      children.add(child);
      let stderr = "";
      child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk;
      });
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      for (;;) {
        const log = await readLog(logFile);
        if (log.states.length >= target && log.done >= 0) break;
        if (child.exitCode !== null) expect.fail(`the child exited early: ${stderr}`);
        await sleep(10);
      }
      child.kill("SIGKILL");
      await exited;
      children.delete(child);

      const log = await readLog(logFile);
      expect(log.errors, "checkpoint failures").to.deep.equal([]);
      // It started from what the previous crash left.
      if (previous !== undefined) expect(log.states[0]).to.equal(previous);
      const restored = new MemoryQueueStore(LIMITS, { persistPath: file });
      const digest = lineDigest(restored);
      const at = log.states.lastIndexOf(digest);
      expect(
        at,
        `run ${run}: a state the process had (${log.states.length} states)`,
      ).to.be.at.least(Math.max(0, log.done));
      expect(lineInvariants(restored, LIMITS.maxActive)).to.deep.equal([]);
      previous = digest;
    }
  });
});
