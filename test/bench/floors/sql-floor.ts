/**
 * The floors of a seat hold and of a payment: bare `node:http` and raw `pg`
 * (a `pg.Pool` of 16, named prepared statements) running the statements of
 * Stagedoor's hold and payment transactions against the project's own schema,
 * with none of its routing, authentication, ORM or unit of work.
 *
 * - `POST /hold {"userId","seatId","requestId"}`: BEGIN; claim the request id
 *   (INSERT … ON CONFLICT DO NOTHING RETURNING); SELECT the seat FOR UPDATE
 *   SKIP LOCKED; UPDATE it to HELD; INSERT the reservation; COMMIT. 200 with
 *   the seed's hold body, or 409 when the seat is taken.
 * - `POST /pay {"userId","reservationId","amount","requestId"}`: BEGIN; claim;
 *   SELECT the reservation, the seat and the wallet FOR UPDATE, in that order;
 *   UPDATE the wallet, the seat and the reservation; INSERT the payment and
 *   its ledger entry; COMMIT. 200 `{paymentId, status}`, or 409 when the
 *   reservation cannot be paid.
 * - `GET /ready`: 200 once the date facts are loaded.
 *
 * Env: PORT, DATABASE_URL (migrated by the project's migrations and seeded by
 * the bench), FLOOR_POOL_MAX (16).
 */
import { createHash, randomUUID } from "node:crypto";
import http from "node:http";
import pg from "pg";
import { floorPort, readJson, sendJson } from "./floor-http.js";

const HOLD_TTL_MS = 3_600_000;

const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.FLOOR_POOL_MAX ?? 16),
  application_name: "stagedoor-floor",
});
pool.on("error", (error) => console.error("sql floor: idle client error", error));

/** Concert dates never change, so their facts are read once, as the server caches them. */
const dates = new Map<string, { concertId: string; date: string }>();
for (const row of (
  await pool.query<{ id: string; concert_id: string; date: string }>(
    "select id, concert_id, to_char(date, 'YYYY-MM-DD') as date from concert_date",
  )
).rows) {
  dates.set(row.id, { concertId: row.concert_id, date: row.date });
}

const CLAIM = `insert into idempotency_key (user_id, request_id, operation, request_hash, result_id, created_at)
  values ($1, $2, $3, $4, $5, $6) on conflict (user_id, request_id) do nothing returning result_id`;

/** The request fingerprint the server stores with each claim (see idempotency.repository.ts). */
function requestHash(params: readonly (string | number)[]): string {
  return createHash("sha256").update(JSON.stringify(params)).digest("base64url");
}

interface SeatRow {
  id: string;
  concert_date_id: string;
  number: number;
  price: string;
  status: string;
  held_until: Date | null;
  reservation_id: string | null;
  version: number;
}

interface ReservationRow {
  id: string;
  user_id: string;
  seat_id: string;
  price: string;
  status: string;
  held_until: Date;
}

/** An expected refusal: rolled back and answered 409. */
class Refusal extends Error {}

/** Runs `work` in a transaction on one pooled connection. */
async function transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    const result = await work(client);
    await client.query("commit");
    return result;
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

async function claim(
  client: pg.PoolClient,
  userId: string,
  requestId: string,
  params: readonly (string | number)[],
  resultId: string,
  now: Date,
): Promise<void> {
  const claimed = await client.query({
    name: "floor_claim",
    text: CLAIM,
    values: [userId, requestId, params[0], requestHash(params), resultId, now],
  });
  // Replays are not part of the floor: every request id is new.
  if (claimed.rowCount !== 1) throw new Refusal("the request id was used before");
}

async function hold(body: Record<string, unknown>): Promise<unknown> {
  const userId = String(body.userId);
  const seatId = String(body.seatId);
  const now = new Date();
  const reservationId = randomUUID();
  return transaction(async (client) => {
    await claim(client, userId, String(body.requestId), ["hold", seatId], reservationId, now);
    const { rows } = await client.query<SeatRow>({
      name: "floor_hold_lock_seat",
      text: `select id, concert_date_id, number, price, status, held_until, reservation_id, version
               from seat where id = $1 limit 1 for update skip locked`,
      values: [seatId],
    });
    const seat = rows[0];
    const free =
      seat !== undefined &&
      (seat.status === "AVAILABLE" ||
        (seat.status === "HELD" && seat.held_until !== null && seat.held_until <= now));
    if (!seat || !free) throw new Refusal("the seat is not available");
    const date = dates.get(seat.concert_date_id);
    if (!date) throw new Error(`unknown concert date ${seat.concert_date_id}`);
    const heldUntil = new Date(now.getTime() + HOLD_TTL_MS);
    await client.query({
      name: "floor_hold_update_seat",
      text: "update seat set status = 'HELD', held_until = $2, reservation_id = $3, version = $4 where id = $1",
      values: [seat.id, heldUntil, reservationId, seat.version + 1],
    });
    await client.query({
      name: "floor_hold_insert_reservation",
      text: `insert into reservation (id, user_id, concert_id, concert_date_id, date, seat_id, seat_number,
               price, status, held_until, created_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, 'HELD', $9, $10)`,
      values: [
        reservationId,
        userId,
        date.concertId,
        seat.concert_date_id,
        date.date,
        seat.id,
        seat.number,
        seat.price,
        heldUntil,
        now,
      ],
    });
    return {
      reservationId,
      status: "Reserved",
      expirationTime: heldUntil.toISOString(),
      price: Number(seat.price),
    };
  });
}

