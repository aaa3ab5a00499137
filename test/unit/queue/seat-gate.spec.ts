import { expect } from "chai";
import {
  contiguous,
  gateRefuses,
  type SeatGateEntry,
  supersedes,
} from "../../../server/src/modules/queue/seat-gate.js";

const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);

function entry(fields: Partial<SeatGateEntry>): SeatGateEntry {
  return { seatVersion: 3, state: "free", heldUntil: 0, owner: "", ...fields };
}

describe("gateRefuses", () => {
  const cases: [string, SeatGateEntry | null, boolean][] = [
    ["no entry (the gate knows nothing)", null, false],
    [
      "the caller's own hold",
      entry({ state: "held", heldUntil: NOW + 60_000, owner: "me" }),
      false,
    ],
    ["the caller's own sold seat", entry({ state: "sold", owner: "me" }), false],
    ["a seat sold to someone else", entry({ state: "sold", owner: "other" }), true],
    [
      "a seat held by someone else until one ms ahead",
      entry({ state: "held", heldUntil: NOW + 1, owner: "other" }),
      true,
    ],
    [
      "a seat held by someone else until exactly now (expired)",
      entry({ state: "held", heldUntil: NOW, owner: "other" }),
      false,
    ],
    [
      "a seat held by someone else until the past",
      entry({ state: "held", heldUntil: NOW - 1, owner: "other" }),
      false,
    ],
    ["a free seat", entry({ state: "free" }), false],
    ["a seat the gate marked unknown", entry({ state: "unknown" }), false],
    [
      "an unknown entry that still carries another user's name",
      entry({ state: "unknown", heldUntil: NOW + 60_000, owner: "other" }),
      false,
    ],
  ];

  for (const [name, gateEntry, refused] of cases) {
    it(`${refused ? "refuses" : "lets through"} ${name}`, () => {
      expect(gateRefuses(gateEntry, "me", NOW)).to.equal(refused);
    });
  }
});

describe("supersedes", () => {
  it("a change always replaces no entry", () => {
    expect(supersedes({ seatVersion: 1 }, null)).to.equal(true);
  });

  it("only a strictly newer row version replaces an entry", () => {
    const current = entry({ seatVersion: 5 });
    expect(supersedes({ seatVersion: 6 }, current)).to.equal(true);
    expect(supersedes({ seatVersion: 5 }, current)).to.equal(false);
    expect(supersedes({ seatVersion: 4 }, current)).to.equal(false);
  });

  it("compares versions only, whatever the states", () => {
    expect(supersedes({ seatVersion: 2 }, entry({ seatVersion: 1, state: "unknown" }))).to.equal(
      true,
    );
    expect(supersedes({ seatVersion: 1 }, entry({ seatVersion: 1, state: "unknown" }))).to.equal(
      false,
    );
  });
});

describe("contiguous", () => {
  const numbered = (...ns: number[]) => ns.map((n) => ({ n }));

  it("is empty when the asker is at the current version", () => {
    expect(contiguous([], 7, 7)).to.deep.equal([]);
    expect(contiguous([], 0, 0)).to.deep.equal([]);
  });

  it("returns exactly the changes after + 1 … version, as a copy", () => {
    const changes = numbered(4, 5, 6);
    const out = contiguous(changes, 3, 6);
    expect(out).to.deep.equal(numbered(4, 5, 6));
    expect(out).not.to.equal(changes);
  });

  it("is null when the first change is missing (the log was trimmed)", () => {
    expect(contiguous(numbered(5, 6), 3, 6)).to.equal(null);
  });

  it("is null when the log has nothing although the version moved on", () => {
    expect(contiguous([], 3, 6)).to.equal(null);
  });

  it("is null when a change in the middle is missing", () => {
    expect(contiguous(numbered(4, 6), 3, 6)).to.equal(null);
  });

  it("is null when the version is behind the asker (the counter started again)", () => {
    expect(contiguous([], 9, 6)).to.equal(null);
    expect(contiguous(numbered(1, 2), 9, 2)).to.equal(null);
  });
});
