import { randomUUID } from "node:crypto";
import type { Services } from "../../container.js";
import type { Logger } from "../../logger.js";
import type { Principal } from "../../modules/identity/index.js";
import { DomainError, type ErrorKind } from "../../shared/domain-error.js";
import type { ErrorReason } from "../../shared/error-reasons.js";
import { isUuid } from "../../shared/ids.js";
import { transientDomainError } from "../../shared/transient-errors.js";
import { requireCalendarDate } from "../../shared/validation.js";
import { bearerCredential } from "../bearer.js";
import {
  HttpError,
  type NodeRequest,
  type NodeResponse,
  readJsonObject,
  sendJson,
} from "./rest-io.js";

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
};

type Overrides = Partial<Record<ErrorReason, number>>;

interface Route {
  readonly method: "GET" | "POST";
  readonly handle: (req: NodeRequest, url: URL) => Promise<unknown>;
  /** Route-specific statuses where the seed's contract differs from the general mapping. */
  readonly overrides?: Overrides;
}

function field(body: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(body, name) ? body[name] : undefined;
}

function requireString(value: unknown, name: string): string {
  if (typeof value !== "string") throw new HttpError(400, `${name} must be a string`);
  return value;
}

function requireWholeNumber(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new HttpError(400, `${name} must be a whole number`);
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
 * recharge and payment need the user's token.
 */
export function createRestRouter(services: Services, logger: Logger) {
  const { catalog, queue, reservations, wallet, payments } = services;

  /** Authenticates the caller by bearer header or `token` field, and checks the named user is them. */
  async function authenticate(
    req: NodeRequest,
    body: Record<string, unknown> | undefined,
    userId: unknown,
  ): Promise<Principal> {
    const fromBody = body ? field(body, "token") : undefined;
    const token =
      bearerCredential(req.headers.authorization) ??
      (typeof fromBody === "string" ? fromBody : undefined);
    const { principal } = await queue.authenticate(token);
    if (typeof userId !== "string" || userId !== principal.userId) {
      throw new HttpError(401, "the token does not belong to this user");
    }
    return principal;
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
        if (date === null || date === "") throw new HttpError(400, "date is required (YYYY-MM-DD)");
        requireCalendarDate(date);
        const concert = await catalog.defaultConcert();
        const concertDate = await catalog.findDate(concert.id, date);
        const seats = await catalog.listAllBookableSeats(concertDate.id);
        return { date, availableSeats: seats.map((seat) => String(seat.number)) };
      },
    },
    "/api/reservations": {
      method: "POST",
      overrides: { CONCERT_DATE_NOT_FOUND: 400, SEAT_NOT_FOUND: 400 },
      async handle(req) {
        const body = await readJsonObject(req);
        const principal = await authenticate(req, body, field(body, "userId"));
        const date = requireCalendarDate(requireString(field(body, "date"), "date"));
        const seatNumber = requireWholeNumber(field(body, "seatNumber"), "seatNumber");
        const concertDate = await catalog.findDate(principal.concertId, date);
        const seatId = await catalog.findSeatId(concertDate.id, seatNumber);
        const { reservation } = await reservations.hold(principal, {
          seatId,
          requestId: idempotencyKey(req) ?? randomUUID(),
        });
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
        const principal = await authenticate(req, body, field(body, "userId"));
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
      overrides: { WALLET_NOT_FOUND: 404 },
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
        const principal = await authenticate(req, body, field(body, "userId"));
        const reservationId = requireString(field(body, "reservationId"), "reservationId");
        const amount = requireWholeNumber(field(body, "amount"), "amount");
        if (!isUuid(reservationId)) {
          throw new HttpError(401, "unknown reservation");
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

  function failure(error: unknown, route: Route | undefined): HttpError {
    if (error instanceof HttpError) return error;
    const domain = error instanceof DomainError ? error : transientDomainError(error);
    if (domain) {
      const status = route?.overrides?.[domain.reason] ?? STATUS_BY_KIND[domain.kind];
      const headers: Record<string, string> =
        domain.retryAfterMs !== undefined
          ? { "retry-after": String(Math.max(1, Math.ceil(domain.retryAfterMs / 1000))) }
          : {};
      return new HttpError(status, domain.message, headers);
    }
    logger.error({ err: error }, "unexpected error in a REST route");
    return new HttpError(500, "internal error");
  }

  /** Handles a request under /api/; answers every request, never throws. */
  return async function handleRest(req: NodeRequest, res: NodeResponse): Promise<void> {
    let route: Route | undefined;
    try {
      const url = new URL(req.url ?? "/", "http://localhost");
      route = routes[url.pathname];
      if (!route) throw new HttpError(404, "no such route");
      if (req.method !== route.method) {
        throw new HttpError(405, `use ${route.method}`, { allow: route.method });
      }
      sendJson(res, 200, await route.handle(req, url));
    } catch (error) {
      const http = failure(error, route);
      if (!res.headersSent) sendJson(res, http.status, { error: http.message }, http.headers);
    }
  };
}