async function pay(body: Record<string, unknown>): Promise<unknown> {
  const userId = String(body.userId);
  const reservationId = String(body.reservationId);
  const amount = BigInt(String(body.amount));
  const now = new Date();
  const paymentId = randomUUID();
  return transaction(async (client) => {
    await claim(
      client,
      userId,
      String(body.requestId),
      ["pay", reservationId, `${amount}n`],
      paymentId,
      now,
    );
    const reservation = (
      await client.query<ReservationRow>({
        name: "floor_pay_lock_reservation",
        text: "select id, user_id, seat_id, price, status, held_until from reservation where id = $1 limit 1 for update",
        values: [reservationId],
      })
    ).rows[0];
    if (!reservation || reservation.user_id !== userId) throw new Refusal("unknown reservation");
    if (reservation.status !== "HELD" || reservation.held_until <= now) {
      throw new Refusal("the hold has ended");
    }
    if (BigInt(reservation.price) !== amount) throw new Refusal("amount must equal the price");
    const seat = (
      await client.query<SeatRow>({
        name: "floor_pay_lock_seat",
        text: `select id, concert_date_id, number, price, status, held_until, reservation_id, version
                 from seat where id = $1 limit 1 for update`,
        values: [reservation.seat_id],
      })
    ).rows[0];
    if (!seat || seat.reservation_id !== reservation.id || seat.status !== "HELD") {
      throw new Refusal("the hold on this seat has ended");
    }
    const wallet = (
      await client.query<{ user_id: string; balance: string; version: number }>({
        name: "floor_pay_lock_wallet",
        text: "select user_id, balance, version from wallet where user_id = $1 limit 1 for update",
        values: [userId],
      })
    ).rows[0];
    if (!wallet || BigInt(wallet.balance) < amount) throw new Refusal("insufficient balance");
    const balance = BigInt(wallet.balance) - amount;
    const version = wallet.version + 1;
    await client.query({
      name: "floor_pay_update_wallet",
      text: "update wallet set balance = $2, version = $3, updated_at = $4 where user_id = $1",
      values: [userId, balance, version, now],
    });
    await client.query({
      name: "floor_pay_update_seat",
      text: "update seat set status = 'SOLD', held_until = null, version = $2 where id = $1",
      values: [seat.id, seat.version + 1],
    });
    await client.query({
      name: "floor_pay_update_reservation",
      text: "update reservation set status = 'CONFIRMED', confirmed_at = $2 where id = $1",
      values: [reservation.id, now],
    });
    await client.query({
      name: "floor_pay_insert_payment",
      text: `insert into payment (id, user_id, reservation_id, amount, status, created_at)
             values ($1, $2, $3, $4, 'COMPLETED', $5)`,
      values: [paymentId, userId, reservation.id, amount, now],
    });
    await client.query({
      name: "floor_pay_insert_ledger_entry",
      text: `insert into ledger_entry (id, user_id, kind, amount, balance_after, wallet_version, payment_id, created_at)
             values ($1, $2, 'PAYMENT', $3, $4, $5, $6, $7)`,
      values: [randomUUID(), userId, -amount, balance, version, paymentId, now],
    });
    return { paymentId, status: "Completed" };
  });
}

http
  .createServer(async (req, res) => {
    try {
      if (req.method === "GET") return sendJson(res, 200, {});
      const body = await readJson(req);
      const route = req.url === "/hold" ? hold : req.url === "/pay" ? pay : undefined;
      if (!route) return sendJson(res, 404, { error: "no such route" });
      sendJson(res, 200, await route(body));
    } catch (error) {
      if (error instanceof Refusal) return sendJson(res, 409, { error: error.message });
      sendJson(res, 500, { error: String((error as Error).message ?? error) });
    }
  })
  .listen(floorPort(), "127.0.0.1");
