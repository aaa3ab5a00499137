import { expect } from "chai";
import type pg from "pg";
import type { ReservationView } from "../../../server/src/modules/reservations/reservations.service.js";
import {
  type Caller,
  type DemoSeat,
  expectDomainError,
  must,
  ServiceHarness,
} from "./service-harness.js";

const HOLD_TTL_MS = 300_000;
const ADMISSION_TTL_MS = 600_000;
const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";

interface ReservationRow {
  id: string;
  user_id: string;
  seat_id: string;
  status: string;
  held_until: Date;
  created_at: Date;
  confirmed_at: Date | null;
  ended_at: Date | null;
}

interface SeatRow {
  status: string;
  held_until: Date | null;
  reservation_id: string | null;
  version: number;
}

describe("ReservationsService on PostgreSQL", () => {
  let h: ServiceHarness;
  let requests = 0;

  before(async () => {
    h = await ServiceHarness.start();
  });
  after(async () => {
    await h?.close();
  });

  function requestId(): string {
    requests += 1;
    return `req-${requests}`;
  }

  async function admit(label: string): Promise<Caller> {
    return h.admit(h.user(label));
  }

  function hold(caller: Caller, seat: DemoSeat, id = requestId()): Promise<ReservationView> {
    return h.services.reservations.hold(caller.principal, { seatId: seat.id, requestId: id });
  }

  function release(caller: Caller, reservationId: string): Promise<ReservationView> {
    return h.services.reservations.release(caller.principal, {
      reservationId,
      requestId: requestId(),
    });
  }

  async function buy(caller: Caller, view: ReservationView): Promise<void> {
    const { price, id } = view.reservation;
    await h.services.wallet.recharge(caller.principal, { amount: price, requestId: requestId() });
    await h.services.payments.pay(caller.principal, {
      reservationId: id,
      amount: price,
      requestId: requestId(),
    });
  }

  async function reservationsOf(userId: string): Promise<ReservationRow[]> {
    return h.sql<ReservationRow>(
      `select id, user_id, seat_id, status, held_until, created_at, confirmed_at, ended_at
         from reservation where user_id = $1 order by created_at, id`,
      [userId],
    );
  }

  async function reservationRow(id: string): Promise<ReservationRow> {
    const [row] = await h.sql<ReservationRow>(
      `select id, user_id, seat_id, status, held_until, created_at, confirmed_at, ended_at
         from reservation where id = $1`,
      [id],
    );
    return must(row, `reservation ${id}`);
  }

  async function seatRow(seatId: string): Promise<SeatRow> {
    const [row] = await h.sql<SeatRow>(
      "select status, held_until, reservation_id, version from seat where id = $1",
      [seatId],
    );
    return must(row, `seat ${seatId}`);
  }

  async function keysOf(userId: string): Promise<{ request_id: string; operation: string }[]> {
    return h.sql("select request_id, operation from idempotency_key where user_id = $1", [userId]);
  }

  async function listedNumbers(concertDateId: string): Promise<number[]> {
    const page = await h.services.catalog.listBookableSeats(concertDateId, 0, "");
    return page.seats.map((seat) => seat.number);
  }

  describe("hold", () => {
    it("records the hold on the seat and the reservation with held_until = now + HOLD_TTL", async () => {
      const caller = await admit("holder");
      const seat = h.takeSeat();
      const before = await seatRow(seat.id);
      const view = await hold(caller, seat, "first-hold");

      const now = h.clock.ms();
      const r = view.reservation;
      expect(view.state).to.equal("HELD");
      expect({
        userId: r.userId,
        concertId: r.concertId,
        concertDateId: r.concertDateId,
        seatId: r.seatId,
        seatNumber: r.seatNumber,
        price: r.price,
        heldUntil: r.heldUntil.getTime(),
        createdAt: r.createdAt.getTime(),
      }).to.deep.equal({
        userId: caller.principal.userId,
        concertId: h.concertId,
        concertDateId: seat.concertDateId,
        seatId: seat.id,
        seatNumber: seat.number,
        price: seat.price,
        heldUntil: now + HOLD_TTL_MS,
        createdAt: now,
      });

      const rows = await reservationsOf(caller.principal.userId);
      expect(rows).to.deep.equal([
        {
          id: r.id,
          user_id: caller.principal.userId,
          seat_id: seat.id,
          status: "HELD",
          held_until: new Date(now + HOLD_TTL_MS),
          created_at: new Date(now),
          confirmed_at: null,
          ended_at: null,
        },
      ]);
      expect(await seatRow(seat.id)).to.deep.equal({
        status: "HELD",
        held_until: new Date(now + HOLD_TTL_MS),
        reservation_id: r.id,
        version: before.version + 1,
      });
      expect(await keysOf(caller.principal.userId)).to.deep.equal([
        { request_id: "first-hold", operation: "hold" },
      ]);
    });

    it("never lets the hold outlive the caller's admission", async () => {
      const caller = await admit("late");
      const admissionEnd = must(caller.principal.admissionExpiresAt).getTime();
      expect(admissionEnd).to.equal(h.clock.ms() + ADMISSION_TTL_MS);
      h.clock.advance(ADMISSION_TTL_MS - HOLD_TTL_MS + 100_000);
      const seat = h.takeSeat();
      const view = await hold(caller, seat);
      expect(view.reservation.heldUntil.getTime()).to.equal(admissionEnd);
      expect((await reservationRow(view.reservation.id)).held_until.getTime()).to.equal(
        admissionEnd,
      );
      expect((await seatRow(seat.id)).held_until?.getTime()).to.equal(admissionEnd);
    });

    it("refuses a waiting caller with TOKEN_NOT_ADMITTED and writes nothing; once admitted it holds", async () => {
      // A second instance whose waiting room admits one user at a time.
      const line = h.graph({ QUEUE_MAX_ACTIVE: "1" });
      const first = await h.admit(h.user("first"), { services: line });
      const waiterId = h.user("waiter");
      const issued = await line.queue.issueToken({
        concertId: h.concertId,
        userId: waiterId,
        assertion: undefined,
      });
      expect([issued.status.state, issued.status.position]).to.deep.equal(["waiting", 1]);
      const waiting = await h.reauthenticate(issued.token, line);
      expect(waiting.state).to.equal("waiting");

      const seat = h.takeSeat();
      const before = await seatRow(seat.id);
      await expectDomainError(
        line.reservations.hold(waiting, { seatId: seat.id, requestId: "wait-hold" }),
        "permission_denied",
        "TOKEN_NOT_ADMITTED",
      );
      expect(await reservationsOf(waiterId)).to.deep.equal([]);
      expect(await keysOf(waiterId)).to.deep.equal([]);
      expect(await seatRow(seat.id)).to.deep.equal(before);

      await line.queue.leave(first.principal);
      await line.queue.promoteAll();
      const admitted = await h.reauthenticate(issued.token, line);
      expect(admitted.state).to.equal("admitted");
      // The refused attempt claimed nothing, so the same request id now works.
      const view = await line.reservations.hold(admitted, {
        seatId: seat.id,
        requestId: "wait-hold",
      });
      expect(view.state).to.equal("HELD");
      expect((await seatRow(seat.id)).reservation_id).to.equal(view.reservation.id);
    });

    it("refuses a caller admitted to another concert", async () => {
      const other = await h.createConcert([{ daysFromNow: 3, seats: 1 }]);
      const caller = await h.admit(h.user("elsewhere"), { concertId: other.concertId });
      const seat = h.takeSeat();
      const before = await seatRow(seat.id);
      await expectDomainError(hold(caller, seat), "permission_denied", "TOKEN_WRONG_CONCERT");
      expect(await reservationsOf(caller.principal.userId)).to.deep.equal([]);
      expect(await seatRow(seat.id)).to.deep.equal(before);
    });

    it("answers a holder asking again for their seat with their hold, whatever the request id, writing nothing", async () => {
      const caller = await admit("again");
      const seat = h.takeSeat();
      const held = await hold(caller, seat);
      const seatBefore = await seatRow(seat.id);
      const again = await hold(caller, seat);
      expect(again.reservation.id).to.equal(held.reservation.id);
      expect(again.state).to.equal("HELD");
      expect(await keysOf(caller.principal.userId)).to.have.length(1);
      expect(await seatRow(seat.id)).to.deep.equal(seatBefore);
      // Once the hold has ended, asking again is a new hold.
      h.clock.advance(HOLD_TTL_MS);
      const renewed = await hold(caller, seat);
      expect(renewed.reservation.id).to.not.equal(held.reservation.id);
    });

    it("allows one hold per user, and the database refuses a second HELD row by itself", async () => {
      const caller = await admit("greedy");
      const [first, second] = [h.takeSeat(), h.takeSeat()];
      const held = await hold(caller, first);
      const secondBefore = await seatRow(second.id);
      await expectDomainError(hold(caller, second), "failed_precondition", "HOLD_LIMIT_REACHED");
      expect((await reservationsOf(caller.principal.userId)).map((r) => r.id)).to.deep.equal([
        held.reservation.id,
      ]);
      expect(await keysOf(caller.principal.userId)).to.have.length(1);
      expect(await seatRow(second.id)).to.deep.equal(secondBefore);

      const insert = (status: string) =>
        h.sql(
          `insert into reservation (id, user_id, concert_id, concert_date_id, date, seat_id,
                                    seat_number, price, status, held_until, created_at)
           select gen_random_uuid(), $1, d.concert_id, d.id, d.date, s.id, s.number, s.price,
                  $3, $4, $4
             from seat s join concert_date d on d.id = s.concert_date_id where s.id = $2`,
          [caller.principal.userId, second.id, status, h.clock.now()],
        );
      let refusal: unknown;
      try {
        await insert("HELD");
      } catch (error) {
        refusal = error;
      }
      const dbError = refusal as pg.DatabaseError | undefined;
      expect([dbError?.code, dbError?.constraint]).to.deep.equal([
        "23505",
        "reservation_one_hold_per_user",
      ]);
      // The index is partial: rows that are no longer held don't count.
      await insert("EXPIRED");
      expect(await reservationsOf(caller.principal.userId)).to.have.length(2);
    });

    it("lets a user hold again once their own hold has expired by time; the stale one becomes EXPIRED", async () => {
      const caller = await admit("again");
      const [first, second] = [h.takeSeat(), h.takeSeat()];
      const stale = await hold(caller, first);
      h.clock.set(stale.reservation.heldUntil);
      const fresh = await hold(caller, second);
      expect(fresh.state).to.equal("HELD");

      const rows = await reservationsOf(caller.principal.userId);
      expect(rows.map((r) => [r.id, r.status, r.ended_at])).to.deep.equal([
        [stale.reservation.id, "EXPIRED", stale.reservation.heldUntil],
        [fresh.reservation.id, "HELD", null],
      ]);
      expect((await seatRow(second.id)).reservation_id).to.equal(fresh.reservation.id);
      expect((await h.services.catalog.getSeat(first.id)).state).to.equal("AVAILABLE");
      // The stale hold's seat row is tidied in the same step, not left HELD.
      const freed = await seatRow(first.id);
      expect([freed.status, freed.held_until, freed.reservation_id]).to.deep.equal([
        "AVAILABLE",
        null,
        null,
      ]);
    });

    it("refuses to hold or list seats of a performance that has started (SALE_CLOSED)", async () => {
      // The concert still sells its later date, so a token is issued; only the started date is shut.
      const started = await h.createConcert([
        { daysFromNow: -1, seats: 2 },
        { daysFromNow: 3, seats: 2 },
      ]);
      const date = must(started.dates[0]);
      const caller = await h.admit(h.user("too-late"), { concertId: started.concertId });
      const seatId = await h.seatId(date.id, 1);
      const before = await seatRow(seatId);
      await expectDomainError(
        h.services.reservations.hold(caller.principal, { seatId, requestId: requestId() }),
        "failed_precondition",
        "SALE_CLOSED",
      );
      expect(await reservationsOf(caller.principal.userId)).to.deep.equal([]);
      expect(await seatRow(seatId)).to.deep.equal(before);
      expect(await listedNumbers(date.id)).to.deep.equal([]);
      expect((await h.services.catalog.availability(date.id)).count).to.equal(0);
    });

    it("refuses a seat that is held or sold with SEAT_UNAVAILABLE", async () => {
      const [owner, rival, latecomer] = [
        await admit("owner"),
        await admit("rival"),
        await admit("latecomer"),
      ];
      const seat = h.takeSeat();
      const view = await hold(owner, seat);
      await expectDomainError(hold(rival, seat), "failed_precondition", "SEAT_UNAVAILABLE");
      expect(await reservationsOf(rival.principal.userId)).to.deep.equal([]);
      expect((await seatRow(seat.id)).reservation_id).to.equal(view.reservation.id);

      await buy(owner, view);
      expect((await seatRow(seat.id)).status).to.equal("SOLD");
      // Even long after: a sold seat never comes back.
      h.clock.advance(HOLD_TTL_MS + 1);
      await expectDomainError(hold(latecomer, seat), "failed_precondition", "SEAT_UNAVAILABLE");
      expect(await reservationsOf(latecomer.principal.userId)).to.deep.equal([]);
    });

    it("refuses unknown and malformed ids", async () => {
      const caller = await admit("typo");
      await expectDomainError(
        h.services.reservations.hold(caller.principal, { seatId: UNKNOWN_ID, requestId: "x" }),
        "not_found",
        "SEAT_NOT_FOUND",
      );
      const seat = h.takeSeat();
      for (const input of [
        { seatId: "12", requestId: "x" },
        { seatId: seat.id, requestId: "" },
        { seatId: seat.id, requestId: "r".repeat(129) },
        { seatId: seat.id, requestId: "line\nbreak" },
      ]) {
        await expectDomainError(
          h.services.reservations.hold(caller.principal, input),
          "invalid_argument",
          "INVALID_ARGUMENT",
        );
      }
      expect(await reservationsOf(caller.principal.userId)).to.deep.equal([]);
      expect(await keysOf(caller.principal.userId)).to.deep.equal([]);
    });

    it("takes over someone else's expired hold", async () => {
      const [first, second] = [await admit("slow"), await admit("quick")];
      const seat = h.takeSeat();
      const stale = await hold(first, seat);
      h.clock.set(stale.reservation.heldUntil);
      const taken = await hold(second, seat);
      expect(taken.state).to.equal("HELD");
      const seatNow = await seatRow(seat.id);
      expect([seatNow.status, seatNow.reservation_id, seatNow.held_until]).to.deep.equal([
        "HELD",
        taken.reservation.id,
        taken.reservation.heldUntil,
      ]);
      expect(
        (await h.services.reservations.get(first.principal, stale.reservation.id)).state,
      ).to.equal("EXPIRED");
      // The loser cannot release what they no longer hold, nor disturb the new hold.
      await expectDomainError(
        release(first, stale.reservation.id),
        "failed_precondition",
        "HOLD_EXPIRED",
      );
      expect(await seatRow(seat.id)).to.deep.equal(seatNow);
    });

    it("replays a request id without a second row, and refuses its reuse for another request", async () => {
      const caller = await admit("retry");
      const [seat, other] = [h.takeSeat(), h.takeSeat()];
      const first = await hold(caller, seat, "same-id");
      h.clock.advance(1000);
      const again = await hold(caller, seat, "same-id");
      expect(again.reservation.id).to.equal(first.reservation.id);
      expect(again.reservation.heldUntil).to.deep.equal(first.reservation.heldUntil);
      expect(await reservationsOf(caller.principal.userId)).to.have.length(1);

      await expectDomainError(
        hold(caller, other, "same-id"),
        "invalid_argument",
        "REQUEST_ID_REUSED",
      );
      await expectDomainError(
        h.services.reservations.release(caller.principal, {
          reservationId: first.reservation.id,
          requestId: "same-id",
        }),
        "invalid_argument",
        "REQUEST_ID_REUSED",
      );
      expect((await seatRow(other.id)).status).to.equal("AVAILABLE");
      expect((await reservationsOf(caller.principal.userId)).map((r) => r.status)).to.deep.equal([
        "HELD",
      ]);
      expect(await keysOf(caller.principal.userId)).to.have.length(1);
    });
  });

  describe("release", () => {
    it("frees the seat at once: listed again and holdable by anyone", async () => {
      const [caller, next] = [await admit("changed-mind"), await admit("next")];
      const seat = h.takeSeat();
      const view = await hold(caller, seat);
      expect(await listedNumbers(seat.concertDateId)).to.not.include(seat.number);

      const released = await release(caller, view.reservation.id);
      expect(released.state).to.equal("RELEASED");
      const row = await reservationRow(view.reservation.id);
      expect([row.status, row.ended_at]).to.deep.equal(["RELEASED", h.clock.now()]);
      const seatNow = await seatRow(seat.id);
      expect([seatNow.status, seatNow.held_until, seatNow.reservation_id]).to.deep.equal([
        "AVAILABLE",
        null,
        null,
      ]);
      expect(await listedNumbers(seat.concertDateId)).to.include(seat.number);
      expect((await h.services.catalog.getSeat(seat.id)).state).to.equal("AVAILABLE");

      // No hold limit left behind, and the seat is free for others.
      expect((await hold(caller, h.takeSeat())).state).to.equal("HELD");
      expect((await hold(next, seat)).state).to.equal("HELD");
    });

    it("refuses confirmed, released, other users' and expired reservations, changing nothing", async () => {
      const [buyer, owner, stranger, sleeper] = [
        await admit("buyer"),
        await admit("owner"),
        await admit("stranger"),
        await admit("sleeper"),
      ];
      const paid = await hold(buyer, h.takeSeat());
      await buy(buyer, paid);
      const afterPay = await h.reauthenticate(buyer.token);
      await expectDomainError(
        h.services.reservations.release(afterPay, {
          reservationId: paid.reservation.id,
          requestId: requestId(),
        }),
        "failed_precondition",
        "ALREADY_PAID",
      );
      expect((await reservationRow(paid.reservation.id)).status).to.equal("CONFIRMED");
      expect((await seatRow(paid.reservation.seatId)).status).to.equal("SOLD");

      const mine = await hold(owner, h.takeSeat());
      await expectDomainError(
        release(stranger, mine.reservation.id),
        "not_found",
        "RESERVATION_NOT_FOUND",
      );
      expect((await reservationRow(mine.reservation.id)).status).to.equal("HELD");
      await release(owner, mine.reservation.id);
      await expectDomainError(
        release(owner, mine.reservation.id),
        "failed_precondition",
        "RESERVATION_NOT_HELD",
      );
      await expectDomainError(release(owner, UNKNOWN_ID), "not_found", "RESERVATION_NOT_FOUND");

      const seat = h.takeSeat();
      const lapsed = await hold(sleeper, seat);
      h.clock.set(lapsed.reservation.heldUntil);
      const seatBefore = await seatRow(seat.id);
      await expectDomainError(
        release(sleeper, lapsed.reservation.id),
        "failed_precondition",
        "HOLD_EXPIRED",
      );
      expect((await reservationRow(lapsed.reservation.id)).status).to.equal("HELD");
      expect(await seatRow(seat.id)).to.deep.equal(seatBefore);
    });
  });

  describe("get and list", () => {
    it("show only the caller's reservations, newest first, page by page", async () => {
      const [caller, other] = [await admit("history"), await admit("neighbour")];
      // Two reservations at the same instant, to page across a created_at tie.
      const r1 = await hold(caller, h.takeSeat());
      await release(caller, r1.reservation.id);
      const r2 = await hold(caller, h.takeSeat());
      await release(caller, r2.reservation.id);
      h.clock.advance(1000);
      const r3 = await hold(caller, h.takeSeat());
      const theirs = await hold(other, h.takeSeat());

      const expected = await h.sql<{ id: string }>(
        "select id from reservation where user_id = $1 order by created_at desc, id desc",
        [caller.principal.userId],
      );
      expect(expected.map((row) => row.id)[0]).to.equal(r3.reservation.id);

      for (const size of [1, 2]) {
        const seen: string[][] = [];
        let token = "";
        do {
          const page = await h.services.reservations.list(caller.principal, size, token);
          seen.push(page.reservations.map((v) => v.reservation.id));
          token = page.nextPageToken;
        } while (token !== "" && seen.length < 10);
        expect(seen.flat(), `page size ${size}`).to.deep.equal(expected.map((row) => row.id));
        expect(seen.length).to.equal(Math.ceil(3 / size));
      }

      const all = await h.services.reservations.list(caller.principal, 0, "");
      expect(all.nextPageToken).to.equal("");
      expect(all.reservations.map((v) => [v.reservation.id, v.state])).to.deep.equal(
        expected.map((row) => [row.id, row.id === r3.reservation.id ? "HELD" : "RELEASED"]),
      );
      const theirsListed = await h.services.reservations.list(other.principal, 0, "");
      expect(theirsListed.reservations.map((v) => v.reservation.id)).to.deep.equal([
        theirs.reservation.id,
      ]);

      const got = await h.services.reservations.get(caller.principal, r2.reservation.id);
      expect([got.reservation.id, got.state]).to.deep.equal([r2.reservation.id, "RELEASED"]);
      await expectDomainError(
        h.services.reservations.get(caller.principal, theirs.reservation.id),
        "not_found",
        "RESERVATION_NOT_FOUND",
      );
      await expectDomainError(
        h.services.reservations.get(caller.principal, "nope"),
        "invalid_argument",
        "INVALID_ARGUMENT",
      );
      for (const [size, token] of [
        [101, ""],
        [-1, ""],
        [10, "garbage!"],
        [10, Buffer.from('{"n":3}').toString("base64url")],
      ] as const) {
        await expectDomainError(
          h.services.reservations.list(caller.principal, size, token),
          "invalid_argument",
          "INVALID_ARGUMENT",
        );
      }
    });
  });

  describe("expireStaleHolds", () => {
    it("expires only stale HELD reservations, frees only seats they still hold, and skips locked rows", async () => {
      const [a, b, c, d, e, f] = await Promise.all(
        ["sweep-a", "sweep-b", "sweep-c", "sweep-d", "sweep-e", "sweep-f"].map(admit),
      );
      const [seatA, seatB, seatD, seatE, seatF] = [1, 2, 3, 4, 5].map(() => h.takeSeat());
      const staleA = await hold(a, seatA);
      const staleB = await hold(b, seatB);
      const paidD = await hold(d, seatD);
      await buy(d, paidD);
      const inFlightF = await hold(f, seatF);
      const paidRowBefore = await reservationRow(paidD.reservation.id);

      h.clock.set(staleA.reservation.heldUntil);
      const takenB = await hold(c, seatB);
      const freshE = await hold(e, seatE);

      const [pending] = await h.sql<{ count: number }>(
        "select count(*)::int as count from reservation where status = 'HELD' and held_until <= $1",
        [h.clock.now()],
      );
      // A payment in flight holds F's reservation row lock: the sweeper must skip it.
      const payment = await h.pool.connect();
      let expired: number;
      try {
        await payment.query("begin");
        await payment.query("select id from reservation where id = $1 for update", [
          inFlightF.reservation.id,
        ]);
        expired = await h.services.reservations.expireStaleHolds(500);
        expect((await reservationRow(inFlightF.reservation.id)).status).to.equal("HELD");
        expect((await seatRow(seatF.id)).status).to.equal("HELD");
      } finally {
        await payment.query("rollback");
        payment.release();
      }
      expect(expired).to.equal(must(pending).count - 1);

      const now = h.clock.now();
      const a1 = await reservationRow(staleA.reservation.id);
      expect([a1.status, a1.ended_at]).to.deep.equal(["EXPIRED", staleA.reservation.heldUntil]);
      const seatA1 = await seatRow(seatA.id);
      expect([seatA1.status, seatA1.held_until, seatA1.reservation_id]).to.deep.equal([
        "AVAILABLE",
        null,
        null,
      ]);

      expect((await reservationRow(staleB.reservation.id)).status).to.equal("EXPIRED");
      const seatB1 = await seatRow(seatB.id);
      expect([seatB1.status, seatB1.reservation_id, seatB1.held_until]).to.deep.equal([
        "HELD",
        takenB.reservation.id,
        takenB.reservation.heldUntil,
      ]);
      expect((await reservationRow(takenB.reservation.id)).status).to.equal("HELD");

      expect(await reservationRow(paidD.reservation.id)).to.deep.equal(paidRowBefore);
      const seatD1 = await seatRow(seatD.id);
      expect([seatD1.status, seatD1.reservation_id]).to.deep.equal(["SOLD", paidD.reservation.id]);

      expect((await reservationRow(freshE.reservation.id)).status).to.equal("HELD");
      expect((await seatRow(seatE.id)).reservation_id).to.equal(freshE.reservation.id);
      expect(freshE.reservation.heldUntil > now).to.equal(true);

      // Once the lock is gone, the next run picks up the skipped hold, and only it.
      expect(await h.services.reservations.expireStaleHolds(500)).to.equal(1);
      expect((await reservationRow(inFlightF.reservation.id)).status).to.equal("EXPIRED");
      expect((await seatRow(seatF.id)).status).to.equal("AVAILABLE");
      expect(await h.services.reservations.expireStaleHolds(500)).to.equal(0);
    });

    it("works in batches of the given size", async () => {
      const callers = await Promise.all(["batch-a", "batch-b", "batch-c"].map(admit));
      const held = [];
      for (const caller of callers) held.push(await hold(caller, h.takeSeat()));
      h.clock.set(must(held[0]).reservation.heldUntil);
      // Earlier tests may have left stale holds too; drain them first.
      const [pending] = await h.sql<{ count: number }>(
        "select count(*)::int as count from reservation where status = 'HELD' and held_until <= $1",
        [h.clock.now()],
      );
      expect(must(pending).count).to.be.at.least(3);
      const counts: number[] = [];
      for (let run = 0; run < must(pending).count + 1; run++) {
        counts.push(await h.services.reservations.expireStaleHolds(2));
      }
      expect(counts.every((count) => count <= 2)).to.equal(true);
      expect(counts.reduce((sum, count) => sum + count, 0)).to.equal(must(pending).count);
      const statuses = await h.sql<{ status: string }>(
        "select status from reservation where id = any($1::uuid[])",
        [held.map((view) => view.reservation.id)],
      );
      expect(statuses.map((row) => row.status)).to.deep.equal(["EXPIRED", "EXPIRED", "EXPIRED"]);
    });
  });
});
