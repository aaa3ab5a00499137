import { createHash } from "node:crypto";
import { expect } from "chai";
import { drawOrder, newDrawSeed } from "../../../server/src/modules/queue/opening-draw.js";

const SEED = "00".repeat(31) + "01";
const ids = (n: number) => Array.from({ length: n }, (_, i) => `tok-${String(i).padStart(4, "0")}`);

describe("the opening draw's shuffle", () => {
  it("is a permutation of the lobby, whatever order the lobby is given in", () => {
    const lobby = ids(50);
    const order = drawOrder(SEED, lobby);
    expect([...order].sort()).to.deep.equal(lobby);
    expect(drawOrder(SEED, [...lobby].reverse())).to.deep.equal(order);
    expect(order).to.not.deep.equal(lobby);
  });

  it("derives the same order from the same seed, and another from another seed", () => {
    const lobby = ids(30);
    expect(drawOrder(SEED, lobby)).to.deep.equal(drawOrder(SEED, lobby));
    expect(drawOrder(newDrawSeed(), lobby)).to.not.deep.equal(drawOrder(SEED, lobby));
  });

  it("follows the documented rule step by step (SHA-1 counter stream, Fisher-Yates)", () => {
    // Three ids: step i = 2 then i = 1, each with its own stream number.
    const lobby = ["c", "a", "b"];
    const order = ["a", "b", "c"];
    let k = 0;
    for (let i = 2; i >= 1; i--) {
      const bound = i + 1;
      const limit = Math.floor(2 ** 52 / bound) * bound;
      let r: number;
      do {
        r = Number.parseInt(
          createHash("sha1").update(`${SEED}:${k++}`).digest("hex").slice(0, 13),
          16,
        );
      } while (r >= limit);
      const j = r % bound;
      [order[i], order[j]] = [order[j] as string, order[i] as string];
    }
    expect(drawOrder(SEED, lobby)).to.deep.equal(order);
  });

  it("handles an empty lobby and a lobby of one", () => {
    expect(drawOrder(SEED, [])).to.deep.equal([]);
    expect(drawOrder(SEED, ["only"])).to.deep.equal(["only"]);
  });

  it("puts each fan first about equally often over many seeds", () => {
    const lobby = ids(4);
    const firsts = new Map<string, number>();
    const runs = 4000;
    for (let run = 0; run < runs; run++) {
      const seed = createHash("sha256").update(`seed-${run}`).digest("hex");
      const first = drawOrder(seed, lobby)[0] as string;
      firsts.set(first, (firsts.get(first) ?? 0) + 1);
    }
    // 1000 expected each; a fair shuffle stays well within ±15%.
    for (const id of lobby) expect(firsts.get(id)).to.be.within(850, 1150);
  });

  it("makes 32-byte seeds as 64 hex digits", () => {
    expect(newDrawSeed()).to.match(/^[0-9a-f]{64}$/);
    expect(newDrawSeed()).to.not.equal(newDrawSeed());
  });
});
