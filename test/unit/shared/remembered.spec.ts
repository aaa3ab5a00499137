import { expect } from "chai";
import { remembered } from "../../../server/src/shared/remembered.js";

describe("remembered", () => {
  /** A pure function that counts how often it really ran, per input. */
  function counting() {
    const runs = new Map<string, number>();
    const compute = (input: string) => {
      runs.set(input, (runs.get(input) ?? 0) + 1);
      if (input === "bad") throw new RangeError("not an input");
      return { upper: input.toUpperCase() };
    };
    return { runs, compute };
  }

  it("computes an input once and hands every caller the same output", () => {
    const { runs, compute } = counting();
    const upper = remembered(compute);
    const first = upper("a");
    expect(upper("a")).to.equal(first);
    expect(first).to.deep.equal({ upper: "A" });
    expect(upper("b")).to.deep.equal({ upper: "B" });
    expect([...runs]).to.deep.equal([
      ["a", 1],
      ["b", 1],
    ]);
  });

  it("starts again past max inputs, so it never holds more than max", () => {
    const { runs, compute } = counting();
    const upper = remembered(compute, { max: 2 });
    upper("a");
    upper("b");
    upper("c"); // full: forgets a and b, keeps c
    upper("c");
    upper("a");
    expect(runs.get("a")).to.equal(2);
    expect(runs.get("c")).to.equal(1);
  });

  it("never keeps an input longer than maxInputLength, nor a failure", () => {
    const { runs, compute } = counting();
    const upper = remembered(compute, { maxInputLength: 3 });
    upper("long");
    upper("long");
    expect(runs.get("long")).to.equal(2);
    upper("abc");
    upper("abc");
    expect(runs.get("abc")).to.equal(1);
    expect(() => upper("bad")).to.throw(RangeError);
    expect(() => upper("bad")).to.throw(RangeError);
    expect(runs.get("bad")).to.equal(2);
  });
});
