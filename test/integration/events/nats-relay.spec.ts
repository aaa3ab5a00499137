import { randomBytes } from "node:crypto";
import { expect } from "chai";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import {
  NatsDestination,
  type OutboxRelay,
  type PublishedEvent,
} from "../../../server/src/modules/events/index.js";
import { freePort } from "../../support/ports.js";
import { must, ServiceHarness } from "../reservations/service-harness.js";
import { relayTo } from "./event-kit.js";

/** The NATS server with JetStream the machine runs (CI starts one too). */
const NATS_URL = process.env.TEST_NATS_URL || "nats://127.0.0.1:4222";

describe("Events out: the relay to NATS JetStream (real NATS)", () => {
  let h: ServiceHarness;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let stream: string;
  let prefix: string;
  let relay: OutboxRelay;
  let requests = 0;

  before(async () => {
    h = await ServiceHarness.start();
    nc = await connect({ servers: NATS_URL });
    jsm = await nc.jetstreamManager();
  });
  beforeEach(() => {
    // A stream and subjects of this test's own, deleted after it.
    const tag = randomBytes(6).toString("hex");
    stream = `STAGEDOOR_TEST_${tag}`;
    prefix = `sdtest${tag}`;
    relay = relayTo(h.orm.em, [destination()], h.clock);
  });
  afterEach(async () => {
    await relay.close();
    await jsm.streams.delete(stream).catch(() => undefined);
  });
  after(async () => {
    await nc?.close();
    await h?.close();
  });

  const destination = (url = NATS_URL) =>
    new NatsDestination({ url, stream, subjectPrefix: prefix, timeoutMs: 2000 });
  const requestId = () => `nats-${++requests}`;

  /** Holds and releases seats of a concert of the test's own: two events per round. */
  async function events(rounds: number): Promise<string> {
    const created = await h.createConcert([{ daysFromNow: 10, seats: rounds }]);
    const dateId = must(created.dates[0]).id;
    const caller = await h.admit(h.user("nats"), { concertId: created.concertId });
    for (let n = 1; n <= rounds; n++) {
      const held = await h.services.reservations.hold(caller.principal, {
        seatId: await h.seatId(dateId, n),
        requestId: requestId(),
      });
      await h.services.reservations.release(caller.principal, {
        reservationId: held.reservation.id,
        requestId: requestId(),
      });
    }
    return created.concertId;
  }

  /** The stream's messages, in stream order. */
  async function messages(): Promise<{ subject: string; msgId: string; event: PublishedEvent }[]> {
    const info = await jsm.streams.info(stream);
    const out = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const message = await jsm.streams.getMessage(stream, { seq });
      out.push({
        subject: message.subject,
        msgId: message.header.get("Nats-Msg-Id"),
        event: message.json<PublishedEvent>(),
      });
    }
    return out;
  }

  it("publishes each concert's events in order on <prefix>.<concert>.<type>, with Nats-Msg-Id = event id", async () => {
    await relay.runOnce(); // what other specs of this database left, to a stream deleted after
    await jsm.streams.delete(stream).catch(() => undefined);
    const concertId = await events(3);
    const pass = await relay.runOnce();
    expect(pass.failed).to.equal(0);
    const got = await messages();
    expect(got.map((m) => [m.event.sequence, m.subject])).to.deep.equal(
      [1, 2, 3, 4, 5, 6].map((seq) => [
        seq,
        `${prefix}.${concertId}.${seq % 2 === 1 ? "seat.held" : "seat.released"}`,
      ]),
    );
    expect(got.every((m) => m.msgId === m.event.id)).to.equal(true);
    const ids = await h.sql<{ id: string }>(
      "select id from outbox_event where concert_id = $1 order by concert_seq",
      [concertId],
    );
    expect(got.map((m) => m.event.id)).to.deep.equal(ids.map((row) => row.id));
  });

  it("after a relay dies between publishing and marking, its successor publishes again and JetStream drops the duplicates", async () => {
    await relay.runOnce();
    await jsm.streams.delete(stream).catch(() => undefined);
    const concertId = await events(2);
    await relay.runOnce();
    expect(await messages()).to.have.length(4);
    // What a relay that died right after publishing leaves: deliveries still pending.
    await relay.close();
    await h.sql(
      `update outbox_delivery set status = 'PENDING', delivered_at = null
        where destination = 'nats' and concert_id = $1`,
      [concertId],
    );
    const successor = relayTo(h.orm.em, [destination()], h.clock);
    try {
      const pass = await successor.runOnce();
      expect(pass.delivered, "published again: at least once").to.equal(4);
      const got = await messages();
      expect(
        got.map((m) => m.event.sequence),
        "no duplicate in the stream",
      ).to.deep.equal([1, 2, 3, 4]);
    } finally {
      await successor.close();
    }
  });

  it("keeps events pending, in order, while NATS cannot be reached", async () => {
    await relay.runOnce();
    await relay.close();
    const port = await freePort();
    const concertId = await events(1);
    const unreachable = relayTo(h.orm.em, [destination(`nats://127.0.0.1:${port}`)], h.clock);
    try {
      const pass = await unreachable.runOnce();
      expect(pass.failed).to.be.greaterThan(0);
      const rows = await h.sql<{ status: string; last_error: string }>(
        `select status, last_error from outbox_delivery
          where destination = 'nats' and concert_id = $1 order by concert_seq`,
        [concertId],
      );
      expect(rows.map((row) => row.status)).to.deep.equal(["PENDING", "PENDING"]);
      expect(must(rows[0]).last_error).to.match(/^NATS unavailable/);
    } finally {
      await unreachable.close();
    }
    // Back on the real server, the successor delivers them in order.
    relay = relayTo(h.orm.em, [destination()], h.clock);
    h.clock.advance(1000);
    await relay.runOnce();
    const got = (await messages()).filter((m) => m.event.concert_id === concertId);
    expect(got.map((m) => m.event.sequence)).to.deep.equal([1, 2]);
  });
});
