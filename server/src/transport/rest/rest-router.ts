import { randomUUID } from "node:crypto";
import type { Services } from "../../container.js";
import type { Logger } from "../../logger.js";
import type { Availability, AvailabilityBlock, SeatFacts } from "../../modules/catalog/index.js";
import type { Principal } from "../../modules/identity/index.js";
import type { Session } from "../../modules/queue/index.js";
import type { LimitedAction } from "../../modules/ratelimit/index.js";
import { DomainError, type ErrorKind, invalidField } from "../../shared/domain-error.js";
import type { ErrorReason } from "../../shared/error-reasons.js";
import { isUuid } from "../../shared/ids.js";
import { requireCalendarDate } from "../../shared/validation.js";
import { bearerCredential } from "../bearer.js";
import { authenticate as authenticateCaller } from "../interceptors/auth.interceptor.js";
import {
  type CallObserver,
  codeOf,
  failureOf,
  logCall,
} from "../interceptors/error.interceptor.js";
import { type CallLimits, callLimit } from "../rate-limits.js";
import {
  HttpError,
  JsonBytes,
  type NodeRequest,
  type NodeResponse,
  readJsonObject,
  sendJson,
} from "./rest-io.js";

/** A seat resolved before authentication, and the concert it was looked for in. */
interface SeatGuess {
  readonly concertId: string;
  readonly seat: SeatFacts;
}

/** Rendered listing bodies and their blocks, reused while the listing is unchanged. */
const renderedListings = new WeakMap<Availability, JsonBytes>();
const renderedBlocks = new WeakMap<AvailabilityBlock, Buffer>();
const COMMA = Buffer.from(",");
const LISTING_END = Buffer.from("]}");

/**
 * The seed's seat listing body, `{"date", "availableSeats": ["1", …]}`, as
 * bytes. A listing's blocks only change when one of their seats does, so a
 * re-render after a change encodes one block and copies the others; an
 * unchanged listing is sent as the same bytes again.
 */
function seatListBody(date: string, availability: Availability): JsonBytes {
  let body = renderedListings.get(availability);
  if (body === undefined) {
    const parts: Buffer[] = [Buffer.from(`{"date":${JSON.stringify(date)},"availableSeats":[`)];
    for (const block of availability.blocks) {
      if (block.numbers.length === 0) continue;
      let part = renderedBlocks.get(block);
      if (part === undefined) {
        part = Buffer.from(block.numbers.map((n) => `"${n}"`).join(","));
        renderedBlocks.set(block, part);
      }
      if (parts.length > 1) parts.push(COMMA);
      parts.push(part);
    }
    parts.push(LISTING_END);
    body = new JsonBytes(Buffer.concat(parts));
    renderedListings.set(availability, body);
  }
  return body;
}

const STATUS_BY_KIND: Record<ErrorKind, number> = {
  invalid_argument: 400,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 409,
  aborted: 409,
  // The seed's contract answers 401 for a token of another user or one not yet admitted.
  unauthenticated: 401,
  permission_denied: 401,
  resource_exhausted: 429,
  unavailable: 503,
  unimplemented: 404,
  deadline_exceeded: 504,
  // Nobody reads it: the client went away (nginx's "client closed request").
  canceled: 499,
  internal: 500,
};

/** The header naming the reason of an error answer (the ErrorInfo reason of the RPCs). */
const REASON_HEADER = "x-error-reason";

type Overrides = Partial<Record<ErrorReason, number>>;

/** A request's path and query, split without a full URL parse (routes match exact paths). */
interface RequestTarget {
  readonly pathname: string;
  readonly searchParams: URLSearchParams;
}

function targetOf(url: string | undefined): RequestTarget {
  const raw = url ?? "/";
  const query = raw.indexOf("?");
  return query < 0
    ? { pathname: raw, searchParams: NO_QUERY }
    : { pathname: raw.slice(0, query), searchParams: new URLSearchParams(raw.slice(query + 1)) };
}

const NO_QUERY = new URLSearchParams();

interface Route {
  readonly method: "GET" | "POST";
  readonly handle: (req: NodeRequest, url: RequestTarget) => Promise<unknown>;
  /** Route-specific statuses where the seed's contract differs from the general mapping. */
  readonly overrides?: Overrides;
}

function field(body: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(body, name) ? body[name] : undefined;
}

function requireString(value: unknown, name: string): string {
  if (typeof value !== "string") throw invalidField(name, "must be a string");
  return value;
}

/** A JSON number that is an exact integer: strings (`"16"`, `"0x10"`) and fractions are refused. */
function requireWholeNumber(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw invalidField(name, "must be a whole number");
  }
  return value;
}

