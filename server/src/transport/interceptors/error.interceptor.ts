import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { create, toBinary, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextKey,
  type Interceptor,
} from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import {
  BadRequest_FieldViolationSchema,
  BadRequestSchema,
  ERROR_DOMAIN,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "@stagedoor/sdk";
import type { Logger } from "../../logger.js";
import { DomainError, type ErrorKind, invalidField } from "../../shared/domain-error.js";
import { remembered } from "../../shared/remembered.js";
import { transientDomainError } from "../../shared/transient-errors.js";

/** The request id the app's listener chose (and echoed) for a call, for log lines. */
export const requestIdKey = createContextKey<string>("", {
  description: "the call's request id, as echoed in x-request-id",
});

/**
 * Set when the error interceptor answered a call with an error: that answer
 * already carries its ErrorInfo, so the Connect adapter need not look at it.
 */
export const errorAnsweredKey = createContextKey<boolean>(false, {
  description: "the error interceptor answered this call with an error",
});

const CODES: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  unimplemented: Code.Unimplemented,
  deadline_exceeded: Code.DeadlineExceeded,
  canceled: Code.Canceled,
  internal: Code.Internal,
};

/** The gRPC code of a kind of failure. */
export function codeOf(kind: ErrorKind): Code {
  return CODES[kind];
}

/**
 * Turns a domain error into a ConnectError carrying a `google.rpc.ErrorInfo`
 * (stable reason + safe metadata), a `BadRequest` for invalid fields and a
 * `RetryInfo` when retrying helps. `metadata` becomes the answer's headers
 * (or trailers).
 */
export function toConnectError(
  error: DomainError,
  metadata?: ConstructorParameters<typeof ConnectError>[2],
): ConnectError {
  const details: NonNullable<ConstructorParameters<typeof ConnectError>[3]> = [];
  if (error.violations.length > 0) {
    details.push({
      desc: BadRequestSchema,
      value: {
        fieldViolations: error.violations.map((v) =>
          create(BadRequest_FieldViolationSchema, { field: v.field, description: v.description }),
        ),
      },
    });
  }
  if (error.retryAfterMs !== undefined) {
    details.push({
      desc: RetryInfoSchema,
      value: { retryDelay: durationFromMs(error.retryAfterMs) },
    });
  }
  // Like the domain error, the answer to an expected refusal needs no stack trace.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  let answer: ConnectError;
  try {
    answer = new ConnectError(error.message, CODES[error.kind], metadata, details);
  } finally {
    Error.stackTraceLimit = limit;
  }
  // The ErrorInfo comes first, already encoded (Connect's constructor takes
  // only messages to encode, its `details` both).
  answer.details.unshift(errorInfoOf(JSON.stringify([error.reason, error.metadata])));
  return answer;
}

/**
 * The Stagedoor ErrorInfo of a `[reason, metadata]` (as JSON), encoded as
 * Connect puts a detail on the wire (its protobuf bytes, and its JSON as the
 * Connect protocol's `debug`), once per reason and metadata: a rush refuses
 * thousands of calls with the same few (SEAT_UNAVAILABLE for one hot seat),
 * and Connect would otherwise build, encode and print the message for each.
 */
const errorInfoOf = remembered((key) => {
  const [reason, metadata] = JSON.parse(key) as [string, Record<string, string>];
  const info = create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata });
  return Object.freeze({
    type: ErrorInfoSchema.typeName,
    value: toBinary(ErrorInfoSchema, info),
    debug: toJson(ErrorInfoSchema, info),
  });
});

/** The reason of the Stagedoor ErrorInfo a ConnectError carries, if it carries one. */
export function errorInfoReason(error: ConnectError): string | undefined {
  if (error.details.length === 0) return undefined;
  return error.findDetails(ErrorInfoSchema).find((info) => info.domain === ERROR_DOMAIN)?.reason;
}

/**
 * What Connect (2.1) raises as `internal` while reading a request body, by
 * message: each means the body is not a readable message, which is the
 * caller's fault. A response that fails to serialize stays `internal`.
 */
