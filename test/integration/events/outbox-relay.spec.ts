import { expect } from "chai";
import { entities } from "../../../server/src/modules/entities.js";
import type { OutboxRelay } from "../../../server/src/modules/events/index.js";
import { type Orm, openOrm } from "../../../server/src/persistence/orm.js";
import {
  type Caller,
  expectDomainError,
  must,
  ServiceHarness,
} from "../reservations/service-harness.js";
import { relayTo, WebhookReceiver, webhookTo } from "./event-kit.js";

const OPS = { name: "ops" };
const HOUR = 3_600_000;

interface OutboxRow {
  readonly id: string;
  readonly type: string;
  readonly concert_seq: string | null;
  readonly reservation_id: string | null;
}

describe("Events out: the outbox and its relay to webhooks, on PostgreSQL", () => {
  let h: ServiceHarness;
  let receiver: WebhookReceiver;
  let relay: OutboxRelay;
  let requests = 0;

  before(async () => {
    h = await ServiceHarness.start();
  });
  beforeEach(async () => {
    receiver = await WebhookReceiver.start(h.clock);
    relay = relayTo(h.orm.em, [webhookTo(receiver, h.clock)], h.clock);
  });
  afterEach(async () => {
    await relay.close();
    await receiver.close();
  });
  after(async () => {
    await h?.close();
  });

  const requestId = () => `events-${++requests}`;

  /** A concert of this test's own, with one date of `seats` seats on sale. */
  async function concert(seats: number): Promise<{ concertId: string; seatIds: string[] }> {
    const created = await h.createConcert([{ daysFromNow: 10, seats }]);
    const dateId = must(created.dates[0]).id;
    const seatIds: string[] = [];
    for (let n = 1; n <= seats; n++) seatIds.push(await h.seatId(dateId, n));
    return { concertId: created.concertId, seatIds };
  }

  async function fan(label: string, concertId: string, funds = 0n): Promise<Caller> {
    const caller = await h.admit(h.user(label), { concertId });
    if (funds > 0n) {
      await h.services.wallet.recharge(caller.principal, { amount: funds, requestId: requestId() });
    }
    return caller;
  }

  async function hold(caller: Caller, seatId: string) {
    return (
      await h.services.reservations.hold(caller.principal, { seatId, requestId: requestId() })
    ).reservation;
  }

  async function outboxOf(concertId: string): Promise<OutboxRow[]> {
    return h.sql<OutboxRow>(
      `select id, type, concert_seq::text, payload->>'reservation_id' as reservation_id
         from outbox_event where concert_id = $1 order by position`,
      [concertId],
    );
  }

  /** Runs relay passes until the receiver has `count` events of the concert (or fails). */
  async function relayUntil(concertId: string, count: number, relays = [relay]): Promise<void> {
    for (let pass = 0; pass < 50; pass++) {
      for (const r of relays) await r.runOnce();
      if (receiver.idsOf(concertId).length >= count) return;
    }
    expect.fail(`the receiver got ${receiver.idsOf(concertId).length} of ${count} events`);
  }

  it("publishes a hold, a payment, a release, a refund and an expiry in commit order, signed, with stable ids", async () => {
    const { concertId, seatIds } = await concert(3);
    const buyer = await fan("buyer", concertId, 10_000n);
    const bought = await hold(buyer, must(seatIds[0]));
    await h.services.payments.pay(buyer.principal, {
      reservationId: bought.id,
      amount: bought.price,
      requestId: requestId(),
    });
    const changer = await fan("changer", concertId);
    const released = await hold(changer, must(seatIds[1]));
    await h.services.reservations.release(changer.principal, {
      reservationId: released.id,
      requestId: requestId(),
    });
    await h.services.admin.refundTicket(OPS, {
      reservationId: bought.id,
      requestId: requestId(),
      note: "",
    });
    const sleeper = await fan("sleeper", concertId);
    const expired = await hold(sleeper, must(seatIds[2]));
    h.clock.advance(301_000);
    expect(await h.services.reservations.expireStaleHolds()).to.be.greaterThan(0);

    await relayUntil(concertId, 7);
    const got = receiver.received.filter((r) => r.event.concert_id === concertId);
    expect(got.map((r) => [r.event.sequence, r.event.type])).to.deep.equal([
      [1, "seat.held"],
      [2, "ticket.sold"],
      [3, "seat.held"],
      [4, "seat.released"],
      [5, "ticket.refunded"],
      [6, "seat.held"],
      [7, "hold.expired"],
    ]);
    expect(
      got.map((r) => (r.event.data as { reservation_id: string }).reservation_id),
    ).to.deep.equal([
      bought.id,
      bought.id,
      released.id,
      released.id,
      bought.id,
      expired.id,
      expired.id,
    ]);
    expect(
      got.every((r) => r.signed),
      "every signature verifies",
    ).to.equal(true);
    expect(got.every((r) => r.eventIdHeader === r.event.id)).to.equal(true);
    const sold = got[1]?.event.data as { amount: string; user_id: string; payment_id: string };
    expect(sold.amount).to.equal(String(bought.price));
    expect(sold.user_id).to.equal(buyer.principal.userId);
    // The ids are the outbox rows' own, stamped 1..7 in the order they were written.
    const rows = await outboxOf(concertId);
    expect(got.map((r) => r.event.id)).to.deep.equal(rows.map((row) => row.id));
    expect(rows.map((row) => row.concert_seq)).to.deep.equal(["1", "2", "3", "4", "5", "6", "7"]);

    // Nothing is sent twice by a relay that did not fail.
    await relay.runOnce();
    expect(receiver.idsOf(concertId)).to.have.length(7);
  });

  it("keeps retrying with backoff while the receiver is down, then delivers in order", async () => {
    await relay.runOnce(); // what earlier tests left
    const { concertId, seatIds } = await concert(2);
    const caller = await fan("retry", concertId);
    const first = await hold(caller, must(seatIds[0]));
    await h.services.reservations.release(caller.principal, {
      reservationId: first.id,
      requestId: requestId(),
    });
    await hold(caller, must(seatIds[1]));
    receiver.down = true;
    receiver.attempts = 0;

    await relay.runOnce();
    // Only the head of the lane was tried: nothing overtakes it.
    expect(receiver.attempts).to.equal(1);
    await relay.runOnce();
    expect(receiver.attempts, "not before its retry is due").to.equal(1);
    h.clock.advance(1000);
    await relay.runOnce();
    expect(receiver.attempts).to.equal(2);
    h.clock.advance(1000);
    await relay.runOnce();
    expect(receiver.attempts, "the second retry waits twice as long").to.equal(2);
    const [state] = await h.sql<{ attempts: number; last_error: string }>(
      `select attempts, last_error from outbox_delivery d join outbox_event e on e.id = d.event_id
        where e.concert_id = $1 and d.concert_seq = 1`,
      [concertId],
    );
    expect(state).to.deep.equal({ attempts: 2, last_error: "answered HTTP 503" });

    receiver.down = false;
    h.clock.advance(1000);
    await relayUntil(concertId, 3);
    expect(
      receiver.received
        .filter((r) => r.event.concert_id === concertId)
        .map((r) => [r.event.sequence, r.event.type]),
    ).to.deep.equal([
      [1, "seat.held"],
      [2, "seat.released"],
      [3, "seat.held"],
    ]);
  });

  it("dead-letters what fails past the retry window; an operator lists it and redelivers it", async () => {
    await relay.runOnce();
    const { concertId, seatIds } = await concert(1);
    const caller = await fan("dead", concertId);
    const held = await hold(caller, must(seatIds[0]));
    await h.services.reservations.release(caller.principal, {
      reservationId: held.id,
      requestId: requestId(),
    });
    receiver.down = true;
    await relay.runOnce();
    h.clock.advance(71 * HOUR);
    await relay.runOnce();
    const dead = () =>
      h.sql<{ event_id: string; status: string }>(
        `select d.event_id, d.status from outbox_delivery d join outbox_event e on e.id = d.event_id
          where e.concert_id = $1 and d.destination = $2 order by d.concert_seq`,
        [concertId, `webhook:${receiver.url}`],
      );
    expect((await dead()).map((row) => row.status)).to.deep.equal(["PENDING", "PENDING"]);
    h.clock.advance(2 * HOUR);
    await relay.runOnce();
    // Past 72 hours: each failed attempt gives its delivery up, and the lane goes on.
    const rows = await dead();
    expect(rows.map((row) => row.status)).to.deep.equal(["DEAD", "DEAD"]);

    const listed = await h.services.eventAdmin.listDeadLettered(100, "");
    const ours = listed.deliveries.filter((d) => d.concertId === concertId);
    expect(ours.map((d) => [d.type, d.attempts, d.lastError])).to.have.deep.members([
      ["seat.held", 3, "answered HTTP 503"],
      ["seat.released", 1, "answered HTTP 503"],
    ]);
    const firstId = must(rows[0]).event_id;
    const destination = `webhook:${receiver.url}`;
    const request = requestId();
    const redelivered = await h.services.eventAdmin.redeliver(OPS, {
      eventId: firstId,
      destination,
      requestId: request,
    });
    expect(redelivered.status).to.equal("PENDING");
    // A retry of the call replays; a second request for a pending delivery is refused.
    expect(
      (
        await h.services.eventAdmin.redeliver(OPS, {
          eventId: firstId,
          destination,
          requestId: request,
        })
      ).status,
    ).to.equal("PENDING");
    await expectDomainError(
      h.services.eventAdmin.redeliver(OPS, {
        eventId: firstId,
        destination,
        requestId: requestId(),
      }),
      "failed_precondition",
      "EVENT_NOT_DEAD_LETTERED",
    );
    await expectDomainError(
      h.services.eventAdmin.redeliver(OPS, {
        eventId: firstId,
        destination: "webhook:http://elsewhere.invalid/",
        requestId: requestId(),
      }),
      "not_found",
      "EVENT_DELIVERY_NOT_FOUND",
    );
    const audit = await h.sql<{ action: string; target: string }>(
      "select action, target from admin_audit where action = 'RedeliverEvent'",
    );
    expect(audit).to.deep.equal([{ action: "RedeliverEvent", target: `event/${firstId}` }]);

    receiver.down = false;
    await relayUntil(concertId, 1);
    expect(receiver.idsOf(concertId)).to.deep.equal([firstId]);
    expect((await dead()).map((row) => row.status)).to.deep.equal(["DELIVERED", "DEAD"]);
  });

  it("runs one relay at a time: two racing relays publish each event once, in order, and hand over", async () => {
    await relay.runOnce();
    const orms: Orm[] = [];
    const relays: OutboxRelay[] = [];
    try {
      for (const name of ["relay-a", "relay-b"]) {
        const orm = await openOrm({
          url: h.database.url,
          entities,
          poolMax: 3,
          applicationName: name,
        });
        orms.push(orm);
        relays.push(relayTo(orm.em, [webhookTo(receiver, h.clock)], h.clock, { batchSize: 3 }));
      }
      const { concertId, seatIds } = await concert(4);
      let running = [...relays];
      const leaders: OutboxRelay[] = [];
      let events = 0;
      for (let round = 0; round < 6; round++) {
        const caller = await fan(`race-${round}`, concertId);
        const writes = (async () => {
          const held = await hold(caller, must(seatIds[round % 4]));
          await h.services.reservations.release(caller.principal, {
            reservationId: held.id,
            requestId: requestId(),
          });
        })();
        const passes = await Promise.all(running.map((r) => r.runOnce()));
        const led = running.filter((_, i) => passes[i]?.leader === true);
        expect(led, "one leader per pass").to.have.length(1);
        leaders.push(must(led[0]));
        await writes;
        events += 2;
        if (round === 2) {
          // The last leader stops (as on shutdown); the lock is free between passes.
          await must(led[0]).close();
          running = running.filter((r) => r !== led[0]);
        }
      }
      await relayUntil(concertId, events, running);
      expect(
        leaders.slice(3).every((r) => r === running[0]),
        "the relay left leads once the other stopped",
      ).to.equal(true);
      const got = receiver.received.filter((r) => r.event.concert_id === concertId);
      expect(got.map((r) => r.event.sequence)).to.deep.equal(
        Array.from({ length: events }, (_, i) => i + 1),
      );
      expect(new Set(got.map((r) => r.event.id)).size).to.equal(events);
    } finally {
      for (const r of relays) await r.close();
      for (const orm of orms) await orm.close();
    }
  });

  it("writes events only for what committed: racing holds and payments give one ticket.sold per seat", async () => {
    const { concertId, seatIds } = await concert(3);
    const fans = await Promise.all(
      Array.from({ length: 12 }, (_, i) => fan(`rush-${i}`, concertId, 10_000n)),
    );
    // Every fan tries two seats at once (one hold per user: one of the two
    // fails inside its write statement, event and all) and then pays twice at once.
    await Promise.all(
      fans.map(async (caller, i) => {
        const tries = [seatIds[i % 3], seatIds[(i + 1) % 3]].map((seatId) =>
          hold(caller, must(seatId)).catch(() => undefined),
        );
        for (const held of await Promise.all(tries)) {
          if (held === undefined) continue;
          await Promise.all(
            [0, 1].map(() =>
              h.services.payments
                .pay(caller.principal, {
                  reservationId: held.id,
                  amount: held.price,
                  requestId: requestId(),
                })
                .catch(() => undefined),
            ),
          );
        }
      }),
    );
    const rows = await outboxOf(concertId);
    const reservations = await h.sql<{ id: string; status: string }>(
      "select id, status from reservation where concert_id = $1",
      [concertId],
    );
    const held = rows.filter((row) => row.type === "seat.held").map((row) => row.reservation_id);
    expect(held).to.have.members(reservations.map((r) => r.id));
    const sold = rows.filter((row) => row.type === "ticket.sold").map((row) => row.reservation_id);
    const confirmed = reservations.filter((r) => r.status === "CONFIRMED").map((r) => r.id);
    expect(sold).to.have.members(confirmed);
    expect(sold).to.have.length(3);
    expect(new Set(sold).size).to.equal(3);
  });
});
