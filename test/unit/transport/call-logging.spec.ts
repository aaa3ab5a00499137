import { Writable } from "node:stream";
import {
  Code,
  ConnectError,
  createContextValues,
  type Interceptor,
  type StreamResponse,
  type UnaryResponse,
} from "@connectrpc/connect";
import { ErrorInfoSchema, Health, ReservationService } from "@stagedoor/sdk";
import { expect } from "chai";
import { createLogger } from "../../../server/src/logger.js";
import { DomainError } from "../../../server/src/shared/domain-error.js";
import { requestIdKey } from "../../../server/src/transport/connect-adapter.js";
import { createErrorInterceptor } from "../../../server/src/transport/interceptors/error.interceptor.js";
import { must, rejectionOf } from "../unit-helpers.js";

type Next = Parameters<Interceptor>[0];
type AnyRequest = Parameters<Next>[0];
type AnyResponse = Awaited<ReturnType<Next>>;

/** A logger at `level` whose lines are kept, parsed, in `lines`. */
function capturingLogger(level: string) {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: createLogger(level, destination), lines };
}

const holdSeat = ReservationService.method.holdSeat;
const watch = Health.method.watch;

/** A HoldSeat call as the interceptor sees it, under request id `req-7`. */
function unaryCall(): AnyRequest {
  return {
    stream: false,
    service: ReservationService,
    method: holdSeat,
    requestMethod: "POST",
    url: "http://localhost/stagedoor.reservation.v1.ReservationService/HoldSeat",
    signal: new AbortController().signal,
    header: new Headers(),
    contextValues: createContextValues().set(requestIdKey, "req-7"),
    message: {},
  } as unknown as AnyRequest;
}

/** Runs one unary call through the interceptor, with `outcome` as the handler. */
async function runUnary(interceptor: Interceptor, outcome: () => unknown): Promise<unknown> {
  const next = (async () => {
    const result = outcome();
    return {
      stream: false,
      service: ReservationService,
      method: holdSeat,
      header: new Headers(),
      trailer: new Headers(),
      message: result,
    } as unknown as UnaryResponse;
  }) as unknown as Next;
  return interceptor(next)(unaryCall());
}

const seatTaken = () =>
  new DomainError("failed_precondition", "SEAT_UNAVAILABLE", "the seat is not available");

