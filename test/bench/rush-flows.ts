import type { BenchCatalog, BenchSeat } from "./bench-catalog.js";
import {
  type ConnectionPool,
  type HttpReply,
  type HttpTarget,
  type Judge,
  jsonBody,
  okIf200,
  type PhaseResult,
  runPhase,
} from "./load.js";

/** The two ways in: the seed's REST routes, and Connect JSON over HTTP/1.1. */
export type Flow = "rest" | "connect";

const QUEUE = "/stagedoor.queue.v1.QueueService";
const CATALOG = "/stagedoor.catalog.v1.CatalogService";
const RESERVATION = "/stagedoor.reservation.v1.ReservationService";
const WALLET = "/stagedoor.wallet.v1.WalletService";
const PAYMENT = "/stagedoor.payment.v1.PaymentService";

/** The most seats one listing call returns (catalog.service.ts MAX_SEAT_PAGE). */
const SEAT_PAGE = 5000;

/** A fan of the rush and what happened to them. */
export interface Fan {
  readonly index: number;
  readonly userId: string;
  token: string;
  /** The seat the server said this fan holds, once a hold succeeded. */
  win?: Win;
  /** True once the payment succeeded. */
  paid: boolean;
}

/** A successful hold, as the server reported it. */
export interface Win {
  readonly dateIndex: number;
  readonly number: number;
  readonly reservationId: string;
  readonly price: number;
}

/** The rush's shape: how many fans, how hard they try, how many pay at once. */
export interface RushShape {
  readonly fans: number;
  readonly connections: number;
  /** A fan gives up after this many refused (or failed) hold attempts. */
  readonly retries: number;
  readonly payers: number;
  /**
   * Percent of the winners who press "pay" once before topping up, and are
   * refused as too poor (INSUFFICIENT_BALANCE), then top up and pay with the
   * same request: the refusals a group-commit batch has to absorb.
   */
  readonly payEarlyPercent: number;
  readonly seed: number;
  readonly listing: boolean;
}

/** The phases of one round and the fans' final state. */
export interface FlowResult {
  readonly phases: readonly PhaseResult[];
  readonly tokens: PhaseResult;
  readonly holds: PhaseResult;
  readonly pay: PhaseResult;
  readonly fans: readonly Fan[];
  /** Fans whose payment succeeded, per second of the pay phase. */
  readonly paidFansPerSecond: number;
  /** The unmeasured warm-up, when the catalog has a warm-up date. */
  readonly warmUp?: WarmUp;
}

/** Hooks run just before and just after each measured phase, outside its clock. */
export interface PhaseWatch {
  before(): Promise<void>;
  after(phase: string): Promise<void>;
}

/** What the warm-up did: every fan pays for a seat of the warm-up date. */
export interface WarmUp {
  readonly fans: number;
  readonly paid: number;
  readonly requests: number;
  /** Replies that were neither the expected answer nor an expected refusal. */
  readonly errors: number;
}

/**
 * How one flow speaks to the server: request builders, the judges that tell
 * success from an expected refusal from an error, and the readers of the
 * replies the fans act on. The phases are written once, over this.
 */
interface Protocol {
  /** Resolves what the fans need before the storm (ids, dates), unmeasured. */
  prepare(pool: ConnectionPool): Promise<void>;
  issue(fan: Fan): string;
  readonly admitted: Judge;
  listing(fan: Fan, dateIndex: number): readonly string[];
  hold(fan: Fan, dateIndex: number, number: number, attempt: number): string;
  readonly holdJudge: Judge;
  readHold(reply: HttpReply): { reservationId: string; price: number };
  recharge(fan: Fan, win: Win): string;
  pay(fan: Fan, win: Win): string;
  /** A payment refused because the balance is too low; anything else is an error. */
  readonly tooPoor: Judge;
}

