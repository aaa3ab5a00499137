import { createHash, randomUUID } from "node:crypto";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ERROR_DOMAIN,
  ErrorInfoSchema,
  QueueTokenState,
  type Seat,
  type StagedoorClient,
} from "@stagedoor/sdk";
import { expect } from "chai";
import pg from "pg";
import {
  startTestServer,
  type TestServer,
  type TestServerOptions,
} from "../support/test-server.js";

/** Returns a value that must be present, failing the test (not the type checker) otherwise. */
export function must<T>(value: T | null | undefined, what = "value"): T {
  if (value === null || value === undefined) throw new Error(`expected ${what} to be present`);
  return value;
}

/** A user id no other test (or run) uses. */
export function uniqueUser(label: string): string {
  return `${label}-${randomUUID().slice(0, 8)}`;
}

/** A fresh client-chosen request id. */
export function newRequestId(): string {
  return `req-${randomUUID()}`;
}

/** The demo prices by seat number: VIP 1-10, R 11-30, S 31-50. */
export function demoSeat(number: number): { grade: string; price: bigint } {
  if (number <= 10) return { grade: "VIP", price: 150_000n };
  if (number <= 30) return { grade: "R", price: 110_000n };
  return { grade: "S", price: 80_000n };
}

/** What a refused call must carry. */
export interface ExpectedError {
  readonly code: Code;
  readonly reason: string;
  /** The field a BadRequest violation must name (required for reason INVALID_ARGUMENT). */
  readonly field?: string;
}

/**
 * Asserts that a call fails with the given code and a `google.rpc.ErrorInfo`
 * of our domain with the given reason (plus, for invalid_argument, a
 * BadRequest violation naming the field), and never with internal/unknown.
 * Returns the error for further checks.
 */
export async function expectRpcError(
  call: Promise<unknown> | (() => Promise<unknown>),
  expected: ExpectedError,
): Promise<ConnectError> {
  let error: ConnectError | undefined;
  try {
    await (typeof call === "function" ? call() : call);
  } catch (thrown) {
    error = ConnectError.from(thrown);
  }
  if (error === undefined) {
    throw new Error(`expected ${Code[expected.code]} ${expected.reason}, but the call succeeded`);
  }
  const label = `${Code[error.code]} ${JSON.stringify(error.rawMessage)}`;
  expect(error.code, label).to.not.be.oneOf([Code.Internal, Code.Unknown]);
  expect(Code[error.code], label).to.equal(Code[expected.code]);
  const infos = error.findDetails(ErrorInfoSchema);
  expect(infos, `${label}: ErrorInfo details`).to.have.length(1);
  const info = must(infos[0], "ErrorInfo");
  expect(info.domain).to.equal(ERROR_DOMAIN);
  expect(info.reason, label).to.equal(expected.reason);
  // An invalid field must be named; a body that is not a message at all (MALFORMED_REQUEST) names none.
  if (expected.field !== undefined || expected.reason === "INVALID_ARGUMENT") {
    const fields = error
      .findDetails(BadRequestSchema)
      .flatMap((bad) => bad.fieldViolations.map((v) => v.field));
    expect(fields, `${label}: BadRequest fields`).to.include(must(expected.field, "field"));
  }
  return error;
}

/** Rejects when `promise` has not settled within `ms`. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it holds, failing after `ms`. */
export async function pollUntil(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A timestamp as epoch milliseconds. */
export function ms(timestamp: Timestamp | undefined): number {
  return timestampDate(must(timestamp, "timestamp")).getTime();
}

/** Asserts a timestamp lies within `toleranceMs` of `expectedMs`. */
export function expectNear(
  timestamp: Timestamp | undefined,
  expectedMs: number,
  toleranceMs = 30_000,
): void {
  expect(Math.abs(ms(timestamp) - expectedMs)).to.be.lessThan(toleranceMs);
}

/** Issues a token for a new user and checks it is admitted at once. */
export async function admittedUser(
  client: StagedoorClient,
  concertId: string,
  label: string,
): Promise<{ userId: string; token: string }> {
  const userId = uniqueUser(label);
  const { token, status } = await client.queue.issueQueueToken({ concertId, userId });
  expect(status?.state, `${userId} admitted at once`).to.equal(QueueTokenState.ADMITTED);
  return { userId, token };
}

/** Every bookable seat of the concert's `index`-th bookable date, keyed by number. */
export async function seatsOfDate(
  client: StagedoorClient,
  concertId: string,
  index: number,
): Promise<{ dateId: string; seats: Map<number, Seat> }> {
  const { dates } = await client.catalog.listConcertDates({ concertId });
  const date = must(dates[index], `bookable date #${index}`);
  const { seats } = await client.catalog.listAvailableSeats({
    concertDateId: date.id,
    pageSize: 100,
  });
  return { dateId: date.id, seats: new Map(seats.map((seat) => [seat.number, seat])) };
}

/**
 * Starts a test server with a short drain timeout. The server only closes
 * idle HTTP/1.1 keep-alive connections when its drain timeout forces them
 * (the shutdown test in watch-stream.spec.ts exposes that), so with the
 * default 2 s every `after` hook would wait 2 s for the Connect and gRPC-Web
 * clients' pooled sockets. Nothing is in flight when these servers stop.
 */
export function startRpcServer(options: TestServerOptions = {}): Promise<TestServer> {
  return startTestServer({ ...options, env: { SHUTDOWN_TIMEOUT_MS: "250", ...options.env } });
}

/** A test server with one operator API key (named `ops`) and a pool on its database. */
export interface OperatorServer {
  readonly server: TestServer;
  readonly db: pg.Pool;
  stop(): Promise<void>;
}

/** Starts an {@link OperatorServer} for the operator API's specs. */
export async function startOperatorServer(key: string): Promise<OperatorServer> {
  const server = await startRpcServer({
    env: { ADMIN_API_KEYS: `ops:${createHash("sha256").update(key).digest("hex")}` },
  });
  const db = new pg.Pool({ connectionString: server.databaseUrl, max: 2 });
  return {
    server,
    db,
    async stop() {
      await db.end();
      await server.stop();
    },
  };
}

/** The actions the audit trail recorded for a target (`kind/id`), oldest first. */
export async function auditActions(db: pg.Pool, target: string): Promise<string[]> {
  const { rows } = await db.query<{ action: string }>(
    "select action from admin_audit where target = $1 order by created_at, id",
    [target],
  );
  return rows.map((row) => row.action);
}
