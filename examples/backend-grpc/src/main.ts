// A backend service calling Stagedoor over plain gRPC with @grpc/grpc-js and
// the repository's .proto files: deadlines on every call, the queue token as
// `authorization` metadata, and the status code plus the google.rpc error
// details of failed calls. Run: `npm start` (STAGEDOOR_URL picks the server).
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { connectStagedoorGrpc } from "./stagedoor-grpc.js";
import { statusDetails } from "./status-details.js";
import { unaryCall } from "./unary-call.js";

const baseUrl = process.env.STAGEDOOR_URL || "http://127.0.0.1:8080";
/** The repository's proto/ folder, the include dir every import resolves from. */
const protoDir =
  process.env.STAGEDOOR_PROTO_DIR || fileURLToPath(new URL("../../../proto/", import.meta.url));
/** Every call gets this long; a backend never waits on another service without a bound. */
const DEADLINE_MS = 2_000;
/** The deliberately short deadline of the streaming call that shows DEADLINE_EXCEEDED. */
const SHORT_DEADLINE_MS = 1_000;

function isServiceError(error: unknown): error is grpc.ServiceError {
  return (
    error instanceof Error &&
    typeof (error as Partial<grpc.ServiceError>).code === "number" &&
    (error as Partial<grpc.ServiceError>).metadata instanceof grpc.Metadata
  );
}

/** Prints a failed call the way an operator wants to read it: code name, message, details. */
function printFailure(label: string, error: grpc.ServiceError): void {
  const details = statusDetails(error);
  // grpc-js leaves some percent-escapes of grpc-message in place (e.g. %3B);
  // the message inside google.rpc.Status is the original text.
  console.log(`${label} -> ${grpc.status[error.code]} "${details?.message ?? error.details}"`);
  if (details === undefined) return;
  const info = details.errorInfo;
  if (info) console.log(`  ErrorInfo reason=${info.reason} domain=${info.domain}`);
  for (const violation of details.badRequest?.fieldViolations ?? []) {
    console.log(`  BadRequest field=${violation.field}: ${violation.description}`);
  }
  const delay = details.retryInfo?.retryDelay;
  if (delay) console.log(`  RetryInfo retry after ${delay.seconds}s`);
}

/** Runs a call that must fail with `expected`, and prints how it failed. */
async function expectFailure(
  label: string,
  expected: grpc.status,
  call: Promise<unknown>,
): Promise<void> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!isServiceError(outcome)) {
    throw new Error(`${label} should have failed with ${grpc.status[expected]}: ${outcome}`);
  }
  printFailure(`expected failure: ${label}`, outcome);
  if (outcome.code !== expected) {
    throw new Error(
      `${label} failed with ${grpc.status[outcome.code]}, not ${grpc.status[expected]}`,
    );
  }
}

const stagedoor = connectStagedoorGrpc(baseUrl, protoDir);
const { catalog, queue, reservation, wallet, health } = stagedoor;
const within = { deadlineMs: DEADLINE_MS };
let token: string | undefined;

try {
  console.log(
    `backend-grpc: Stagedoor at ${stagedoor.target} over gRPC (@grpc/grpc-js), ${DEADLINE_MS} ms deadline per call`,
  );
  const serving = await unaryCall(health, health.Check, { service: "" }, within);
  console.log(`health: ${serving.status}`);

  const { concerts } = await unaryCall(catalog, catalog.ListConcerts, { pageSize: 10 }, within);
  const concert = concerts[0];
  if (concert === undefined) throw new Error("the server has no concert");
  console.log(`concert ${concert.id}: "${concert.title}" at ${concert.venue}`);
  const { dates } = await unaryCall(
    catalog,
    catalog.ListConcertDates,
    { concertId: concert.id },
    within,
  );
  for (const date of dates) {
    console.log(
      `  date ${date.date}: ${date.availableSeatCount}/${date.totalSeatCount} seats available`,
    );
  }

  const userId = process.env.STAGEDOOR_USER || `backend-${randomUUID().slice(0, 8)}`;
  const issued = await unaryCall(
    queue,
    queue.IssueQueueToken,
    { concertId: concert.id, userId },
    within,
  );
  token = issued.token;
  console.log(
    `queue token issued for ${userId}: ${issued.status.state}, position ${issued.status.position}`,
  );

  // Authenticated calls: the token travels as `authorization: Bearer <token>` metadata.
  const authed = { deadlineMs: DEADLINE_MS, token };
  const { status } = await unaryCall(queue, queue.GetQueueStatus, {}, authed);
  console.log(
    `GetQueueStatus as ${userId}: ${status.state}, position ${status.position} of ${status.waitingCount} waiting`,
  );
  // A mutation carries a request_id chosen once: a retry with the same id never credits twice.
  const credit = { amount: "50000", requestId: randomUUID() };
  const recharged = await unaryCall(wallet, wallet.RechargeWallet, credit, authed);
  console.log(`RechargeWallet ${credit.amount} as ${userId}: balance ${recharged.wallet.balance}`);
  const { wallet: balance } = await unaryCall(wallet, wallet.GetWallet, {}, authed);
  console.log(`GetWallet as ${userId}: balance ${balance.balance} (version ${balance.version})`);

  await expectFailure(
    "GetWallet without a token",
    grpc.status.UNAUTHENTICATED,
    unaryCall(wallet, wallet.GetWallet, {}, within),
  );
  await expectFailure(
    "RechargeWallet with amount 0",
    grpc.status.INVALID_ARGUMENT,
    unaryCall(wallet, wallet.RechargeWallet, { amount: "0", requestId: randomUUID() }, authed),
  );
  // Holding needs an admitted token: on a busy server this user may still be
  // waiting, and then the refusal is about admission instead of the seat.
  const admitted = status.state === "QUEUE_TOKEN_STATE_ADMITTED";
  const unknownSeat = randomUUID();
  await expectFailure(
    `HoldSeat on unknown seat ${unknownSeat}`,
    admitted ? grpc.status.NOT_FOUND : grpc.status.PERMISSION_DENIED,
    unaryCall(
      reservation,
      reservation.HoldSeat,
      { seatId: unknownSeat, requestId: randomUUID() },
      authed,
    ),
  );

  // Health.Watch never ends on its own, so a 1 s deadline is always exceeded.
  console.log(`Health.Watch with a ${SHORT_DEADLINE_MS} ms deadline:`);
  const watch = health.Watch({ service: "" }, new grpc.Metadata(), {
    deadline: Date.now() + SHORT_DEADLINE_MS,
  });
  watch.on("data", (message: { status: string }) => console.log(`  update: ${message.status}`));
  const ended = await new Promise<grpc.StatusObject>((resolve) => {
    // The stream fails by design; the status event carries the outcome.
    watch.on("error", () => {});
    watch.on("status", resolve);
  });
  console.log(`  ended: ${grpc.status[ended.code]} "${ended.details}"`);
  if (ended.code !== grpc.status.DEADLINE_EXCEEDED) {
    throw new Error(`Health.Watch ended with ${grpc.status[ended.code]}, not DEADLINE_EXCEEDED`);
  }

  // Leaving hands the admission slot to the next fan in line at once.
  await unaryCall(queue, queue.LeaveQueue, {}, authed);
  token = undefined;
  console.log(`left the queue as ${userId}`);
  console.log("done");
} catch (error) {
  if (isServiceError(error)) printFailure("unexpected failure", error);
  else console.error("unexpected failure:", error);
  process.exitCode = 1;
} finally {
  stagedoor.close();
}
