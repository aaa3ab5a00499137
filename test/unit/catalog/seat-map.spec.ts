import { expect } from "chai";
import { ConcertDate } from "../../../server/src/modules/catalog/concert-date.entity.js";
import { parseSeatMap } from "../../../server/src/modules/catalog/index.js";

describe("parseSeatMap", () => {
  it("reads CSV with its header in any order, quoted fields and blank lines", () => {
    const text =
      'price,number,section,row,grade\r\n150000,1,Floor,A,VIP\n\n"80000",2,"Upper ""B""",C,S\n';
    const parsed = parseSeatMap("csv", text);
    expect(parsed.problems).to.deep.equal([]);
    expect(parsed.rows).to.deep.equal([
      { line: 2, section: "Floor", row: "A", number: 1, grade: "VIP", price: 150_000n },
      { line: 4, section: 'Upper "B"', row: "C", number: 2, grade: "S", price: 80_000n },
    ]);
  });

  it("reports every bad CSV row with its line and column, and keeps no rows", () => {
    const text = [
      "section,row,number,grade,price",
      "A,1,1,VIP,100",
      "A,1,0,VIP,100",
      "A,1,2,,100",
      "A,1,3,VIP,-5",
      "A,1,1,R,100",
      "A,1,4,VIP",
      'A,1,"5,VIP,100',
    ].join("\n");
    const parsed = parseSeatMap("csv", text);
    expect(parsed.rows).to.deep.equal([]);
    expect(parsed.problems.map((p) => [p.line, p.field])).to.deep.equal([
      [3, "number"],
      [4, "grade"],
      [5, "price"],
      [6, "number"],
      [7, ""],
      [8, ""],
    ]);
    expect(parsed.problems[3]?.description).to.include("already on line 2");
  });

  it("refuses a CSV without the right header, or without seats", () => {
    expect(parseSeatMap("csv", "section,row,number,grade\nA,1,1,VIP").problems[0]).to.include({
      line: 1,
    });
    expect(
      parseSeatMap("csv", "section,row,number,grade,price\n").problems[0]?.description,
    ).to.equal("the seat map has no seats");
    expect(parseSeatMap("csv", "").problems).to.have.length(1);
  });

  it("reads JSON arrays, numbers as numbers or decimal strings, and numbers problems by position", () => {
    const good = parseSeatMap(
      "json",
      JSON.stringify([
        { section: "S", row: "1", number: 7, grade: "R", price: "110000" },
        { section: "S", row: "1", number: "8", grade: "R", price: 110000 },
      ]),
    );
    expect(good.problems).to.deep.equal([]);
    expect(good.rows.map((r) => [r.number, r.price])).to.deep.equal([
      [7, 110_000n],
      [8, 110_000n],
    ]);
    const bad = parseSeatMap(
      "json",
      JSON.stringify([
        { section: "S", row: "1", number: 1.5, grade: "R", price: 1 },
        "seat",
        { section: "S", row: "1", number: 2, grade: "R", price: 1, colour: "red" },
        { section: "S", row: "1", number: 3, grade: "R\u0007", price: 1 },
      ]),
    );
    expect(bad.problems.map((p) => [p.line, p.field])).to.deep.equal([
      [1, "number"],
      [2, ""],
      [3, "colour"],
      [4, "grade"],
    ]);
    expect(parseSeatMap("json", "{").problems[0]?.description).to.match(/not JSON/);
    expect(parseSeatMap("json", "{}").problems[0]?.description).to.match(/array/);
  });
});

describe("ConcertDate sales", () => {
  const start = new Date("2030-01-08T10:00:00Z");
  it("end at the start, or at the operator's earlier close", () => {
    const plain = new ConcertDate("d", "c", "2030-01-08", start, 1);
    expect(plain.salesEnded(new Date(start.getTime() - 1))).to.equal(false);
    expect(plain.salesEnded(start)).to.equal(true);
    const early = new ConcertDate(
      "d",
      "c",
      "2030-01-08",
      start,
      1,
      new Date("2030-01-07T00:00:00Z"),
    );
    expect(early.salesEnded(new Date("2030-01-06T23:59:59Z"))).to.equal(false);
    expect(early.salesEnded(new Date("2030-01-07T00:00:00Z"))).to.equal(true);
  });
});
