import { expect } from "chai";
import {
  DateListing,
  type SeatStateRow,
} from "../../../server/src/modules/catalog/date-listing.js";
import { DateSeats } from "../../../server/src/modules/catalog/date-seats.js";
import type { SeatStatus } from "../../../server/src/modules/catalog/seat.entity.js";
import type { SeatChange } from "../../../server/src/modules/queue/seat-gate.js";

const DATE = "date-1";
const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);

/** `count` seats numbered `numberOf(i)`, ids `s-<number>`. */
function seatsOf(count: number, numberOf: (i: number) => number = (i) => i + 1): DateSeats {
  return new DateSeats(
    DATE,
    Array.from({ length: count }, (_, i) => ({
      id: `s-${numberOf(i)}`,
      number: numberOf(i),
      grade: i % 2 === 0 ? "R" : "S",
      price: String(10_000 + i),
    })),
  );
}

/** A snapshot row of every seat: AVAILABLE at version 1 unless `overrides` says otherwise. */
function rowsOf(
  seats: DateSeats,
  overrides: Record<string, Partial<SeatStateRow>> = {},
  skip: ReadonlySet<string> = new Set(),
): SeatStateRow[] {
  return seats.ids
    .filter((id) => !skip.has(id))
    .map((id) => ({
      id,
      status: "AVAILABLE" as SeatStatus,
      version: 1,
      held_until_ms: null,
      ...overrides[id],
    }));
}

function listingOf(
  seats: DateSeats,
  overrides: Record<string, Partial<SeatStateRow>> = {},
  skip: ReadonlySet<string> = new Set(),
): DateListing {
  return new DateListing(seats, "epoch-1", 0, NOW, rowsOf(seats, overrides, skip));
}