const UNREADABLE: readonly [test: (message: string) => boolean, what: string][] = [
  [(m) => m.startsWith("parse binary: "), "is not a valid"],
  [(m) => m === "decompression failed", "does not decompress to a"],
  [
    (m) => m === "received compressed envelope, but do not know how to decompress",
    "is compressed without a declared encoding, so it is not a",
  ],
];

/** protobuf-es's report of one JSON field it could not read: type, field, what was wrong. */
const JSON_FIELD = /^cannot decode field ([\w.]+)\.(\w+) from JSON: ([\s\S]*)$/;

/** Connect's report of a unary call with no message, or more than one. */
const NOT_ONE_MESSAGE = /^protocol error: (missing|received extra) input message/;

const KIND_OF_CODE: Record<Code, ErrorKind> = {
  [Code.Canceled]: "canceled",
  [Code.Unknown]: "internal",
  [Code.InvalidArgument]: "invalid_argument",
  [Code.DeadlineExceeded]: "deadline_exceeded",
  [Code.NotFound]: "not_found",
  [Code.AlreadyExists]: "already_exists",
  [Code.PermissionDenied]: "permission_denied",
  [Code.ResourceExhausted]: "resource_exhausted",
  [Code.FailedPrecondition]: "failed_precondition",
  [Code.Aborted]: "aborted",
  [Code.OutOfRange]: "invalid_argument",
  [Code.Unimplemented]: "unimplemented",
  [Code.Internal]: "internal",
  [Code.Unavailable]: "unavailable",
  [Code.DataLoss]: "internal",
  [Code.Unauthenticated]: "unauthenticated",
};

/** A failure with no stack trace of its own (the cause keeps its own). */
function failure(
  kind: ErrorKind,
  reason: DomainError["reason"],
  message: string,
  cause: unknown,
): DomainError {
  return new DomainError(kind, reason, message, { cause });
}

/** The answer to a bug: a bare `internal`, never the bug's message. */
function internalError(cause: unknown): DomainError {
  return failure("internal", "INTERNAL_ERROR", "internal error", cause);
}

/**
 * What a Connect error that carries no Stagedoor ErrorInfo means, as a
 * domain error. Such errors are raised by Connect itself, mostly before the
 * handler runs (a body it cannot read, a message over the size limit, an
 * encoding it does not speak, a unary call without exactly one message), or
 * by the vendored health service. Connect reports an unreadable protobuf
 * body as `internal`; it is the caller's mistake, so it becomes
 * `invalid_argument`, in every protocol.
 */
export function connectFailure(error: ConnectError, method: DescMethod | undefined): DomainError {
  const message = error.rawMessage;
  switch (error.code) {
    case Code.Internal: {
      const unreadable = UNREADABLE.find(([test]) => test(message));
      if (unreadable === undefined) return internalError(error);
      const type = method?.input.typeName ?? "request";
      return failure(
        "invalid_argument",
        "MALFORMED_REQUEST",
        `the request body ${unreadable[1]} ${type} message (${message})`,
        error,
      );
    }
    case Code.InvalidArgument:
    case Code.OutOfRange: {
      const field = JSON_FIELD.exec(message);
      if (field?.[2] !== undefined && field[1] === method?.input.typeName) {
        return invalidField(field[2], `cannot be read from JSON: ${field[3] ?? ""}`);
      }
      return failure("invalid_argument", "MALFORMED_REQUEST", message, error);
    }
    case Code.ResourceExhausted:
      return failure("resource_exhausted", "REQUEST_TOO_LARGE", message, error);
    case Code.Unimplemented:
      if (NOT_ONE_MESSAGE.test(message)) {
        return failure("invalid_argument", "MALFORMED_REQUEST", message, error);
      }
      if (message.includes("compression")) {
        return failure("unimplemented", "UNSUPPORTED_ENCODING", message, error);
      }
      return failure("unimplemented", "METHOD_NOT_FOUND", message, error);
    case Code.NotFound:
      // Only the health service says this without a domain reason.
      return failure("not_found", "SERVICE_NOT_FOUND", message, error);
    case Code.DeadlineExceeded:
      return failure("deadline_exceeded", "DEADLINE_EXCEEDED", message, error);
    case Code.Canceled:
      return failure("canceled", "CANCELLED", message, error);
    default: {
      // A failure of the connection (the caller is gone), or a bug.
      const kind = KIND_OF_CODE[error.code];
      return kind === "internal"
        ? internalError(error)
        : failure(kind, "INTERNAL_ERROR", message, error);
    }
  }
}