function restProtocol(target: HttpTarget, catalog: BenchCatalog): Protocol {
  const measured = catalog.dates.map((d) => d.date);
  // The warm-up date, when there is one, is the last index.
  const dates = catalog.warmUp ? [...measured, catalog.warmUp.date] : measured;
  return {
    async prepare(pool) {
      const listed = jsonBody(await pool.send(target.get("/api/concerts/dates"))).dates;
      if (JSON.stringify(listed) !== JSON.stringify(measured)) {
        throw new Error(
          `GET /api/concerts/dates listed ${JSON.stringify(listed)}, seeded ${measured}`,
        );
      }
    },
    issue: (fan) => target.post("/api/token", { userId: fan.userId }),
    admitted: (reply) =>
      reply.status === 200 && /"queuePosition":0[,}]/.test(reply.text) ? "ok" : "error",
    listing: (_fan, d) => [
      target.get("/api/concerts/dates"),
      target.get(`/api/concerts/seats?date=${dates[d]}`),
    ],
    hold: (fan, d, number) =>
      target.post("/api/reservations", {
        userId: fan.userId,
        date: dates[d],
        seatNumber: number,
        token: fan.token,
      }),
    // The seed's contract: 409 when the seat is taken.
    holdJudge: (reply) =>
      reply.status === 200 ? "ok" : reply.status === 409 ? "refused" : "error",
    readHold(reply) {
      const body = jsonBody(reply);
      return { reservationId: String(body.reservationId), price: Number(body.price) };
    },
    recharge: (fan, win) =>
      target.post("/api/balance/recharge", { userId: fan.userId, amount: win.price }, fan.token),
    pay: (fan, win) =>
      target.post(
        "/api/payments",
        { userId: fan.userId, reservationId: win.reservationId, amount: win.price },
        fan.token,
      ),
    // The seed's contract answers 400 with the message; the reason is in a header.
    tooPoor: (reply) =>
      reply.status === 400 && reply.text.includes("balance is too low") ? "refused" : "error",
  };
}

function connectProtocol(target: HttpTarget, catalog: BenchCatalog): Protocol {
  const concertId = catalog.concertId;
  const dateIds: string[] = [];
  /** Seat ids by date index, then by seat number; the warm-up date's are known from the seed. */
  const seatIds: Map<number, string>[] = [];
  const warmUpSeats = new Map(catalog.warmUp?.seats.map((seat) => [seat.number, seat.id]));
  return {
    async prepare(pool) {
      const concerts = jsonBody(await pool.send(target.post(`${CATALOG}/ListConcerts`, {})))
        .concerts as { id: string }[] | undefined;
      if (concerts?.[0]?.id !== concertId) throw new Error("ListConcerts did not list the concert");
      const dates = jsonBody(
        await pool.send(target.post(`${CATALOG}/ListConcertDates`, { concertId })),
      ).dates as { id: string; date: string }[] | undefined;
      for (const seeded of catalog.dates) {
        const listed = dates?.find((d) => d.date === seeded.date);
        if (!listed) throw new Error(`ListConcertDates did not list ${seeded.date}`);
        dateIds.push(listed.id);
        const byNumber = new Map<number, string>();
        let pageToken = "";
        do {
          const page = jsonBody(
            await pool.send(
              target.post(`${CATALOG}/ListSeats`, {
                concertDateId: listed.id,
                pageSize: SEAT_PAGE,
                pageToken,
              }),
            ),
          );
          for (const seat of (page.seats ?? []) as { id: string; number: number }[]) {
            byNumber.set(seat.number, seat.id);
          }
          pageToken = String(page.nextPageToken ?? "");
        } while (pageToken !== "");
        if (byNumber.size !== seeded.seats.length) {
          throw new Error(`ListSeats listed ${byNumber.size} of ${seeded.seats.length} seats`);
        }
        seatIds.push(byNumber);
      }
    },
    issue: (fan) => target.post(`${QUEUE}/IssueQueueToken`, { concertId, userId: fan.userId }),
    admitted: (reply) =>
      reply.status === 200 && reply.text.includes('"QUEUE_TOKEN_STATE_ADMITTED"') ? "ok" : "error",
    listing: (_fan, d) => [
      target.post(`${CATALOG}/ListConcertDates`, { concertId }),
      target.post(`${CATALOG}/ListAvailableSeats`, {
        concertDateId: dateIds[d],
        pageSize: SEAT_PAGE,
      }),
    ],
    hold: (fan, d, number, attempt) =>
      target.post(
        `${RESERVATION}/HoldSeat`,
        {
          seatId: (d === catalog.dates.length ? warmUpSeats : seatIds[d])?.get(number),
          requestId: `hold-${fan.userId}-${attempt}`,
        },
        fan.token,
      ),
    holdJudge: connectSeatTaken,
    readHold(reply) {
      const reservation = jsonBody(reply).reservation as
        | { id?: string; price?: string }
        | undefined;
      return { reservationId: String(reservation?.id), price: Number(reservation?.price) };
    },
    recharge: (fan, win) =>
      target.post(
        `${WALLET}/RechargeWallet`,
        { amount: String(win.price), requestId: `recharge-${fan.userId}` },
        fan.token,
      ),
    pay: (fan, win) =>
      target.post(
        `${PAYMENT}/CreatePayment`,
        {
          reservationId: win.reservationId,
          amount: String(win.price),
          requestId: `pay-${fan.userId}`,
        },
        fan.token,
      ),
    tooPoor: (reply) =>
      reply.status === 400 && reply.text.includes('"INSUFFICIENT_BALANCE"') ? "refused" : "error",
  };
}