function change(seatId: string, seatVersion: number, fields: Partial<SeatChange> = {}): SeatChange {
  return { seatId, seatVersion, state: "sold", heldUntil: 0, owner: "", ...fields };
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("DateListing", () => {
  describe("availability", () => {
    it("counts the bookable seats and lists their numbers per block of 256", () => {
      const seats = seatsOf(600); // blocks: 1-256, 257-512, 513-600
      const listing = listingOf(seats, {
        "s-1": { status: "SOLD" },
        "s-2": { status: "HELD", held_until_ms: NOW + 60_000 },
        "s-3": { status: "HELD", held_until_ms: NOW - 1 }, // expired: bookable
        "s-300": { status: "SOLD" },
        "s-600": { status: "HELD", held_until_ms: NOW + 1 },
      });
      const availability = listing.availability(NOW);
      expect(availability.blocks).to.have.length(3);
      expect(availability.blocks[0]?.numbers).to.deep.equal(range(3, 256));
      expect(availability.blocks[1]?.numbers).to.deep.equal([
        ...range(257, 299),
        ...range(301, 512),
      ]);
      expect(availability.blocks[2]?.numbers).to.deep.equal(range(513, 599));
      expect(availability.count).to.equal(600 - 4);
    });

    it("lists the seats' numbers, not their positions", () => {
      const seats = seatsOf(5, (i) => (i + 1) * 10);
      const listing = listingOf(seats, { "s-20": { status: "SOLD" } });
      expect(listing.availability(NOW)).to.deep.equal({
        count: 4,
        blocks: [{ numbers: [10, 30, 40, 50] }],
      });
    });

    it("has no blocks for a date without seats", () => {
      expect(listingOf(seatsOf(0)).availability(NOW)).to.deep.equal({ count: 0, blocks: [] });
    });

    it("makes an expired hold bookable at exactly its held-until time", () => {
      const seats = seatsOf(3);
      const until = NOW + 5_000;
      const listing = listingOf(seats, { "s-2": { status: "HELD", held_until_ms: until } });

      expect(listing.availability(until - 1).blocks[0]?.numbers).to.deep.equal([1, 3]);
      expect(listing.stateAt(1, until - 1)).to.equal("HELD");
      expect(listing.bookableAfter(0, 10, until - 1).map((s) => s.number)).to.deep.equal([1, 3]);

      expect(listing.availability(until)).to.deep.equal({
        count: 3,
        blocks: [{ numbers: [1, 2, 3] }],
      });
      expect(listing.stateAt(1, until)).to.equal("AVAILABLE");
      expect(listing.bookableAfter(0, 10, until).map((s) => s.number)).to.deep.equal([1, 2, 3]);
    });

    it("makes a hold applied from the log expire the same way", () => {
      const seats = seatsOf(2);
      const listing = listingOf(seats);
      const until = NOW + 1_000;
      listing.apply(change("s-1", 2, { state: "held", heldUntil: until, owner: "ann" }));
      expect(listing.availability(until - 1).count).to.equal(1);
      expect(listing.availability(until).count).to.equal(2);
    });

    it("returns the same object, blocks included, until something changes", () => {
      const listing = listingOf(seatsOf(600));
      const first = listing.availability(NOW);
      const later = listing.availability(NOW + 3_600_000); // no hold to expire: nothing changed
      expect(later).to.equal(first);
      expect(later.blocks[0]).to.equal(first.blocks[0]);
    });

    it("replaces only the block a change touched", () => {
      const listing = listingOf(seatsOf(600));
      const before = listing.availability(NOW);
      listing.apply(change("s-300", 2)); // block 1
      const after = listing.availability(NOW);
      expect(after).not.to.equal(before);
      expect(after.count).to.equal(599);
      expect(after.blocks[0]).to.equal(before.blocks[0]);
      expect(after.blocks[2]).to.equal(before.blocks[2]);
      expect(after.blocks[1]).not.to.equal(before.blocks[1]);
      expect(after.blocks[1]?.numbers).not.to.include(300);
      // The earlier object was not changed in place.
      expect(before.count).to.equal(600);
      expect(before.blocks[1]?.numbers).to.include(300);
    });

    it("replaces only the block whose hold expired, when it expires", () => {
      const until = NOW + 10_000;
      const listing = listingOf(seatsOf(600), {
        "s-520": { status: "HELD", held_until_ms: until },
      });
      const before = listing.availability(NOW);
      expect(before.count).to.equal(599);
      expect(listing.availability(until - 1)).to.equal(before);

      const after = listing.availability(until);
      expect(after).not.to.equal(before);
      expect(after.count).to.equal(600);
      expect(after.blocks[0]).to.equal(before.blocks[0]);
      expect(after.blocks[1]).to.equal(before.blocks[1]);
      expect(after.blocks[2]?.numbers).to.include(520);
      expect(listing.availability(until + 1)).to.equal(after);
    });
  });

  describe("apply", () => {
    it("applies a newer change and ignores an older or equal one", () => {
      const listing = listingOf(seatsOf(3), { "s-2": { version: 5 } });
      const before = listing.availability(NOW);

      listing.apply(change("s-2", 4)); // older than the snapshot's row
      listing.apply(change("s-2", 5)); // the snapshot already has it
      expect(listing.stateAt(1, NOW)).to.equal("AVAILABLE");
      expect(listing.availability(NOW)).to.equal(before);

      listing.apply(change("s-2", 6, { state: "held", heldUntil: NOW + 1_000, owner: "ann" }));
      expect(listing.stateAt(1, NOW)).to.equal("HELD");
      listing.apply(change("s-2", 5, { state: "free" })); // a late, older write
      expect(listing.stateAt(1, NOW)).to.equal("HELD");

      listing.apply(change("s-2", 7, { state: "free" }));
      expect(listing.stateAt(1, NOW)).to.equal("AVAILABLE");
    });

    it("ignores a change of a seat the date does not have", () => {
      const listing = listingOf(seatsOf(2));
      const before = listing.availability(NOW);
      listing.apply(change("s-99", 9));
      expect(listing.availability(NOW)).to.equal(before);
    });
  });

  describe("seats missing from the snapshot", () => {
    it("are never bookable", () => {
      const seats = seatsOf(4);
      const listing = listingOf(seats, {}, new Set(["s-2", "s-4"]));
      expect(listing.availability(NOW)).to.deep.equal({ count: 2, blocks: [{ numbers: [1, 3] }] });
      expect(listing.stateAt(1, NOW)).to.equal("SOLD");
      expect(listing.bookableAfter(0, 10, NOW).map((s) => s.id)).to.deep.equal(["s-1", "s-3"]);
      expect(listing.seatsAfter(0, 10, NOW).map((s) => s.state)).to.deep.equal([
        "AVAILABLE",
        "SOLD",
        "AVAILABLE",
        "SOLD",
      ]);
    });

    it("ignore snapshot rows of seats the date does not have", () => {
      const seats = seatsOf(2);
      const rows = [
        ...rowsOf(seats),
        { id: "s-77", status: "AVAILABLE" as const, version: 1, held_until_ms: null },
      ];
      const listing = new DateListing(seats, "epoch-1", 0, NOW, rows);
      expect(listing.availability(NOW).count).to.equal(2);
    });
  });

  describe("paging", () => {
    // Seat numbers with gaps: 10, 20, … 100.
    const seats = seatsOf(10, (i) => (i + 1) * 10);
    const listing = listingOf(seats, {
      "s-20": { status: "SOLD" },
      "s-50": { status: "HELD", held_until_ms: NOW + 1_000 },
      "s-60": { status: "HELD", held_until_ms: NOW - 1_000 },
    });

    it("bookableAfter pages through bookable seats by number", () => {
      const numbers = (after: number, limit: number) =>
        listing.bookableAfter(after, limit, NOW).map((seat) => seat.number);
      expect(numbers(0, 3)).to.deep.equal([10, 30, 40]);
      expect(numbers(40, 3)).to.deep.equal([60, 70, 80]);
      expect(numbers(80, 3)).to.deep.equal([90, 100]);
      expect(numbers(100, 3)).to.deep.equal([]);
      expect(numbers(45, 1)).to.deep.equal([60]); // between two numbers
      expect(numbers(0, 0)).to.deep.equal([]);
    });

    it("bookableAfter returns the seats' facts", () => {
      expect(listing.bookableAfter(20, 1, NOW)).to.deep.equal([
        { id: "s-30", concertDateId: DATE, number: 30, grade: "R", price: 10_002n },
      ]);
    });

    it("seatsAfter pages through every seat with its state", () => {
      const page = (after: number, limit: number) =>
        listing.seatsAfter(after, limit, NOW).map(({ seat, state }) => [seat.number, state]);
      expect(page(0, 4)).to.deep.equal([
        [10, "AVAILABLE"],
        [20, "SOLD"],
        [30, "AVAILABLE"],
        [40, "AVAILABLE"],
      ]);
      expect(page(40, 3)).to.deep.equal([
        [50, "HELD"],
        [60, "AVAILABLE"],
        [70, "AVAILABLE"],
      ]);
      expect(page(85, 5)).to.deep.equal([
        [90, "AVAILABLE"],
        [100, "AVAILABLE"],
      ]);
      expect(page(100, 5)).to.deep.equal([]);
    });

    it("seatsAfter shows a hold as HELD until exactly its end", () => {
      expect(listing.seatsAfter(40, 1, NOW + 999)[0]?.state).to.equal("HELD");
      expect(listing.seatsAfter(40, 1, NOW + 1_000)[0]?.state).to.equal("AVAILABLE");
    });
  });
});