/**
 * What any error a call ends with means, as a domain error: domain errors as
 * they are, recognised transient database errors as theirs, Connect's own
 * errors by {@link connectFailure}, and anything else as a bug (a bare
 * `internal`, its message never shown). The REST routes map the same result
 * to HTTP statuses.
 */
export function failureOf(error: unknown, method?: DescMethod): DomainError {
  if (error instanceof DomainError) return error;
  if (error instanceof ConnectError) return connectFailure(error, method);
  return transientDomainError(error) ?? internalError(error);
}

/** An error as the caller will see it, what caused it (for the log), and its reason. */
export interface Answer {
  readonly error: ConnectError;
  readonly cause: unknown;
  readonly reason: string | undefined;
}

/**
 * The ConnectError a call that failed with `error` is answered with: one that
 * carries a Stagedoor ErrorInfo as it is, anything else through
 * {@link failureOf} (keeping a Connect error's metadata, such as the
 * `accept-encoding` of an unsupported encoding).
 */
export function answerFor(error: unknown, method?: DescMethod): Answer {
  if (error instanceof ConnectError) {
    const reason = errorInfoReason(error);
    if (reason !== undefined) return { error, cause: error, reason };
    const converted = connectFailure(error, method);
    return {
      error: toConnectError(converted, error.metadata),
      cause: error,
      reason: converted.reason,
    };
  }
  const converted = failureOf(error, method);
  return {
    error: toConnectError(converted),
    cause: converted.cause ?? error,
    reason: converted.reason,
  };
}

/** How loudly a failed call is logged, by its final code: faults loud, refusals at debug. */
const FAULT_LEVELS: Partial<Record<Code, "error" | "warn">> = {
  [Code.Internal]: "error",
  [Code.Unknown]: "error",
  [Code.DataLoss]: "error",
  [Code.Unavailable]: "warn",
  [Code.DeadlineExceeded]: "warn",
  // Only recognised database contention (a deadlock, a serialization failure)
  // becomes `aborted`: worth an operator's eye, like being unavailable.
  [Code.Aborted]: "warn",
};

/** A finished call, as it is logged: an RPC procedure or a REST route. */
export interface FinishedCall {
  readonly requestId: string | undefined;
  /** `package.Service/Method`, or `METHOD /path` for REST. */
  readonly procedure: string;
  /** `performance.now()` when the call started. */
  readonly started: number;
  /**
   * The path named no method the server serves: logged as asked, but counted
   * under one {@link UNKNOWN_METHOD}, so a client cannot mint metric labels.
   */
  readonly unrouted?: boolean;
}

/** The method label of every call to a path the server does not serve. */
export const UNKNOWN_METHOD = "unknown";

/**
 * Sees each finished call once, where it is logged (the metrics): its
 * method label, its final code (`ok` or a Connect code's name), and seconds.
 */
export type CallObserver = (method: string, code: string, seconds: number) => void;

/** How a call failed: its final code, its reason, and what caused it. */
export interface CallFailure {
  readonly code: Code;
  readonly reason: string | undefined;
  readonly cause: unknown;
}

/**
 * Logs a finished call once, under its request id: server faults (internal,
 * unknown, data loss) at error with their cause, transient ones
 * (unavailable, deadline exceeded, aborted) at warn. Expected refusals (a
 * taken seat, a bad argument, a missing token, a malformed body) are what a
 * rush is made of, so they are logged only at debug, as are successes.
 * Bodies and headers are never logged, so tokens never reach the logs.
 */
