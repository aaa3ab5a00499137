import { expect } from "chai";
import {
  ADMISSION_RATE_WINDOW_MS,
  AdmissionMeter,
  outOfOrder,
} from "../../../server/src/modules/queue/admission-meter.js";
import type { Admission } from "../../../server/src/modules/queue/queue-store.js";
import type { QueueEvents } from "../../../server/src/shared/queue-events.js";
import { FakeClock } from "../../support/fake-clock.js";
import { CONCERT, OTHER_CONCERT, queueFixture } from "./queue-fixture.js";

/** Keeps every event told, in order. */
class RecordedEvents implements QueueEvents {
  readonly admitted: QueueEvents["admitted"];
  readonly seen: { concertId: string; waitMs: number; outOfOrder: boolean }[] = [];
  constructor() {
    this.admitted = (concertId, waitMs, late) => {
      this.seen.push({ concertId, waitMs, outOfOrder: late });
    };
  }
}

function admission(arrival: number, highestBefore: number, joinedAt = 0, admittedAt = 0) {
  return { arrival, highestBefore, joinedAt, admittedAt } satisfies Admission;
}

describe("AdmissionMeter", () => {
  it("calls an admission out of order only when a later arrival was admitted before it", () => {
    expect(outOfOrder(admission(1, 0))).to.equal(false);
    expect(outOfOrder(admission(5, 4))).to.equal(false);
    // Gaps (departures, evictions) keep the order.
    expect(outOfOrder(admission(9, 5))).to.equal(false);
    expect(outOfOrder(admission(4, 5))).to.equal(true);
    expect(outOfOrder(admission(1, 100))).to.equal(true);
  });

  it("tells each drained admission with its wait and its order", () => {
    const events = new RecordedEvents();
    const meter = new AdmissionMeter(events);
    meter.record(
      CONCERT,
      {
        total: 3,
        admissions: [
          admission(1, 0, 1_000, 1_000),
          admission(3, 1, 1_000, 61_000),
          admission(2, 3, 2_000, 62_500),
        ],
      },
      70_000,
    );
    expect(events.seen).to.deep.equal([
      { concertId: CONCERT, waitMs: 0, outOfOrder: false },
      { concertId: CONCERT, waitMs: 60_000, outOfOrder: false },
      { concertId: CONCERT, waitMs: 60_500, outOfOrder: true },
    ]);
  });

  it("measures admissions per minute from the line's total over the last minute", () => {
    const clock = new FakeClock();
    const meter = new AdmissionMeter(new RecordedEvents());
    const drain = (total: number) => meter.record(CONCERT, { total, admissions: [] }, clock.ms());
    expect(meter.perMinute(CONCERT, clock.ms())).to.equal(0);
    drain(100); // admissions before the meter first saw the line do not count
    expect(meter.perMinute(CONCERT, clock.ms())).to.equal(0);
    // 10 admissions a second, read every 250 ms (the admitter's tick).
    let total = 100;
    for (let tick = 0; tick < 4 * 30; tick++) {
      clock.advance(250);
      total += tick % 2 === 0 ? 2 : 3;
      drain(total);
    }
    expect(meter.perMinute(CONCERT, clock.ms())).to.be.closeTo(600, 1);
    // Then 1 a second for two minutes: the first rush leaves the window.
    for (let second = 0; second < 120; second++) {
      clock.advance(1_000);
      drain(++total);
    }
    expect(meter.perMinute(CONCERT, clock.ms())).to.be.closeTo(60, 1);
    expect(meter.perMinute(OTHER_CONCERT, clock.ms())).to.equal(0);
    // Not read for a whole window: the rate is no longer known.
    clock.advance(ADMISSION_RATE_WINDOW_MS + 1);
    expect(meter.perMinute(CONCERT, clock.ms())).to.equal(0);
  });

  it("starts over when the line's total goes down (the store lost its counters)", () => {
    const clock = new FakeClock();
    const meter = new AdmissionMeter(new RecordedEvents());
    meter.record(CONCERT, { total: 500, admissions: [] }, clock.ms());
    clock.advance(10_000);
    meter.record(CONCERT, { total: 600, admissions: [] }, clock.ms());
    expect(meter.perMinute(CONCERT, clock.ms())).to.equal(600);
    clock.advance(1_000);
    meter.record(CONCERT, { total: 3, admissions: [] }, clock.ms());
    expect(meter.perMinute(CONCERT, clock.ms())).to.equal(0);
    clock.advance(2_000);
    meter.record(CONCERT, { total: 5, admissions: [] }, clock.ms());
    expect(meter.perMinute(CONCERT, clock.ms())).to.equal(60);
  });
});

describe("QueueService admission figures", () => {
  it("the admitter drains every admission (issue, payment, its own step) into events and the rate", async () => {
    const events = new RecordedEvents();
    const f = queueFixture({ events });
    const ann = await f.issue("ann");
    await f.issue("bob");
    await f.issue("cat");
    await f.issue("dan");
    expect(await f.queue.lineFigures(CONCERT)).to.deep.equal({
      waiting: 2,
      admitted: 2,
      admissionsPerMinute: 0,
    });
    await f.queue.promoteAll();
    expect(events.seen).to.deep.equal([
      { concertId: CONCERT, waitMs: 0, outOfOrder: false },
      { concertId: CONCERT, waitMs: 0, outOfOrder: false },
    ]);

    f.clock.advance(20_000);
    await f.issue("ann"); // activity keeps the waiters' places
    await f.queue.endAdmission((await f.queue.authenticate(ann.token)).principal);
    await f.queue.promoteAll();
    expect(events.seen.slice(2)).to.deep.equal([
      { concertId: CONCERT, waitMs: 20_000, outOfOrder: false },
    ]);
    // 1 admission in the 20 s the meter has watched: 3 a minute.
    expect(await f.queue.lineFigures(CONCERT)).to.deep.equal({
      waiting: 1,
      admitted: 2,
      admissionsPerMinute: 3,
    });
    expect(await f.queue.openLines()).to.deep.equal([
      { concertId: CONCERT, waiting: 1, admitted: 2 },
    ]);
    expect(await f.queue.lineFigures(OTHER_CONCERT)).to.deep.equal({
      waiting: 0,
      admitted: 0,
      admissionsPerMinute: 0,
    });
  });
});
