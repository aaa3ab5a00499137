import { expect } from "chai";
import { createLogger } from "../../../server/src/logger.js";
import type {
  DateChanges,
  DateChangesQuery,
  GateDate,
  SeatChange,
  SeatGate,
  SeatGateEntry,
} from "../../../server/src/modules/queue/seat-gate.js";
import { SeatGateWriter } from "../../../server/src/modules/queue/seat-gate-writer.js";
import { FakeClock } from "../../support/fake-clock.js";

const DATE: GateDate = { concertId: "concert-1", dateId: "date-1" };
const DATE_2: GateDate = { concertId: "concert-1", dateId: "date-2" };
const LEVEL = { info: 30, warn: 40, error: 50 } as const;

/** A gate that remembers every call and fails while told to. */
class FakeGate implements SeatGate {
  failRecords = false;
  failInvalidates = false;
  /** Every record attempt, failed or not. */
  readonly attempts: { dateId: string; change: SeatChange }[] = [];
  /** The records that succeeded, in order. */
  readonly landed: { dateId: string; change: SeatChange }[] = [];
  readonly invalidations: { dateId: string; seatId: string; seatVersion: number }[] = [];

  async peek(): Promise<SeatGateEntry | null> {
    return null;
  }

  async record({ dateId }: GateDate, change: SeatChange): Promise<void> {
    this.attempts.push({ dateId, change });
    if (this.failRecords) throw new Error("connect ECONNREFUSED 127.0.0.1:6379");
    this.landed.push({ dateId, change });
  }

  async invalidate({ dateId }: GateDate, seatId: string, seatVersion: number): Promise<void> {
    this.invalidations.push({ dateId, seatId, seatVersion });
    if (this.failInvalidates) throw new Error("connect ECONNREFUSED 127.0.0.1:6379");
  }

  async changesSince(queries: readonly DateChangesQuery[]): Promise<DateChanges[]> {
    return queries.map(() => ({ epoch: "", version: 0, changes: [] }));
  }
}

/** A logger that keeps every line it writes, parsed. */
function capturingLogger() {
  const lines: { level: number; msg?: string; [key: string]: unknown }[] = [];
  const logger = createLogger("info", {
    write(line: string) {
      lines.push(JSON.parse(line));
    },
  });
  return { logger, lines };
}

/**
 * Waits (really) until `condition` holds. The writer retries on a real 250 ms
 * interval; the bound only keeps a broken writer from hanging the test.
 */