export function logCall(
  logger: Logger,
  call: FinishedCall,
  failed?: CallFailure,
  observe?: CallObserver,
): void {
  if (observe !== undefined) {
    observe(
      call.unrouted ? UNKNOWN_METHOD : call.procedure,
      failed === undefined ? "ok" : codeToString(failed.code),
      (performance.now() - call.started) / 1000,
    );
  }
  if (failed === undefined) {
    if (logger.isLevelEnabled("debug")) {
      logger.debug(
        { requestId: call.requestId, procedure: call.procedure, ms: elapsedMs(call.started) },
        "call ok",
      );
    }
    return;
  }
  const level = FAULT_LEVELS[failed.code] ?? "debug";
  if (!logger.isLevelEnabled(level)) return;
  logger[level](
    {
      ...(level === "debug" ? {} : { err: failed.cause }),
      requestId: call.requestId,
      procedure: call.procedure,
      ms: elapsedMs(call.started),
      code: codeToString(failed.code),
      ...(failed.reason === undefined ? {} : { reason: failed.reason }),
    },
    level === "error" ? "unexpected error" : level === "warn" ? "transient failure" : "call failed",
  );
}

/**
 * The one place RPC errors leave the server, and where calls are logged.
 * Every error becomes a Connect error with a Stagedoor ErrorInfo (see
 * {@link answerFor}): domain errors and recognised transient database errors
 * with their reasons, Connect's own errors with the reason they mean, and
 * anything else as a bare `internal`. Each call is logged once by
 * {@link logCall}. Errors Connect raises before the interceptors run (a
 * unary call's unreadable body) are given their ErrorInfo, and logged, by the
 * Connect adapter with the same functions. `observe`, when given, sees every
 * call (the metrics).
 */
export function createErrorInterceptor(logger: Logger, observe?: CallObserver): Interceptor {
  const fail = (error: unknown, req: CallInfo, started: number): ConnectError => {
    const answer = answerFor(error, req.method);
    req.contextValues.set(errorAnsweredKey, true);
    logCall(
      logger,
      finished(req, started),
      { code: answer.error.code, reason: answer.reason, cause: answer.cause },
      observe,
    );
    return answer.error;
  };
  const succeeded = (req: CallInfo, started: number) => {
    if (observe !== undefined || logger.isLevelEnabled("debug")) {
      logCall(logger, finished(req, started), undefined, observe);
    }
  };

  // `then` rather than an async function: one promise less per call.
  return (next) => (req) => {
    const started = performance.now();
    let pending: ReturnType<typeof next>;
    try {
      pending = next(req);
    } catch (error) {
      return Promise.reject(fail(error, req, started));
    }
    return pending.then(
      (res) => {
        if (!res.stream) {
          succeeded(req, started);
          return res;
        }
        return { ...res, message: observeStream(res.message, req, started, succeeded, fail) };
      },
      (error: unknown) => {
        throw fail(error, req, started);
      },
    );
  };
}

/** What the interceptor reads of a call to convert and log its outcome. */
interface CallInfo {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly contextValues: ContextValues;
  readonly signal: AbortSignal;
}

function finished(req: CallInfo, started: number): FinishedCall {
  return {
    requestId: req.contextValues.get(requestIdKey),
    procedure: `${req.service.typeName}/${req.method.name}`,
    started,
  };
}

function elapsedMs(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

async function* observeStream<O>(
  messages: AsyncIterable<O>,
  req: CallInfo,
  started: number,
  succeeded: (req: CallInfo, started: number) => void,
  fail: (error: unknown, req: CallInfo, started: number) => ConnectError,
): AsyncIterable<O> {
  try {
    yield* messages;
  } catch (error) {
    throw fail(error, req, started);
  }
  // A stream that stopped because its call was cut short did not finish: it
  // ends with why, not OK. So a stream's deadline reads DEADLINE_EXCEEDED
  // whether the server's timer fires first (the handler then just returns)
  // or the client's, and a shutdown reads SERVER_SHUTTING_DOWN.
  if (req.signal.aborted) throw fail(whyCutShort(req.signal), req, started);
  succeeded(req, started);
}

/**
 * Why a call's signal was aborted: the reason it was aborted with when that
 * is an error the caller may see (Connect's deadline, a domain error such as
 * a shutdown, the adapter's "client went away"), else a plain cancellation
 * (connect-node aborts an HTTP/2 call whose stream closed with no reason).
 */
function whyCutShort(signal: AbortSignal): ConnectError | DomainError {
  const reason: unknown = signal.reason;
  return reason instanceof ConnectError || reason instanceof DomainError
    ? reason
    : new ConnectError("the call was cancelled", Code.Canceled);
}