/** The client's Idempotency-Key header, when it sends one; REST retries then replay. */
function idempotencyKey(req: NodeRequest): string | undefined {
  const value = req.headers["idempotency-key"];
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

/**
 * The seed's REST contract as thin adapters over the same services the RPCs
 * use: the paths, JSON field names, status codes and `{"error": "..."}`
 * bodies of the original spec, plus the one deliberate addition that balance,
 * recharge and payment need the user's token. Token issue, holds, recharges
 * and payments are rate limited like their RPCs (see `callLimit`), in the
 * same round trip as the caller is authenticated and before anything is
 * done: 429 with `Retry-After`.
 */
export function createRestRouter(
  services: Services,
  logger: Logger,
  limits: CallLimits,
  observe?: CallObserver,
) {
  const { catalog, queue, reservations, wallet, payments } = services;

  /**
   * Authenticates the caller as the RPCs do (see `authenticate`), by bearer
   * header or, in the seed's contract, a `token` field, taking the buckets of
   * the rate-limited `action` in the same round trip; and checks the named
   * user is them. With `guess`, the seat's gate entry comes along.
   */
  async function authenticateSession(
    req: NodeRequest,
    body: Record<string, unknown> | undefined,
    userId: unknown,
    action: LimitedAction | undefined,
    guess?: SeatGuess,
  ): Promise<Session> {
    const session = await authenticateCaller(
      queue,
      req.headers.authorization,
      guess && { dateId: guess.seat.concertDateId, seatId: guess.seat.id },
      body ? field(body, "token") : undefined,
      action === undefined ? undefined : callLimit(limits, action, req),
    );
    if (typeof userId !== "string" || userId !== session.principal.userId) {
      throw new DomainError(
        "permission_denied",
        "USER_MISMATCH",
        "the token does not belong to this user",
      );
    }
    return session;
  }

  /** {@link authenticateSession} for routes that need only the caller. */
  async function authenticate(
    req: NodeRequest,
    body: Record<string, unknown> | undefined,
    userId: unknown,
    action?: LimitedAction,
  ): Promise<Principal> {
    return (await authenticateSession(req, body, userId, action)).principal;
  }

  /** The seat a hold names in the default concert, when the request is well-formed and it exists. */
  async function seatInDefaultConcert(
    date: unknown,
    seatNumber: unknown,
  ): Promise<SeatGuess | undefined> {
    if (typeof date !== "string" || typeof seatNumber !== "number") return undefined;
    try {
      const concert = await catalog.defaultConcert();
      const concertDate = await catalog.findDate(concert.id, date);
      return {
        concertId: concert.id,
        seat: await catalog.findSeat(concertDate.id, seatNumber),
      };
    } catch {
      return undefined;
    }
  }

  const routes: Record<string, Route> = {
    "/api/token": {
      method: "POST",
      async handle(req) {
        const body = await readJsonObject(req);
        const userId = requireString(field(body, "userId"), "userId");
        const concert = await catalog.defaultConcert();
        const { token, status } = await queue.issueToken({
          concertId: concert.id,
          userId,
          assertion: bearerCredential(req.headers.authorization),
          limit: callLimit(limits, "token", req),
        });
        return {
          token,
          queuePosition: status.position,
          expirationTime: status.expireTime.toISOString(),
        };
      },
    },
    "/api/concerts/dates": {
      method: "GET",
      async handle() {
        const concert = await catalog.defaultConcert();
        const dates = await catalog.listBookableDates(concert.id);
        return { dates: dates.map((d) => d.date.date).sort() };
      },
    },
    "/api/concerts/seats": {
      method: "GET",
      async handle(_req, url) {
        const date = url.searchParams.get("date");
        if (date === null || date === "") throw invalidField("date", "is required (YYYY-MM-DD)");
        requireCalendarDate(date);
        const concert = await catalog.defaultConcert();
        const concertDate = await catalog.findDate(concert.id, date);
        return seatListBody(date, await catalog.availability(concertDate.id));
      },
    },
    "/api/reservations": {
      method: "POST",
      overrides: { CONCERT_DATE_NOT_FOUND: 400, SEAT_NOT_FOUND: 400 },
      async handle(req) {
        const body = await readJsonObject(req);
        // The seed's tokens are for the default concert: find the seat there
        // first, so the token and the seat's gate entry are read in one round
        // trip. Anything unusual is resolved again, with its errors, below.
        const guess = await seatInDefaultConcert(field(body, "date"), field(body, "seatNumber"));
        const session = await authenticateSession(req, body, field(body, "userId"), "hold", guess);
        const { principal } = session;
        const date = requireCalendarDate(requireString(field(body, "date"), "date"));
        const seatNumber = requireWholeNumber(field(body, "seatNumber"), "seatNumber");
        const sameConcert = guess !== undefined && guess.concertId === principal.concertId;
        const seat = sameConcert
          ? guess.seat
          : await catalog.findSeat(
              (await catalog.findDate(principal.concertId, date)).id,
              seatNumber,
            );
        const { reservation } = await reservations.hold(
          principal,
          { seatId: seat.id, requestId: idempotencyKey(req) ?? randomUUID() },
          sameConcert ? session.seat : undefined,
        );
        return {
          reservationId: reservation.id,
          status: "Reserved",
          expirationTime: reservation.heldUntil.toISOString(),
          price: Number(reservation.price),
        };
      },
    },
    "/api/balance/recharge": {
      method: "POST",
      async handle(req) {
        const body = await readJsonObject(req);
        const principal = await authenticate(req, body, field(body, "userId"), "payment");
        const amount = requireWholeNumber(field(body, "amount"), "amount");
        const result = await wallet.recharge(principal, {
          amount: BigInt(amount),
          requestId: idempotencyKey(req) ?? randomUUID(),
        });
        return { userId: principal.userId, newBalance: Number(result.wallet.balance) };
      },
    },
    "/api/balance": {
      method: "GET",
      async handle(req, url) {
        const principal = await authenticate(req, undefined, url.searchParams.get("userId"));
        const current = await wallet.get(principal);
        return { userId: principal.userId, currentBalance: Number(current.balance) };
      },
    },
    "/api/payments": {
      method: "POST",
      overrides: {
        RESERVATION_NOT_FOUND: 401,
        INSUFFICIENT_BALANCE: 400,
        AMOUNT_MISMATCH: 400,
      },
      async handle(req) {
        const body = await readJsonObject(req);
        const principal = await authenticate(req, body, field(body, "userId"), "payment");
        const reservationId = requireString(field(body, "reservationId"), "reservationId");
        const amount = requireWholeNumber(field(body, "amount"), "amount");
        if (!isUuid(reservationId)) {
          throw new DomainError("not_found", "RESERVATION_NOT_FOUND", "unknown reservation");
        }
        // Without an Idempotency-Key, a repeat of the same payment replays the
        // first one (200 with the same paymentId) instead of failing.
        const requestId = idempotencyKey(req) ?? `rest-pay:${reservationId}:${amount}`;
        const { payment } = await payments.pay(principal, {
          reservationId,
          amount: BigInt(amount),
          requestId,
        });
        return { paymentId: payment.id, status: "Completed" };
      },
    },
  };

  /** Handles a request under /api/; answers every request, never throws. */
  return async function handleRest(
    req: NodeRequest,
    res: NodeResponse,
    requestId: string,
  ): Promise<void> {
    const started = performance.now();
    let route: Route | undefined;
    let procedure = `${req.method} /api/`;
    try {
      const url = targetOf(req.url);
      route = Object.hasOwn(routes, url.pathname) ? routes[url.pathname] : undefined;
      if (!route) throw new HttpError(404, "unimplemented", "METHOD_NOT_FOUND", "no such route");
      procedure = `${req.method} ${url.pathname}`;
      if (req.method !== route.method) {
        throw new HttpError(405, "unimplemented", "METHOD_NOT_FOUND", `use ${route.method}`, {
          allow: route.method,
        });
      }
      const body = await route.handle(req, url);
      logCall(logger, { requestId, procedure, started }, undefined, observe);
      sendJson(res, 200, body);
    } catch (error) {
      const answer = restAnswer(error, route?.overrides);
      logCall(
        logger,
        { requestId, procedure, started, unrouted: route === undefined },
        { code: codeOf(answer.failure.kind), reason: answer.failure.reason, cause: answer.cause },
        observe,
      );
      if (!res.headersSent) {
        sendJson(res, answer.status, { error: answer.failure.message }, answer.headers);
      }
    }
  };
}

/**
 * How a REST route answers an error: the failure it means (the same
 * `failureOf` as the RPCs: a domain error as it is, a transient database
 * error as its reason, a bug as a bare "internal error"), its HTTP status
 * (fixed for the HTTP layer's own refusals; else by kind, with the route's
 * overrides where the seed's contract says otherwise), and headers: the
 * reason in `x-error-reason`, and `retry-after` when retrying helps. The body
 * stays the seed's `{"error": "..."}`.
 */
export function restAnswer(
  error: unknown,
  overrides: Overrides | undefined,
): {
  failure: DomainError;
  cause: unknown;
  status: number;
  headers: Record<string, string>;
} {
  const failure = failureOf(error);
  const status =
    failure instanceof HttpError
      ? failure.status
      : (overrides?.[failure.reason] ?? STATUS_BY_KIND[failure.kind]);
  const headers: Record<string, string> = {
    ...(failure instanceof HttpError ? failure.headers : {}),
    [REASON_HEADER]: failure.reason,
  };
  if (failure.retryAfterMs !== undefined) {
    headers["retry-after"] = String(Math.max(1, Math.ceil(failure.retryAfterMs / 1000)));
  }
  return { failure, cause: failure.cause ?? error, status, headers };
}