/** Whether the winner `k` pays before topping up: `percent` of them, spread evenly. */
function paysEarly(k: number, percent: number): boolean {
  return Math.floor(((k + 1) * percent) / 100) > Math.floor((k * percent) / 100);
}

/**
 * A Connect hold refused because the seat is taken: `failed_precondition`
 * (HTTP 400), with the SEAT_UNAVAILABLE reason when the error's debug detail
 * is there to say so. Anything else that is not a 200 is an error.
 */
export const connectSeatTaken: Judge = (reply) => {
  if (reply.status === 200) return "ok";
  if (reply.status !== 400 || !reply.text.includes('"code":"failed_precondition"')) return "error";
  const reason = /"reason":"([A-Z_]+)"/.exec(reply.text)?.[1];
  return reason === undefined || reason === "SEAT_UNAVAILABLE" ? "refused" : "error";
};

/**
 * A small, fast PRNG (mulberry32) seeded per fan from the run's seed, so a
 * fan's choices do not depend on which connection serves it or when.
 */
export function fanRandom(seed: number, fan: number): () => number {
  let state = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(fan + 1, 0xc2b2ae35)) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * Runs one round of a flow against a freshly seeded server: the token storm,
 * optionally a listing phase, the hold storm and the pay phase, each a
 * closed loop. Every fan is `fan-<i>`.
 */
export async function runFlow(
  flow: Flow,
  pool: ConnectionPool,
  catalog: BenchCatalog,
  shape: RushShape,
  log: (line: string) => void,
  watch?: PhaseWatch,
): Promise<FlowResult> {
  const protocol =
    flow === "rest" ? restProtocol(pool.target, catalog) : connectProtocol(pool.target, catalog);
  const warmUp = catalog.warmUp ? await warm(protocol, pool, catalog, shape) : undefined;
  if (warmUp) {
    log(
      `  warm-up (not measured): ${warmUp.fans} fans, ${warmUp.paid} paid, ` +
        `${warmUp.requests} requests, ${warmUp.errors} errors`,
    );
  }
  await protocol.prepare(pool);
  const fans: Fan[] = Array.from({ length: shape.fans }, (_, index) => ({
    index,
    userId: `fan-${index}`,
    token: "",
    paid: false,
  }));
  const fanAt = (i: number) => fans[i] as Fan;
  const dateCount = catalog.dates.length;
  const seatsPerDate = catalog.dates[0]?.seats.length ?? 0;
  const seatCount = dateCount * seatsPerDate;
  const phases: PhaseResult[] = [];
  /** Runs a measured phase, with the watch's hooks just outside its clock. */
  const measured = async (name: string, phase: () => Promise<PhaseResult>) => {
    await watch?.before();
    const result = await phase();
    await watch?.after(name);
    return result;
  };
  const done = (result: PhaseResult) => {
    phases.push(result);
    log(
      `  ${result.name}: ${result.requests} requests in ${result.seconds.toFixed(2)} s, ` +
        `${result.perSecond.toFixed(0)}/s, ${result.errors} errors`,
    );
    return result;
  };

  const tokens = done(
    await measured("tokens", () =>
      runPhase("tokens", pool, shape.fans, shape.connections, async (i, call) => {
        const fan = fanAt(i);
        const reply = await call(protocol.issue(fan), protocol.admitted);
        if (reply.status === 200) fan.token = String(jsonBody(reply).token ?? "");
      }),
    ),
  );

  if (shape.listing) {
    done(
      await measured("listing", () =>
        runPhase("listing", pool, shape.fans, shape.connections, async (i, call) => {
          const pick = Math.floor(fanRandom(shape.seed ^ 0x5eed, i)() * dateCount);
          for (const request of protocol.listing(fanAt(i), pick)) await call(request, okIf200);
        }),
      ),
    );
  }

  const holds = done(
    await measured("holds", () =>
      runPhase("holds", pool, shape.fans, shape.connections, async (i, call) => {
        const fan = fanAt(i);
        if (fan.token === "") return;
        const random = fanRandom(shape.seed, i);
        const tried = new Set<number>();
        let misses = 0;
        while (misses < shape.retries && tried.size < seatCount) {
          let pick: number;
          do pick = Math.floor(random() * seatCount);
          while (tried.has(pick));
          tried.add(pick);
          const dateIndex = Math.floor(pick / seatsPerDate);
          const number = (pick % seatsPerDate) + 1;
          const reply = await call(
            protocol.hold(fan, dateIndex, number, tried.size),
            protocol.holdJudge,
          );
          if (reply.status === 200) {
            fan.win = { dateIndex, number, ...protocol.readHold(reply) };
            return;
          }
          misses++;
        }
      }),
    ),
  );

  const winners = fans.filter((fan) => fan.win !== undefined);
  const pay = done(
    await measured("pay", () =>
      runPhase("pay", pool, winners.length, shape.payers, async (k, call) => {
        const fan = winners[k] as Fan;
        const win = fan.win as Win;
        if (paysEarly(k, shape.payEarlyPercent)) {
          const early = await call(protocol.pay(fan, win), protocol.tooPoor);
          if (protocol.tooPoor(early) !== "refused") return;
        }
        if ((await call(protocol.recharge(fan, win))).status !== 200) return;
        if ((await call(protocol.pay(fan, win))).status === 200) fan.paid = true;
      }),
    ),
  );
  const paid = fans.filter((fan) => fan.paid).length;
  return {
    phases,
    tokens,
    holds,
    pay,
    fans,
    paidFansPerSecond: pay.seconds > 0 ? paid / pay.seconds : 0,
    ...(warmUp ? { warmUp } : {}),
  };
}

