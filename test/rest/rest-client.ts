import { randomUUID } from "node:crypto";
import { expect } from "chai";

/** Seat prices of the demo catalog, by seat number (see demo-catalog.ts). */
export function demoPrice(seatNumber: number): number {
  if (seatNumber <= 10) return 150_000;
  if (seatNumber <= 30) return 110_000;
  return 80_000;
}

/** A user id no other test uses. */
export function uniqueUser(label: string): string {
  return `${label}-${randomUUID().slice(0, 8)}`;
}

/** Returns a value that must be there, failing the test otherwise. */
export function must<T>(value: T | null | undefined, what = "value"): T {
  if (value === null || value === undefined) throw new Error(`expected a ${what}`);
  return value;
}

/** One REST answer: status, headers and the body both raw and parsed. */
export interface RestResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The parsed JSON body, or undefined when the body is not JSON. */
  readonly body: unknown;
}

/** How to send one request. */
export interface RestRequest {
  /** Sent as JSON with `Content-Type: application/json`. */
  readonly json?: unknown;
  /** Sent as is (with the given headers), for malformed bodies. */
  readonly raw?: string;
  /** Sent as `Authorization: Bearer <token>`. */
  readonly bearer?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Sends one request to a test server with plain `fetch`, as any REST client would. */
export async function rest(
  baseUrl: string,
  method: string,
  path: string,
  request: RestRequest = {},
): Promise<RestResponse> {
  const headers: Record<string, string> = { ...request.headers };
  let body: string | undefined;
  if (request.json !== undefined) {
    headers["content-type"] ??= "application/json";
    body = JSON.stringify(request.json);
  } else if (request.raw !== undefined) {
    body = request.raw;
  }
  if (request.bearer !== undefined) headers.authorization = `Bearer ${request.bearer}`;
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, text, body: parsed };
}

function describeResponse(response: RestResponse): string {
  return `HTTP ${response.status} ${response.text}`;
}

/** Asserts a JSON response with the given status and returns its body as an object. */
export function expectJson(response: RestResponse, status: number): Record<string, unknown> {
  expect(response.status, describeResponse(response)).to.equal(status);
  expect(response.headers.get("content-type") ?? "").to.match(/^application\/json\b/i);
  const body = response.body;
  expect(body, describeResponse(response)).to.be.an("object");
  expect(Array.isArray(body)).to.equal(false);
  return body as Record<string, unknown>;
}

/** Asserts a 200 JSON response and returns its body. */
export function expectOk(response: RestResponse): Record<string, unknown> {
  return expectJson(response, 200);
}

/**
 * Asserts the seed's error shape: the status, a JSON content type, and a body
 * that is exactly `{"error": "<non-empty string>"}`. Returns the message.
 */
export function expectError(response: RestResponse, status: number): string {
  const body = expectJson(response, status);
  expect(Object.keys(body), describeResponse(response)).to.deep.equal(["error"]);
  const message = body.error;
  expect(message).to.be.a("string");
  expect(String(message).length).to.be.greaterThan(0);
  return String(message);
}

/** Asserts a 4xx error of one of the given statuses with the seed's error shape. */
export function expectErrorOneOf(response: RestResponse, statuses: readonly number[]): string {
  expect(statuses, describeResponse(response)).to.include(response.status);
  return expectError(response, response.status);
}

/** An ISO 8601 timestamp as `Date#toISOString` writes it. */
export const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** A token as `POST /api/token` returns it. */
export interface IssuedToken {
  readonly token: string;
  readonly queuePosition: number;
  readonly expirationTime: string;
}

/** `POST /api/token`, asserting a 200 with the contract's field types. */
export async function issueToken(baseUrl: string, userId: string): Promise<IssuedToken> {
  const body = expectOk(await rest(baseUrl, "POST", "/api/token", { json: { userId } }));
  expect(body.token).to.be.a("string");
  expect(String(body.token).length).to.be.greaterThan(0);
  expect(body.queuePosition).to.be.a("number");
  expect(body.expirationTime).to.be.a("string").and.match(ISO_TIMESTAMP);
  return {
    token: String(body.token),
    queuePosition: Number(body.queuePosition),
    expirationTime: String(body.expirationTime),
  };
}

/** Issues a token and asserts the user is admitted at once (position 0). */
export async function admittedToken(baseUrl: string, userId: string): Promise<string> {
  const issued = await issueToken(baseUrl, userId);
  expect(issued.queuePosition, `${userId} should be admitted at once`).to.equal(0);
  return issued.token;
}

