import { expect } from "chai";
import { SingleFlight } from "../../../server/src/shared/single-flight.js";

/** A load that settles only when told to, counting how often it was started. */
function gatedLoad<V>() {
  let starts = 0;
  let settle: { resolve(value: V): void; reject(error: Error): void } | undefined;
  return {
    load: () => {
      starts += 1;
      return new Promise<V>((resolve, reject) => {
        settle = { resolve, reject };
      });
    },
    starts: () => starts,
    resolve: (value: V) => settle?.resolve(value),
    reject: (error: Error) => settle?.reject(error),
  };
}

describe("SingleFlight", () => {
  it("starts one load for every caller of a key while it runs, and hands them all its result", async () => {
    const flight = new SingleFlight<string, number>();
    const gated = gatedLoad<number>();
    const calls = Array.from({ length: 20 }, () => flight.run("a", gated.load));
    expect(gated.starts()).to.equal(1);
    expect(flight.size).to.equal(1);
    gated.resolve(42);
    expect(await Promise.all(calls)).to.deep.equal(Array(20).fill(42));
    expect(flight.size).to.equal(0);
  });

  it("keeps nothing: a call after the load settled starts a new one", async () => {
    const flight = new SingleFlight<string, number>();
    const first = gatedLoad<number>();
    const pending = flight.run("a", first.load);
    first.resolve(1);
    await pending;
    const second = gatedLoad<number>();
    const again = flight.run("a", second.load);
    expect(second.starts()).to.equal(1);
    second.resolve(2);
    expect(await again).to.equal(2);
  });

  it("gives every sharer a failed load's error, then lets the next call try again", async () => {
    const flight = new SingleFlight<string, number>();
    const failing = gatedLoad<number>();
    const calls = [flight.run("a", failing.load), flight.run("a", failing.load)];
    failing.reject(new Error("database down"));
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.map((o) => o.status)).to.deep.equal(["rejected", "rejected"]);
    expect(flight.size).to.equal(0);
    const retry = gatedLoad<number>();
    const next = flight.run("a", retry.load);
    retry.resolve(7);
    expect(await next).to.equal(7);
    expect(failing.starts()).to.equal(1);
  });

  it("runs the loads of different keys side by side", async () => {
    const flight = new SingleFlight<string, string>();
    const a = gatedLoad<string>();
    const b = gatedLoad<string>();
    const calls = [flight.run("a", a.load), flight.run("b", b.load)];
    expect([a.starts(), b.starts()]).to.deep.equal([1, 1]);
    b.resolve("B");
    a.resolve("A");
    expect(await Promise.all(calls)).to.deep.equal(["A", "B"]);
  });
});