/**
 * Runs every server path the rush measures, unmeasured, on the warm-up date:
 * so the figures are those of a running server, not of one compiling its hot
 * paths and preparing its statements (the floors get a warm-up too). Each
 * warm-up fan takes a token, holds its own seat, is refused a neighbour's,
 * recharges and pays; when they are done the date is sold out and no longer
 * listed, and every warm-up admission has ended.
 */
async function warm(
  protocol: Protocol,
  pool: ConnectionPool,
  catalog: BenchCatalog,
  shape: RushShape,
): Promise<WarmUp> {
  const seats = catalog.warmUp?.seats ?? [];
  const d = catalog.dates.length;
  let paid = 0;
  const result = await runPhase(
    "warm-up",
    pool,
    seats.length,
    shape.connections,
    async (i, call) => {
      const seat = seats[i] as BenchSeat;
      const fan: Fan = { index: i, userId: `warm-${i}`, token: "", paid: false };
      const issued = await call(protocol.issue(fan), protocol.admitted);
      if (issued.status !== 200) return;
      fan.token = String(jsonBody(issued).token ?? "");
      const held = await call(protocol.hold(fan, d, seat.number, 1), protocol.holdJudge);
      if (held.status !== 200) return;
      const win: Win = { dateIndex: d, number: seat.number, ...protocol.readHold(held) };
      // Someone else's seat (or, if its fan has not held it yet, a second hold): refused.
      const other = ((seat.number + seats.length - 2) % seats.length) + 1;
      // REST answers 409, Connect failed_precondition (400), for either refusal.
      await call(protocol.hold(fan, d, other, 2), (reply) =>
        reply.status === 409 || reply.status === 400 ? "refused" : "error",
      );
      if ((await call(protocol.recharge(fan, win))).status !== 200) return;
      if ((await call(protocol.pay(fan, win))).status === 200) paid++;
    },
  );
  return { fans: seats.length, paid, requests: result.requests, errors: result.errors };
}

/**
 * The seats each API lists as free after the round, as "dateIndex:number"
 * keys: `GET /api/concerts/seats` per date, and Connect ListAvailableSeats.
 */
export async function listedFreeSeats(
  pool: ConnectionPool,
  catalog: BenchCatalog,
): Promise<{ rest: Set<string>; connect: Set<string> }> {
  const target = pool.target;
  const rest = new Set<string>();
  const connect = new Set<string>();
  for (const [d, date] of catalog.dates.entries()) {
    const reply = await pool.send(target.get(`/api/concerts/seats?date=${date.date}`));
    if (reply.status !== 200) throw new Error(`GET /api/concerts/seats answered ${reply.status}`);
    for (const seat of (jsonBody(reply).availableSeats ?? []) as string[]) rest.add(`${d}:${seat}`);
    let pageToken = "";
    do {
      const page = await pool.send(
        target.post(`${CATALOG}/ListAvailableSeats`, {
          concertDateId: date.id,
          pageSize: SEAT_PAGE,
          pageToken,
        }),
      );
      if (page.status !== 200) throw new Error(`ListAvailableSeats answered ${page.status}`);
      const body = jsonBody(page);
      for (const seat of (body.seats ?? []) as { number: number }[])
        connect.add(`${d}:${seat.number}`);
      pageToken = String(body.nextPageToken ?? "");
    } while (pageToken !== "");
  }
  return { rest, connect };
}
