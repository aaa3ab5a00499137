import { expect } from "chai";
import { createLogger } from "../../../server/src/logger.js";
import type {
  DateListing,
  SeatStateRow,
} from "../../../server/src/modules/catalog/date-listing.js";
import { DateSeats } from "../../../server/src/modules/catalog/date-seats.js";
import type { SeatStatus } from "../../../server/src/modules/catalog/seat.entity.js";
import {
  type ListingSource,
  SeatListings,
} from "../../../server/src/modules/catalog/seat-listings.js";
import type {
  DateChanges,
  DateChangesQuery,
  GateDate,
  SeatChange,
  SeatGate,
  SeatGateEntry,
} from "../../../server/src/modules/queue/seat-gate.js";
import { deferred } from "../../support/deferred.js";
import { FakeClock } from "../../support/fake-clock.js";

const SEATS_PER_DATE = 10;
const CONCERT = "concert-1";

/** A date of the test's concert, as the listings take it. */
const listed = (id: string) => ({ id, concertId: CONCERT });
const LEVEL = { info: 30, warn: 40 } as const;

/**
 * A gate whose log the test controls: it can start a new epoch, forget the
 * older part of a log, or fail.
 */
class ScriptedGate implements SeatGate {
  failing = false;
  /** How many changesSince calls it answered or refused. */
  reads = 0;
  private readonly logs = new Map<
    string,
    { epoch: string; version: number; firstKept: number; changes: (SeatChange & { n: number })[] }
  >();
  private epochs = 0;

  async peek(): Promise<SeatGateEntry | null> {
    return null;
  }

  async invalidate(): Promise<void> {}

  async record({ dateId }: GateDate, change: SeatChange): Promise<void> {
    let log = this.logs.get(dateId);
    if (log === undefined) {
      log = { epoch: `epoch-${++this.epochs}`, version: 0, firstKept: 1, changes: [] };
      this.logs.set(dateId, log);
    }
    log.version += 1;
    log.changes.push({ ...change, n: log.version });
  }

  /** The counter starts again under a new epoch (the gate lost the date's keys). */
  restart(dateId: string): void {
    this.logs.delete(dateId);
  }

  /** Forgets every change logged so far (as if trimmed). */
  trim(dateId: string): void {
    const log = this.logs.get(dateId);
    if (log === undefined) return;
    log.changes = [];
    log.firstKept = log.version + 1;
  }

  version(dateId: string): number {
    return this.logs.get(dateId)?.version ?? 0;
  }

  epoch(dateId: string): string {
    return this.logs.get(dateId)?.epoch ?? "";
  }

  async changesSince(queries: readonly DateChangesQuery[]): Promise<DateChanges[]> {
    this.reads++;
    if (this.failing) throw new Error("connect ECONNREFUSED 127.0.0.1:6379");
    return queries.map(({ dateId, afterVersion }) => {
      const log = this.logs.get(dateId);
      if (log === undefined) {
        return { epoch: "", version: 0, changes: afterVersion === 0 ? [] : null };
      }
      const complete = afterVersion <= log.version && afterVersion + 1 >= log.firstKept;
      return {
        epoch: log.epoch,
        version: log.version,
        changes: complete ? log.changes.filter((change) => change.n > afterVersion) : null,
      };
    });
  }
}

/**
 * The database as the listings see it: seat facts and rows per date. A
 * snapshot reads the rows when it is asked, and may then be held back by the
 * test (`pause`), or run a hook at that moment (`onSnapshot`).
 */
class FakeSource implements ListingSource {
  seatsCalls = 0;
  statesCalls = 0;
  /** Runs when a snapshot of the rows is taken, after the rows were read. */
  onSnapshot: (() => Promise<void> | void) | undefined;
  /** While set, snapshots wait for it after reading their rows. */
  pause: Promise<void> | undefined;
  readonly rows = new Map<string, Map<string, SeatStateRow>>();

  async seats(dateId: string): Promise<DateSeats> {
    this.seatsCalls++;
    return new DateSeats(
      dateId,
      Array.from({ length: SEATS_PER_DATE }, (_, i) => ({
        id: seatId(dateId, i + 1),
        number: i + 1,
        grade: "R",
        price: "10000",
      })),
    );
  }

