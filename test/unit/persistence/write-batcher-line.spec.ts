import type { EntityManager } from "@mikro-orm/postgresql";
import { expect } from "chai";
import { WriteBatcher } from "../../../server/src/persistence/write-batcher.js";

/**
 * The batcher's line on its own: a transaction runner that runs the work at
 * once, with no database (the integration specs run real transactions).
 */
describe("WriteBatcher's line", () => {
  const runner = <T>(work: (em: EntityManager) => Promise<T>) => work({} as EntityManager);

  /**
   * A batcher of one lane, held by a first write until `release` is called,
   * so that every write started meanwhile waits in line.
   */
  function heldLane(maxBatch: number) {
    const writes = new WriteBatcher(runner, { lanes: 1, maxBatch, maxWaitMs: 60_000 });
    let release: () => void = () => undefined;
    const held = writes.run(
      "first",
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    );
    return { writes, held, release: () => release() };
  }

  it("serves a line of 200,000 writes, in order, batches of the first ones waiting", async () => {
    const { writes, held, release } = heldLane(16);
    const order: number[] = [];
    const all = Array.from({ length: 200_000 }, (_, i) =>
      writes.run(`fan-${i}`, async () => {
        order.push(i);
        return i;
      }),
    );
    expect(writes.load.waiting).to.equal(200_000);
    release();
    await held;
    const results = await Promise.all(all);
    expect(results[199_999]).to.equal(199_999);
    // Batches are sorted by key inside, but each takes the oldest waiting.
    const firstBatch = order.slice(0, 16).sort((a, b) => a - b);
    expect(firstBatch).to.deep.equal(Array.from({ length: 16 }, (_, i) => i));
    expect(writes.load.waiting).to.equal(0);
  });

  it("keeps a key's later writes in line, in order, behind the batch that took its first", async () => {
    const { writes, held, release } = heldLane(4);
    const order: string[] = [];
    const write = (key: string, label: string) =>
      writes.run(key, async () => {
        order.push(label);
      });
    const started = [
      write("a", "a1"),
      write("a", "a2"),
      write("b", "b1"),
      write("a", "a3"),
      write("c", "c1"),
      write("d", "d1"),
      write("e", "e1"),
    ];
    release();
    await held;
    await Promise.all(started);
    // First batch: a1 b1 c1 d1 (a2 and a3 wait for a1); then a2 e1; then a3.
    expect(order).to.deep.equal(["a1", "b1", "c1", "d1", "a2", "e1", "a3"]);
  });
});