/** `GET /api/concerts/dates`, asserting the contract's shape. */
export async function listDates(baseUrl: string): Promise<string[]> {
  const body = expectOk(await rest(baseUrl, "GET", "/api/concerts/dates"));
  expect(Object.keys(body)).to.deep.equal(["dates"]);
  expect(body.dates).to.be.an("array");
  const dates = body.dates as unknown[];
  for (const date of dates)
    expect(date)
      .to.be.a("string")
      .and.match(/^\d{4}-\d{2}-\d{2}$/);
  return dates as string[];
}

/** `GET /api/concerts/seats?date=`, asserting the contract's shape; returns the seat strings. */
export async function listSeats(baseUrl: string, date: string): Promise<string[]> {
  const body = expectOk(
    await rest(baseUrl, "GET", `/api/concerts/seats?date=${encodeURIComponent(date)}`),
  );
  expect(Object.keys(body).sort()).to.deep.equal(["availableSeats", "date"]);
  expect(body.date).to.equal(date);
  expect(body.availableSeats).to.be.an("array");
  const seats = body.availableSeats as unknown[];
  for (const seat of seats)
    expect(seat)
      .to.be.a("string")
      .and.match(/^[1-9]\d*$/);
  return seats as string[];
}

/** A hold as `POST /api/reservations` returns it. */
export interface Hold {
  readonly reservationId: string;
  readonly expirationTime: string;
  readonly price: number;
}

/** `POST /api/reservations` with the token in the body, asserting a 200 of the contract's shape. */
export async function holdSeat(
  baseUrl: string,
  input: { userId: string; token: string; date: string; seatNumber: number },
): Promise<Hold> {
  const body = expectOk(await rest(baseUrl, "POST", "/api/reservations", { json: input }));
  expect(Object.keys(body).sort()).to.deep.equal([
    "expirationTime",
    "price",
    "reservationId",
    "status",
  ]);
  expect(body.reservationId).to.be.a("string");
  expect(String(body.reservationId).length).to.be.greaterThan(0);
  expect(body.status).to.equal("Reserved");
  expect(body.expirationTime).to.be.a("string").and.match(ISO_TIMESTAMP);
  expect(body.price).to.be.a("number");
  return {
    reservationId: String(body.reservationId),
    expirationTime: String(body.expirationTime),
    price: Number(body.price),
  };
}

/** `POST /api/balance/recharge` with a bearer token; returns the new balance. */
export async function recharge(
  baseUrl: string,
  input: { userId: string; token: string; amount: number },
): Promise<number> {
  const body = expectOk(
    await rest(baseUrl, "POST", "/api/balance/recharge", {
      json: { userId: input.userId, amount: input.amount },
      bearer: input.token,
    }),
  );
  expect(Object.keys(body).sort()).to.deep.equal(["newBalance", "userId"]);
  expect(body.userId).to.equal(input.userId);
  expect(body.newBalance).to.be.a("number");
  return Number(body.newBalance);
}

/** `GET /api/balance?userId=` with a bearer token; returns the current balance. */
export async function currentBalance(
  baseUrl: string,
  input: { userId: string; token: string },
): Promise<number> {
  const body = expectOk(
    await rest(baseUrl, "GET", `/api/balance?userId=${encodeURIComponent(input.userId)}`, {
      bearer: input.token,
    }),
  );
  expect(Object.keys(body).sort()).to.deep.equal(["currentBalance", "userId"]);
  expect(body.userId).to.equal(input.userId);
  expect(body.currentBalance).to.be.a("number");
  return Number(body.currentBalance);
}

/** `POST /api/payments` with a bearer token, returning the raw response for the caller to judge. */
export function pay(
  baseUrl: string,
  input: { userId: string; token: string; reservationId: string; amount: number },
): Promise<RestResponse> {
  return rest(baseUrl, "POST", "/api/payments", {
    json: { userId: input.userId, reservationId: input.reservationId, amount: input.amount },
    bearer: input.token,
  });
}

/** Asserts a successful payment of the contract's shape and returns its id. */
export function expectPaid(response: RestResponse): string {
  const body = expectOk(response);
  expect(Object.keys(body).sort()).to.deep.equal(["paymentId", "status"]);
  expect(body.status).to.equal("Completed");
  expect(body.paymentId).to.be.a("string");
  expect(String(body.paymentId).length).to.be.greaterThan(0);
  return String(body.paymentId);
}

/** Polls `check` until it returns a value or the deadline passes (for the ~1 s promotion). */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