  async states(dateId: string): Promise<SeatStateRow[]> {
    this.statesCalls++;
    const rows = [...this.table(dateId).values()].map((row) => ({ ...row }));
    await this.onSnapshot?.();
    if (this.pause) await this.pause;
    return rows;
  }

  table(dateId: string): Map<string, SeatStateRow> {
    let table = this.rows.get(dateId);
    if (table === undefined) {
      table = new Map(
        Array.from({ length: SEATS_PER_DATE }, (_, i) => [
          seatId(dateId, i + 1),
          {
            id: seatId(dateId, i + 1),
            status: "AVAILABLE" as SeatStatus,
            version: 1,
            held_until_ms: null,
          },
        ]),
      );
      this.rows.set(dateId, table);
    }
    return table;
  }
}

function seatId(dateId: string, number: number): string {
  return `${dateId}/s-${number}`;
}

/** A logger that keeps every line it writes, parsed. */
function capturingLogger() {
  const lines: { level: number; msg?: string }[] = [];
  const logger = createLogger("info", {
    write(line: string) {
      lines.push(JSON.parse(line));
    },
  });
  return { logger, lines };
}

/** Lets every pending promise callback run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe("SeatListings", () => {
  let gate: ScriptedGate;
  let source: FakeSource;
  let clock: FakeClock;
  let lines: { level: number; msg?: string }[];
  let listings: SeatListings;

  beforeEach(() => {
    gate = new ScriptedGate();
    source = new FakeSource();
    clock = new FakeClock();
    const captured = capturingLogger();
    lines = captured.lines;
    listings = new SeatListings(gate, source, clock, captured.logger);
  });

  const logged = (level: number) => lines.filter((line) => line.level === level);

  /**
   * Commits a change of a seat as the services do: the row changes (new
   * version) and then the gate records it.
   */
  async function commit(
    dateId: string,
    number: number,
    state: SeatChange["state"],
    options: { heldUntil?: number; inDatabase?: boolean } = {},
  ): Promise<SeatChange> {
    const row = source.table(dateId).get(seatId(dateId, number));
    if (row === undefined) throw new Error(`no seat ${number}`);
    const heldUntil = state === "held" ? (options.heldUntil ?? clock.ms() + 600_000) : 0;
    const change: SeatChange = {
      seatId: row.id,
      seatVersion: row.version + 1,
      state,
      heldUntil,
      owner: state === "free" ? "" : "ann",
    };
    if (options.inDatabase !== false) {
      const status: SeatStatus =
        state === "held" ? "HELD" : state === "sold" ? "SOLD" : "AVAILABLE";
      source.table(dateId).set(row.id, {
        ...row,
        status,
        version: change.seatVersion,
        held_until_ms: heldUntil || null,
      });
    }
    await gate.record({ concertId: CONCERT, dateId }, change);
    return change;
  }

  async function one(dateId: string): Promise<DateListing> {
    const [listing] = await listings.get([listed(dateId)]);
    if (listing === undefined) throw new Error("no listing");
    return listing;
  }

  const stateOf = (listing: DateListing, number: number) =>
    listing.stateAt(listing.seats.indexOfNumber(number), clock.ms());

  describe("building and catching up", () => {
    it("builds a date once, then keeps it fresh from the log without the database", async () => {
      await commit("d1", 1, "sold");
      const first = await one("d1");
      expect(source.statesCalls).to.equal(1);
      expect(source.seatsCalls).to.equal(1);
      expect(stateOf(first, 1)).to.equal("SOLD");
      expect(first.availability(clock.ms()).count).to.equal(SEATS_PER_DATE - 1);

      await commit("d1", 2, "held");
      await commit("d1", 3, "sold");
      await commit("d1", 3, "free");
      const second = await one("d1");
      expect(second).to.equal(first);
      expect(source.statesCalls).to.equal(1);
      expect(second.version).to.equal(gate.version("d1"));
      expect(stateOf(second, 2)).to.equal("HELD");
      expect(stateOf(second, 3)).to.equal("AVAILABLE");
      expect(second.availability(clock.ms()).count).to.equal(SEATS_PER_DATE - 2);

      expect(await one("d1")).to.equal(first);
      expect(source.statesCalls).to.equal(1);
    });

    it("answers several dates in order with one read of the log", async () => {
      await commit("d2", 4, "sold");
      const [a, b, c] = await listings.get([listed("d1"), listed("d2"), listed("d3")]);
      expect([
        a?.seats.concertDateId,
        b?.seats.concertDateId,
        c?.seats.concertDateId,
      ]).to.deep.equal(["d1", "d2", "d3"]);
      expect(gate.reads).to.equal(1);
      expect(b === undefined ? undefined : stateOf(b, 4)).to.equal("SOLD");
      await listings.get([listed("d3"), listed("d1")]);
      expect(gate.reads).to.equal(2);
      expect(source.statesCalls).to.equal(3);
    });

    it("applies on the next call a change that landed between the log read and the snapshot", async () => {
      await commit("d1", 1, "sold");
      // While the snapshot is taken, a hold commits (its row is not in this
      // snapshot) and the gate records it after the version was read.
      let change: SeatChange | undefined;
      source.onSnapshot = async () => {
        source.onSnapshot = undefined;
        change = await commit("d1", 5, "held", { inDatabase: false });
      };
      const first = await one("d1");
      expect(change?.seatVersion).to.equal(2);
      expect(stateOf(first, 5)).to.equal("AVAILABLE"); // the snapshot predates it

      const next = await one("d1");
      expect(stateOf(next, 5)).to.equal("HELD");
      expect(next.version).to.equal(2);
      expect(source.statesCalls).to.equal(1);
    });

    it("rebuilds when the gate starts a new epoch, even if the new counter has passed the listing's", async () => {
      await commit("d1", 1, "sold");
      const first = await one("d1");
      expect(first.version).to.equal(1);
      const firstEpoch = first.epoch;

      // The gate lost the date; its counter starts again, and gets past 1:
      // changes "after 1" of the new epoch exist, but they miss its first one.
      gate.restart("d1");
      await commit("d1", 2, "sold");
      await commit("d1", 3, "sold");
      await commit("d1", 4, "held");
      expect(gate.version("d1")).to.equal(3);

      const rebuilt = await one("d1");
      expect(source.statesCalls).to.equal(2);
      expect(rebuilt).not.to.equal(first);
      expect(rebuilt.epoch).to.equal(gate.epoch("d1")).and.not.equal(firstEpoch);
      expect(rebuilt.version).to.equal(3);
      expect(stateOf(rebuilt, 2)).to.equal("SOLD");
      expect(stateOf(rebuilt, 3)).to.equal("SOLD");
      expect(stateOf(rebuilt, 4)).to.equal("HELD");
    });

    it("rebuilds when the gate's counter is behind the listing's (same date, counter restarted)", async () => {
      await commit("d1", 1, "sold");
      await commit("d1", 2, "sold");
      const first = await one("d1");
      gate.restart("d1");
      await commit("d1", 3, "held");
      const rebuilt = await one("d1");
      expect(rebuilt).not.to.equal(first);
      expect(rebuilt.version).to.equal(1);
      expect(stateOf(rebuilt, 3)).to.equal("HELD");
    });

    it("rebuilds when the gate's log no longer has every change (changes: null)", async () => {
      await commit("d1", 1, "sold");
      const first = await one("d1");
      const epoch = first.epoch;
      await commit("d1", 2, "sold");
      await commit("d1", 3, "held");
      gate.trim("d1"); // same epoch, but changes 2 and 3 are gone from the log
      const rebuilt = await one("d1");
      expect(source.statesCalls).to.equal(2);
      expect(rebuilt).not.to.equal(first);
      expect(rebuilt.epoch).to.equal(epoch);
      expect(rebuilt.version).to.equal(3);
      expect(stateOf(rebuilt, 2)).to.equal("SOLD");
      expect(stateOf(rebuilt, 3)).to.equal("HELD");

      await commit("d1", 4, "sold");
      expect(stateOf(await one("d1"), 4)).to.equal("SOLD");
      expect(source.statesCalls).to.equal(2);
    });

    it("shares one rebuild between concurrent calls", async () => {
      const release = deferred();
      source.pause = release.promise;
      const calls = Promise.all([one("d1"), one("d1"), listings.get([listed("d1"), listed("d1")])]);
      await settle();
      release.resolve();
      const [a, b, pair] = await calls;
      expect(source.statesCalls).to.equal(1);
      expect(b).to.equal(a);
      expect(pair?.[0]).to.equal(a);
      expect(pair?.[1]).to.equal(a);
    });

    it("never gives a caller a listing older than the log it read, even from a rebuild started before", async () => {
      await commit("d1", 1, "sold"); // version 1
      const release = deferred();
      source.pause = release.promise;

      // A reads version 1 and starts the rebuild; its snapshot is taken now.
      const forA = one("d1");
      while (source.statesCalls === 0) await settle();

      // A sale commits (version 2); B reads the log at version 2 while A's
      // rebuild, which cannot contain the sale, is still running.
      await commit("d1", 7, "sold");
      const readsBefore = gate.reads;
      const forB = one("d1");
      while (gate.reads === readsBefore) await settle();
      await settle();
      release.resolve();

      const [a, b] = await Promise.all([forA, forB]);
      expect(a.version).to.be.at.least(1);
      expect(b.version).to.be.at.least(2);
      expect(stateOf(b, 7)).to.equal("SOLD");
      expect(source.statesCalls).to.equal(1);
    });

    it("rebuilds a listing older than 30 s in the background, serving the old one meanwhile", async () => {
      await commit("d1", 1, "sold");
      const first = await one("d1");
      clock.advance(30_000);
      expect(await one("d1")).to.equal(first);
      await settle();
      expect(source.statesCalls).to.equal(1);

      await commit("d1", 6, "sold");
      clock.advance(1);
      const served = await one("d1");
      expect(served).to.equal(first); // not waiting for the rebuild
      expect(stateOf(served, 6)).to.equal("SOLD");
      while (source.statesCalls < 2) await settle();
      await settle();

      const next = await one("d1");
      expect(next).not.to.equal(first);
      expect(next.builtAt).to.equal(clock.ms());
      expect(stateOf(next, 6)).to.equal("SOLD");
      expect(source.statesCalls).to.equal(2);
    });
  });

  describe("when the gate is unreachable", () => {
    it("lists straight from the database, uncached, warning once, and caches again after", async () => {
      await commit("d1", 1, "sold");
      const cached = await one("d1");
      expect(source.statesCalls).to.equal(1);

      gate.failing = true;
      const during = [await one("d1"), await one("d1"), await one("d1")];
      expect(source.statesCalls).to.equal(4);
      expect(during[0]).not.to.equal(cached);
      expect(during[1]).not.to.equal(during[0]);
      expect(stateOf(must(during[2]), 1)).to.equal("SOLD");
      expect(logged(LEVEL.warn)).to.have.length(1);

      // A change committed during the outage is read from the database.
      source.table("d1").set(seatId("d1", 2), {
        id: seatId("d1", 2),
        status: "SOLD",
        version: 2,
        held_until_ms: null,
      });
      expect(stateOf(await one("d1"), 2)).to.equal("SOLD");
      expect(source.statesCalls).to.equal(5);

      gate.failing = false;
      const after = await one("d1");
      expect(source.statesCalls).to.equal(6); // rebuilt once (the old cache is gone) …
      expect(stateOf(after, 2)).to.equal("SOLD");
      expect(logged(LEVEL.info)).to.have.length(1);
      expect(await one("d1")).to.equal(after); // … and cached again
      expect(await one("d1")).to.equal(after);
      expect(source.statesCalls).to.equal(6);
      expect(logged(LEVEL.warn)).to.have.length(1);
      expect(logged(LEVEL.info)).to.have.length(1);
    });
  });
});

function must<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("expected a value");
  return value;
}