async function until(condition: () => boolean, what: string, boundMs = 10_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function held(seatId: string, seatVersion: number): SeatChange {
  return { seatId, seatVersion, state: "held", heldUntil: 1_893_456_000_123, owner: "ann" };
}

describe("SeatGateWriter", () => {
  let gate: FakeGate;
  let clock: FakeClock;
  let lines: ReturnType<typeof capturingLogger>["lines"];
  let writer: SeatGateWriter;

  beforeEach(() => {
    gate = new FakeGate();
    clock = new FakeClock();
    const captured = capturingLogger();
    lines = captured.lines;
    writer = new SeatGateWriter(gate, clock, captured.logger);
  });
  afterEach(async () => {
    gate.failRecords = false;
    await writer.close();
  });

  const logged = (level: number) => lines.filter((line) => line.level === level);

  /** Waits for at least `retries` more record attempts than there are now. */
  function retries(count: number): Promise<void> {
    const target = gate.attempts.length + count;
    return until(() => gate.attempts.length >= target, `${count} retries`);
  }

  it("records straight through while the gate is reachable, logging nothing", async () => {
    await writer.record(DATE, held("seat-1", 2));
    await writer.invalidate(DATE, "seat-2", 3);
    expect(gate.landed).to.deep.equal([{ dateId: DATE.dateId, change: held("seat-1", 2) }]);
    expect(gate.invalidations).to.deep.equal([
      { dateId: DATE.dateId, seatId: "seat-2", seatVersion: 3 },
    ]);
    expect(writer.backlog).to.equal(0);
    expect(lines).to.deep.equal([]);
  });

  it("never throws when a write fails, and retries it until the gate recovers", async () => {
    gate.failRecords = true;
    await writer.record(DATE, held("seat-1", 2)); // resolves: the request that committed goes on
    expect(writer.backlog).to.equal(1);
    expect(gate.landed).to.deep.equal([]);

    await retries(2); // still failing: kept, tried again
    expect(writer.backlog).to.equal(1);

    gate.failRecords = false;
    await until(() => writer.backlog === 0, "the backlog to drain");
    expect(gate.landed).to.deep.equal([{ dateId: DATE.dateId, change: held("seat-1", 2) }]);
  });

  it("keeps only the newest version of each seat in the backlog", async () => {
    gate.failRecords = true;
    await writer.record(DATE, held("seat-1", 3));
    await writer.record(DATE, held("seat-1", 5));
    await writer.record(DATE, held("seat-1", 4)); // older than what waits: dropped
    await writer.record(DATE_2, held("seat-2", 1));
    expect(writer.backlog).to.equal(2);

    gate.failRecords = false;
    await until(() => writer.backlog === 0, "the backlog to drain");
    expect(gate.landed).to.deep.equal([
      { dateId: DATE.dateId, change: held("seat-1", 5) },
      { dateId: DATE_2.dateId, change: held("seat-2", 1) },
    ]);
  });

  it("logs one warning per outage and one info at its end, not one per write or retry", async () => {
    gate.failRecords = true;
    for (let i = 0; i < 5; i++) await writer.record(DATE, held(`seat-${i}`, 1));
    await retries(3);
    expect(logged(LEVEL.warn)).to.have.length(1);
    expect(logged(LEVEL.warn)[0]?.err).to.have.property("message").that.contains("ECONNREFUSED");
    expect(logged(LEVEL.info)).to.deep.equal([]);

    gate.failRecords = false;
    await until(() => writer.backlog === 0, "the backlog to drain");
    expect(gate.landed).to.have.length(5);
    expect(logged(LEVEL.warn)).to.have.length(1);
    expect(logged(LEVEL.info)).to.have.length(1);

    // A second outage is a new one: warned about, and its end told, once each.
    gate.failRecords = true;
    await writer.record(DATE, held("seat-9", 1));
    await writer.record(DATE, held("seat-8", 1));
    await retries(2);
    gate.failRecords = false;
    await until(() => writer.backlog === 0, "the backlog to drain");
    expect(logged(LEVEL.warn)).to.have.length(2);
    expect(logged(LEVEL.info)).to.have.length(2);
    expect(logged(LEVEL.error)).to.deep.equal([]);
  });

  it("gives up a write after 60 s with an error log naming the seat, not before", async () => {
    gate.failRecords = true;
    await writer.record(DATE, held("seat-1", 2));

    clock.advance(60_000);
    await retries(2); // at least one whole retry ran at exactly 60 s
    expect(writer.backlog).to.equal(1);
    expect(logged(LEVEL.error)).to.deep.equal([]);

    clock.advance(1);
    await until(() => writer.backlog === 0, "the write to be given up");
    const errors = logged(LEVEL.error);
    expect(errors).to.have.length(1);
    expect(errors[0]).to.include({ seatId: "seat-1", dateId: DATE.dateId });
    expect(gate.landed).to.deep.equal([]);

    // Given up means given up: no attempt on it once the gate is back.
    const attempts = gate.attempts.length;
    gate.failRecords = false;
    await writer.record(DATE, held("seat-2", 1));
    expect(gate.attempts.slice(attempts).map((a) => a.change.seatId)).to.deep.equal(["seat-2"]);
  });

  it("does not report a write it gave up on as a recovery", async () => {
    gate.failRecords = true;
    await writer.record(DATE, held("seat-1", 2));
    clock.advance(60_001);
    await until(() => writer.backlog === 0, "the write to be given up");
    expect(logged(LEVEL.error)).to.have.length(1);
    // The gate is still unreachable and a write was lost: nothing "landed".
    expect(logged(LEVEL.info).map((line) => line.msg)).to.deep.equal([]);
  });

  it("swallows a failed invalidate (warning once) and does not retry it", async () => {
    gate.failInvalidates = true;
    await writer.invalidate(DATE, "seat-1", 4);
    await writer.invalidate(DATE, "seat-2", 4);
    expect(gate.invalidations).to.have.length(2);
    expect(writer.backlog).to.equal(0);
    expect(logged(LEVEL.warn)).to.have.length(1);
  });

  it("warns about a later outage after one that only failed an invalidate", async () => {
    gate.failInvalidates = true;
    await writer.invalidate(DATE, "seat-1", 4);
    expect(logged(LEVEL.warn)).to.have.length(1);

    // The gate comes back and takes writes again …
    gate.failInvalidates = false;
    await writer.invalidate(DATE, "seat-1", 5);
    await writer.record(DATE, held("seat-1", 6));
    expect(gate.landed).to.have.length(1);

    // … and a later, separate outage must be warned about too.
    gate.failRecords = true;
    await writer.record(DATE, held("seat-2", 1));
    expect(logged(LEVEL.warn)).to.have.length(2);
  });

  it("close() tries the backlog once more and lands it when the gate is back", async () => {
    gate.failRecords = true;
    await writer.record(DATE, held("seat-1", 2));
    gate.failRecords = false;
    await writer.close();
    expect(gate.landed).to.deep.equal([{ dateId: DATE.dateId, change: held("seat-1", 2) }]);
    expect(writer.backlog).to.equal(0);
  });

  it("close() tries once more, then stops retrying for good", async () => {
    gate.failRecords = true;
    await writer.record(DATE, held("seat-1", 2));
    await writer.record(DATE, held("seat-2", 2));
    const before = gate.attempts.length;
    await writer.close();
    expect(gate.attempts.length).to.be.greaterThan(before);
    expect(writer.backlog).to.equal(0);

    // No retry runs any more, even once the gate is back. (A bounded wait
    // of several retry intervals; a retry would land here.)
    gate.failRecords = false;
    const after = gate.attempts.length;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(gate.attempts.length).to.equal(after);
    expect(gate.landed).to.deep.equal([]);
  });
});
