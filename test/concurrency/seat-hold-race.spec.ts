import { Code } from "@connectrpc/connect";
import { ReservationState } from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor } from "../support/clients.js";
import {
  admitUser,
  asUser,
  expectRefusal,
  must,
  partition,
  RACE_PROTOCOLS,
  raceSuite,
  requestId,
  tally,
} from "./race-support.js";

describe("concurrency: seat holds", () => {
  // Every racer needs its own admitted token, so there must be room for all.
  const race = raceSuite({ env: { QUEUE_MAX_ACTIVE: "1000" } });

  for (const [index, protocol] of RACE_PROTOCOLS.entries()) {
    it(`100 admitted users racing for one seat over ${protocol}: exactly one holds it`, async () => {
      const seat = await race.db.seat(0, 1 + index);
      const users = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          admitUser(race.server, protocol, `hold-${protocol}-${i}`),
        ),
      );

      // One client for everyone, each call carrying its user's token: over
      // gRPC the 100 calls are streams multiplexed on one h2c connection.
      const shared = clientFor(protocol, race.server.url);
      const results = await Promise.allSettled(
        users.map((user) =>
          shared.reservation.holdSeat(
            { seatId: seat.id, requestId: requestId() },
            asUser(user.token),
          ),
        ),
      );

      const { fulfilled, rejected } = partition(results);
      expect(fulfilled, "winners").to.have.length(1);
      const winner = must(fulfilled[0]?.reservation, "the winner's reservation");
      expect(winner.seatId).to.equal(seat.id);
      expect(winner.state).to.equal(ReservationState.HELD);
      const reasons = rejected.map((error) =>
        expectRefusal(error, Code.FailedPrecondition, ["SEAT_UNAVAILABLE"]),
      );
      expect(tally(reasons)).to.deep.equal({ SEAT_UNAVAILABLE: 99 });

      const rows = await race.db.query<{ id: string; user_id: string; status: string }>(
        "select id, user_id, status from reservation where seat_id = $1",
        [seat.id],
      );
      expect(rows).to.deep.equal([{ id: winner.id, user_id: winner.userId, status: "HELD" }]);
      const [seatRow] = await race.db.query<{ status: string; reservation_id: string | null }>(
        "select status, reservation_id from seat where id = $1",
        [seat.id],
      );
      expect(seatRow).to.deep.equal({ status: "HELD", reservation_id: winner.id });
    });
  }

  for (const [index, protocol] of RACE_PROTOCOLS.entries()) {
    it(`60 admitted users racing in fours for 15 seats over ${protocol}: one holder per seat, the losers' request ids free`, async () => {
      // Holds that share a group-commit transaction: several on one seat
      // land in one batch, where the database alone would not keep them apart.
      const seats = (await race.db.seats()).filter((s) => s.dateIndex === 2).slice(15 * index);
      const contested = seats.slice(0, 15);
      expect(contested).to.have.length(15);
      const users = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          admitUser(race.server, protocol, `fours-${protocol}-${i}`),
        ),
      );
      const shared = clientFor(protocol, race.server.url);
      const attempts = users.map((user, i) => ({
        user,
        seat: must(contested[i % 15], "a contested seat"),
        requestId: requestId(),
      }));
      const results = await Promise.allSettled(
        attempts.map(({ user, seat, requestId }) =>
          shared.reservation.holdSeat({ seatId: seat.id, requestId }, asUser(user.token)),
        ),
      );

      const winners = new Map<string, string>();
      const losers: string[] = [];
      results.forEach((result, i) => {
        const attempt = must(attempts[i], "an attempt");
        if (result.status === "fulfilled") {
          const reservation = must(result.value.reservation, "a reservation");
          expect(reservation.seatId).to.equal(attempt.seat.id);
          expect(
            winners.has(attempt.seat.id),
            `two holders of seat ${attempt.seat.number}`,
          ).to.equal(false);
          winners.set(attempt.seat.id, reservation.id);
        } else {
          expectRefusal(result.reason, Code.FailedPrecondition, ["SEAT_UNAVAILABLE"]);
          losers.push(attempt.requestId);
        }
      });
      expect(winners.size, "one winner per seat").to.equal(15);

      const held = await race.db.query<{ seat_id: string; id: string }>(
        "select seat_id, id from reservation where seat_id = any($1::uuid[]) and status = 'HELD'",
        [contested.map((seat) => seat.id)],
      );
      expect(new Map(held.map((row) => [row.seat_id, row.id]))).to.deep.equal(winners);
      const seatRows = await race.db.query<{ id: string; reservation_id: string }>(
        "select id, reservation_id from seat where id = any($1::uuid[]) and status = 'HELD'",
        [contested.map((seat) => seat.id)],
      );
      expect(new Map(seatRows.map((row) => [row.id, row.reservation_id]))).to.deep.equal(winners);
      // A refused hold keeps no claim on its request id.
      const [{ claims }] = await race.db.query<{ claims: number }>(
        "select count(*)::int as claims from idempotency_key where request_id = any($1::text[])",
        [losers],
      );
      expect(claims).to.equal(0);
    });
  }

  it("one user racing holds on 20 different seats ends with exactly one hold", async () => {
    const user = await admitUser(race.server, "grpc", "hold-many");
    const seats = (await race.db.seats()).filter((s) => s.dateIndex === 1).slice(0, 20);
    expect(seats).to.have.length(20);

    const results = await Promise.allSettled(
      seats.map((seat) =>
        user.client.reservation.holdSeat({ seatId: seat.id, requestId: requestId() }),
      ),
    );

    const { fulfilled, rejected } = partition(results);
    expect(fulfilled, "holds granted").to.have.length(1);
    const held = must(fulfilled[0]?.reservation, "the granted hold");
    for (const error of rejected) {
      expectRefusal(error, Code.FailedPrecondition, ["HOLD_LIMIT_REACHED", "SEAT_UNAVAILABLE"]);
    }

    const rows = await race.db.query<{ id: string; seat_id: string }>(
      "select id, seat_id from reservation where user_id = $1 and status = 'HELD'",
      [user.userId],
    );
    expect(rows).to.deep.equal([{ id: held.id, seat_id: held.seatId }]);
    const [{ total }] = await race.db.query<{ total: number }>(
      "select count(*)::int as total from reservation where user_id = $1",
      [user.userId],
    );
    expect(total, "no reservation rows besides the one hold").to.equal(1);
    // Only the granted seat is taken; the other 19 are free again.
    const taken = await race.db.query<{ id: string }>(
      "select id from seat where id = any($1::uuid[]) and status <> 'AVAILABLE'",
      [seats.map((s) => s.id)],
    );
    expect(taken).to.deep.equal([{ id: held.seatId }]);
  });
});
