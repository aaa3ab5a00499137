import { expect } from "chai";
import {
  createIntervalJob,
  type IntervalJob,
  type IntervalJobOptions,
} from "../../../server/src/jobs/interval-job.js";
import { createLogger } from "../../../server/src/logger.js";
import { deferred } from "../../support/deferred.js";
import { must } from "../unit-helpers.js";

function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A logger that keeps every line it writes, parsed. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", {
    write(line: string) {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { logger, lines };
}

describe("createIntervalJob", () => {
  const jobs: IntervalJob[] = [];

  afterEach(async () => {
    for (const job of jobs.splice(0)) await job.stop();
  });

  function job(
    task: () => Promise<unknown>,
    intervalMs = 60_000,
    options: IntervalJobOptions = {},
  ) {
    const { logger, lines } = capturingLogger();
    const created = createIntervalJob("test-job", intervalMs, task, logger, options);
    jobs.push(created);
    return { job: created, lines };
  }

  it("runs the task once per runOnce", async () => {
    let runs = 0;
    const { job: j } = job(async () => {
      runs++;
    });
    await j.runOnce();
    await j.runOnce();
    expect(runs).to.equal(2);
  });

  it("never overlaps: a runOnce during a run joins it instead of starting another", async () => {
    let started = 0;
    const gate = deferred();
    const { job: j } = job(async () => {
      started++;
      await gate.promise;
    });
    const first = j.runOnce();
    const second = j.runOnce();
    const third = j.runOnce();
    await flush();
    expect(started).to.equal(1);
    gate.resolve();
    await Promise.all([first, second, third]);
    expect(started).to.equal(1);
    // Once the run is over, the next call starts a new one.
    await j.runOnce();
    expect(started).to.equal(2);
  });

  it("logs a failing run with the job's name instead of throwing, and runs again next time", async () => {
    let runs = 0;
    const { job: j, lines } = job(async () => {
      runs++;
      if (runs === 1) throw new Error("database went away");
    });
    await j.runOnce();
    expect(lines).to.have.length(1);
    const line = must(lines[0]);
    expect(line.level).to.equal(40);
    expect(line.job).to.equal("test-job");
    expect((line.err as { message?: string }).message).to.equal("database went away");

    await j.runOnce();
    expect(runs).to.equal(2);
    expect(lines.map((l) => l.msg)).to.deep.equal([
      "background job failing; retrying each interval",
      "background job recovered",
    ]);
  });

  it("logs a run of failures once, a reminder per reminderMs, and the recovery once", async () => {
    let clock = 0;
    let failing = true;
    const { job: j, lines } = job(
      async () => {
        if (failing) throw new Error("redis is down");
      },
      250,
      { reminderMs: 60_000, now: () => clock },
    );
    // Four minutes of an outage, one run every 250 ms: 960 failures.
    for (let tick = 0; tick < 960; tick++) {
      await j.runOnce();
      clock += 250;
    }
    expect(lines.map((l) => l.msg)).to.deep.equal([
      "background job failing; retrying each interval",
      "background job still failing",
      "background job still failing",
      "background job still failing",
    ]);
    expect(lines.map((l) => l.level)).to.deep.equal([40, 40, 40, 40]);
    expect(lines.every((l) => l.job === "test-job")).to.equal(true);
    expect((must(lines[0]).err as { message?: string }).message).to.equal("redis is down");
    expect(lines.slice(1).map((l) => l.failures)).to.deep.equal([241, 481, 721]);
    expect(lines.slice(1).map((l) => l.failingMs)).to.deep.equal([60_000, 120_000, 180_000]);

    failing = false;
    await j.runOnce();
    await j.runOnce();
    expect(lines).to.have.length(5);
    const recovered = must(lines[4]);
    expect(recovered.msg).to.equal("background job recovered");
    expect(recovered.level).to.equal(30);
    expect(recovered.failures).to.equal(960);
    expect(recovered.failingMs).to.equal(240_000);

    // A second outage is a new run: logged once again when it starts.
    failing = true;
    await j.runOnce();
    await j.runOnce();
    expect(lines.map((l) => l.msg).slice(5)).to.deep.equal([
      "background job failing; retrying each interval",
    ]);
  });

  it("logs nothing while it succeeds", async () => {
    const { job: j, lines } = job(async () => {});
    await j.runOnce();
    await j.runOnce();
    expect(lines).to.deep.equal([]);
  });

  it("stop waits for the run in progress", async () => {
    const gate = deferred();
    let finished = false;
    const { job: j } = job(async () => {
      await gate.promise;
      finished = true;
    });
    void j.runOnce();
    await flush();
    let stopped = false;
    const stopping = j.stop().then(() => {
      stopped = true;
    });
    await flush();
    expect(stopped).to.equal(false);
    gate.resolve();
    await stopping;
    expect(finished).to.equal(true);
  });

  it("stop resolves even when the run in progress fails", async () => {
    const gate = deferred();
    const { job: j, lines } = job(() => gate.promise);
    void j.runOnce();
    const stopping = j.stop();
    gate.reject(new Error("late failure"));
    await stopping;
    expect(lines).to.have.length(1);
  });

  it("stop resolves at once when nothing runs", async () => {
    const { job: j } = job(async () => {});
    await j.stop();
    j.start();
    await j.stop();
  });

  it("start runs the task on its interval until stopped", async () => {
    let runs = 0;
    const { job: j } = job(async () => {
      runs++;
    }, 5);
    j.start();
    j.start(); // A second start must not add a second timer.
    const deadline = Date.now() + 5000;
    while (runs < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(runs).to.be.at.least(3);
    await j.stop();
  });
});