describe("call logging (error interceptor)", () => {
  it("logs nothing at info for an expected refusal, and nothing for a success", async () => {
    const { logger, lines } = capturingLogger("info");
    const interceptor = createErrorInterceptor(logger);
    const error = await rejectionOf(
      runUnary(interceptor, () => {
        throw seatTaken();
      }),
    );
    expect(ConnectError.from(error).code).to.equal(Code.FailedPrecondition);
    for (const refusal of [
      new DomainError("invalid_argument", "INVALID_ARGUMENT", "bad"),
      new DomainError("unauthenticated", "TOKEN_MISSING", "no token"),
      new DomainError("not_found", "SEAT_NOT_FOUND", "no seat"),
      new ConnectError("client went away", Code.Canceled),
    ]) {
      await rejectionOf(
        runUnary(interceptor, () => {
          throw refusal;
        }),
      );
    }
    await runUnary(interceptor, () => ({}));
    expect(lines).to.deep.equal([]);
  });

  it("logs refusals and successes at debug, with the request id, procedure and code", async () => {
    const { logger, lines } = capturingLogger("debug");
    const interceptor = createErrorInterceptor(logger);
    await rejectionOf(
      runUnary(interceptor, () => {
        throw seatTaken();
      }),
    );
    await runUnary(interceptor, () => ({}));
    expect(
      lines.map((l) => [l.level, l.msg, l.requestId, l.procedure, l.code, l.reason]),
    ).to.deep.equal([
      [
        20,
        "call failed",
        "req-7",
        "stagedoor.reservation.v1.ReservationService/HoldSeat",
        "failed_precondition",
        "SEAT_UNAVAILABLE",
      ],
      [
        20,
        "call ok",
        "req-7",
        "stagedoor.reservation.v1.ReservationService/HoldSeat",
        undefined,
        undefined,
      ],
    ]);
    expect(lines[0]).to.not.have.property("err");
  });

  it("logs a bug once, at error, with its cause; the caller gets a bare internal", async () => {
    const { logger, lines } = capturingLogger("info");
    const error = await rejectionOf(
      runUnary(createErrorInterceptor(logger), () => {
        throw new TypeError("secret detail");
      }),
    );
    expect(ConnectError.from(error).code).to.equal(Code.Internal);
    expect(ConnectError.from(error).rawMessage).to.equal("internal error");
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include({
      level: 50,
      msg: "unexpected error",
      requestId: "req-7",
      code: "internal",
    });
    expect(lines[0]?.err).to.deep.include({ message: "secret detail" });
  });

  it("logs a Connect error that means a server fault at error, once; the caller gets a bare internal", async () => {
    const { logger, lines } = capturingLogger("info");
    const answers = [];
    for (const code of [Code.Internal, Code.Unknown, Code.DataLoss]) {
      const error = ConnectError.from(
        await rejectionOf(
          runUnary(createErrorInterceptor(logger), () => {
            throw new ConnectError("broken", code);
          }),
        ),
      );
      answers.push([
        error.code,
        error.rawMessage,
        must(error.findDetails(ErrorInfoSchema)[0]).reason,
      ]);
    }
    expect(answers).to.deep.equal([
      [Code.Internal, "internal error", "INTERNAL_ERROR"],
      [Code.Internal, "internal error", "INTERNAL_ERROR"],
      [Code.Internal, "internal error", "INTERNAL_ERROR"],
    ]);
    expect(
      lines.map((l) => [l.level, l.code, (l.err as { message: string }).message]),
    ).to.deep.equal([
      [50, "internal", "[internal] broken"],
      [50, "internal", "[unknown] broken"],
      [50, "internal", "[data_loss] broken"],
    ]);
  });

  it("logs transient failures once, at warn", async () => {
    const { logger, lines } = capturingLogger("info");
    const interceptor = createErrorInterceptor(logger);
    const busy = Object.assign(new Error("canceling statement due to statement timeout"), {
      code: "57014",
    });
    const codes = [];
    for (const failure of [
      new DomainError("unavailable", "SERVER_BUSY", "busy"),
      busy,
      new ConnectError("too slow", Code.DeadlineExceeded),
    ]) {
      const error = await rejectionOf(
        runUnary(interceptor, () => {
          throw failure;
        }),
      );
      codes.push(ConnectError.from(error).code);
    }
    expect(codes).to.deep.equal([Code.Unavailable, Code.Unavailable, Code.DeadlineExceeded]);
    expect(lines.map((l) => [l.level, l.msg, l.code, l.reason])).to.deep.equal([
      [40, "transient failure", "unavailable", "SERVER_BUSY"],
      [40, "transient failure", "unavailable", "SERVER_BUSY"],
      [40, "transient failure", "deadline_exceeded", "DEADLINE_EXCEEDED"],
    ]);
  });

  it("converts and logs an error a server stream ends with", async () => {
    const { logger, lines } = capturingLogger("info");
    const next = (async () =>
      ({
        stream: true,
        service: Health,
        method: watch,
        header: new Headers(),
        trailer: new Headers(),
        message: (async function* () {
          yield {};
          throw new TypeError("stream broke");
        })(),
      }) as unknown as StreamResponse) as unknown as Next;
    const res = (await createErrorInterceptor(logger)(next)({
      ...unaryCall(),
      stream: true,
      service: Health,
      method: watch,
    } as unknown as AnyRequest)) as AnyResponse;
    expect(res.stream).to.equal(true);
    const seen: unknown[] = [];
    const error = await rejectionOf(
      (async () => {
        for await (const message of (res as StreamResponse).message) seen.push(message);
      })(),
    );
    expect(seen).to.have.length(1);
    expect(ConnectError.from(error).code).to.equal(Code.Internal);
    expect(lines.map((l) => [l.level, l.procedure])).to.deep.equal([
      [50, "grpc.health.v1.Health/Watch"],
    ]);
  });

  it("turns Connect's report of an unreadable request body into invalid_argument", async () => {
    const { logger, lines } = capturingLogger("info");
    const error = await rejectionOf(
      runUnary(createErrorInterceptor(logger), () => {
        throw new ConnectError("parse binary: premature EOF", Code.Internal);
      }),
    );
    expect(ConnectError.from(error).code).to.equal(Code.InvalidArgument);
    expect(ConnectError.from(error).rawMessage).to.match(/HoldSeatRequest/);
    expect(lines).to.deep.equal([]);
  });
});
