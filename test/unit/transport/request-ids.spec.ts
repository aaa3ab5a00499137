import { expect } from "chai";
import { createRequestIds } from "../../../server/src/app.js";

const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("createRequestIds", () => {
  it("hands out UUID-shaped ids that never repeat within a process", () => {
    const next = createRequestIds();
    const ids = Array.from({ length: 10_000 }, () => next());
    for (const id of ids.slice(0, 3)) expect(id).to.match(UUID_SHAPE);
    expect(new Set(ids).size).to.equal(ids.length);
  });

  it("gives every process (every generator) its own random prefix", () => {
    // Worker processes each create their own generator at start-up.
    const prefixes = new Set(Array.from({ length: 50 }, () => createRequestIds()().slice(0, 24)));
    expect(prefixes.size).to.equal(50);
  });

  it("counts in the last group, so ids sort in the order they were handed out", () => {
    const next = createRequestIds();
    const [a, b, c] = [next(), next(), next()];
    expect(a?.slice(0, 24)).to.equal(c?.slice(0, 24));
    expect([a, b, c]).to.deep.equal([a, b, c].sort());
    expect(a?.slice(24)).to.equal("000000000001");
  });
});
