import { expect } from "chai";
import { createDemoCrowd, DEMO_TICK_MS, demoFanId } from "../../../server/src/jobs/demo-crowd.js";
import { createLogger } from "../../../server/src/logger.js";
import { CONCERT, type QueueFixture, queueFixture } from "../queue/queue-fixture.js";

/** A crowd of `size` over a line of `maxActive` slots, on a fake clock; `random` fixes stays and rests. */
function crowdOf(size: number, maxActive: number, random = () => 0, idleMs = 30_000) {
  const f = queueFixture({ limits: { maxActive, idleMs } });
  const crowd = createDemoCrowd({
    queue: f.queue,
    concertId: async () => CONCERT,
    clock: f.clock,
    logger: createLogger("silent"),
    size,
    random,
  });
  /** One second of the server's life: the crowd moves, then the admitter promotes. */
  const tick = async () => {
    f.clock.advance(DEMO_TICK_MS);
    await crowd.runOnce();
    await f.queue.promoteAll();
  };
  return { f, crowd, tick };
}

async function statusOf(f: QueueFixture, token: string) {
  return (await f.queue.authenticate(token)).status;
}

describe("the demo crowd", () => {
  it("joins the line in order, taking the free slots first", async () => {
    const { f, tick } = crowdOf(6, 2);
    await tick();
    const first = await f.issue(demoFanId(1));
    const third = await f.issue(demoFanId(3));
    expect(first.status.state).to.equal("admitted");
    expect(third.status).to.deep.include({ state: "waiting", position: 1, waitingCount: 4 });
    const fan = await f.issue("new-user");
    expect(fan.status).to.deep.include({ state: "waiting", position: 5, waitingCount: 5 });
  });

  it("lets a new fan through: the crowd ahead leaves after its stay, and rejoins behind the fan", async () => {
    const { f, tick } = crowdOf(6, 2);
    await tick();
    const { token } = await f.issue("new-user");
    const positions: number[] = [];
    for (let second = 0; second < 60; second++) {
      const status = await statusOf(f, token);
      if (status.state === "admitted") break;
      positions.push(status.position);
      await tick();
    }
    expect((await statusOf(f, token)).state, `positions ${positions.join(",")}`).to.equal(
      "admitted",
    );
    // The place only ever moved forward, from behind the four waiting simulated fans.
    expect(positions[0]).to.equal(5);
    expect(positions).to.deep.equal([...positions].sort((a, b) => b - a));
  });

  it("keeps its waiting fans' places past the idle limit, and admits no more than the limit", async () => {
    // Stays of about 8 s (longer than the test), and a line that forgets a waiting
    // fan after 2 s of silence: only the crowd's own status checks keep fans 3 and 4 in it.
    const { f, tick } = crowdOf(4, 2, () => 0.999, 2_000);
    await tick();
    for (let second = 0; second < 6; second++) await tick();
    expect(6 * DEMO_TICK_MS).to.be.greaterThan(f.limits.idleMs);
    const waiting = await f.issue(demoFanId(4));
    expect(waiting.status).to.deep.include({ state: "waiting", position: 2, waitingCount: 2 });
    const admitted = await Promise.all([1, 2].map((n) => f.issue(demoFanId(n))));
    expect(admitted.map((a) => a.status.state)).to.deep.equal(["admitted", "admitted"]);
  });

  it("joins again when its place is lost (a store that forgot it)", async () => {
    const { f, crowd } = crowdOf(1, 1);
    await crowd.runOnce();
    const before = await f.issue(demoFanId(1));
    await f.queue.leave((await f.queue.authenticate(before.token)).principal);
    f.clock.advance(DEMO_TICK_MS);
    await crowd.runOnce(); // finds the token dead
    f.clock.advance(DEMO_TICK_MS);
    await crowd.runOnce(); // joins again
    const after = await f.issue(demoFanId(1));
    expect(after.token).to.not.equal(before.token);
    expect(after.status.state).to.equal("admitted");
  });
});
