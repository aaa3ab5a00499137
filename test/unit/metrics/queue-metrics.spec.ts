import { expect } from "chai";
import { createMetrics, type LineCountsSample } from "../../../server/src/metrics/metrics.js";
import { FakeClock } from "../../support/fake-clock.js";
import { parseScrape, sample } from "../../support/metrics.js";

const A = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9e01";
const B = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9e02";

describe("waiting-room metrics", () => {
  it("reads the lines once per scrape for both gauges, and shows no stale figures while the store is down", async () => {
    const clock = new FakeClock();
    const metrics = createMetrics(() => clock.ms());
    let reads = 0;
    let answer: () => Promise<readonly LineCountsSample[]> = async () => [
      { concertId: A, waiting: 7, admitted: 2 },
      { concertId: B, waiting: 0, admitted: 1 },
    ];
    metrics.watch({
      lines: () => {
        reads++;
        return answer();
      },
    });
    const first = parseScrape(await metrics.render());
    expect(reads).to.equal(1);
    expect(sample(first, "stagedoor_queue_waiting", { concert: A })).to.equal(7);
    expect(sample(first, "stagedoor_queue_admitted", { concert: A })).to.equal(2);
    expect(first.has(`stagedoor_queue_waiting{concert="${B}"}`)).to.equal(true);

    answer = () => Promise.reject(new Error("ECONNREFUSED"));
    // Within the cache's second, scrapes share one read.
    clock.advance(999);
    expect(
      sample(parseScrape(await metrics.render()), "stagedoor_queue_waiting", { concert: A }),
    ).to.equal(7);
    expect(reads).to.equal(1);
    // Past it, the next scrape reads again and finds the store down.
    clock.advance(1);
    const down = parseScrape(await metrics.render());
    expect(reads).to.equal(2);
    expect(down.has(`stagedoor_queue_waiting{concert="${A}"}`)).to.equal(false);
    expect(down.has(`stagedoor_queue_admitted{concert="${B}"}`)).to.equal(false);
    // A failed read is not cached: the next scrape tries again at once.
    answer = async () => [{ concertId: B, waiting: 3, admitted: 0 }];
    const back = parseScrape(await metrics.render());
    expect(reads).to.equal(3);
    expect(sample(back, "stagedoor_queue_waiting", { concert: B })).to.equal(3);
    expect(back.has(`stagedoor_queue_waiting{concert="${A}"}`)).to.equal(false);
  });

  it("counts admissions and out-of-order ones per concert and observes waits in seconds", async () => {
    const metrics = createMetrics();
    metrics.queueEvents.admitted(A, 0, false);
    metrics.queueEvents.admitted(A, 90_000, false);
    metrics.queueEvents.admitted(B, 4_000, true);
    const scrape = parseScrape(await metrics.render());
    expect(sample(scrape, "stagedoor_queue_admissions_total", { concert: A })).to.equal(2);
    expect(sample(scrape, "stagedoor_queue_admissions_total", { concert: B })).to.equal(1);
    expect(scrape.get(`stagedoor_queue_admitted_out_of_order_total{concert="${A}"}`)).to.equal(0);
    expect(sample(scrape, "stagedoor_queue_admitted_out_of_order_total", { concert: B })).to.equal(
      1,
    );
    expect(sample(scrape, "stagedoor_queue_wait_seconds_count")).to.equal(3);
    expect(sample(scrape, "stagedoor_queue_wait_seconds_sum")).to.equal(94);
    expect(sample(scrape, "stagedoor_queue_wait_seconds_bucket", { le: "5" })).to.equal(2);
    expect(sample(scrape, "stagedoor_queue_wait_seconds_bucket", { le: "120" })).to.equal(3);
  });
});
