import { brotliCompressSync, gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckRequestSchema } from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor, PROTOCOLS, transportFor } from "../support/clients.js";
import type { TestServer } from "../support/test-server.js";
import { isGrpcJsError, richError } from "./grpc-js-client.js";
import { frame, type RawProtocol, type RawRequest, rawCall } from "./raw-calls.js";
import {
  admittedUser,
  type ExpectedError,
  expectRpcError,
  newRequestId,
  startRpcServer,
} from "./rpc-kit.js";

const LIST_DATES = "/stagedoor.catalog.v1.CatalogService/ListConcertDates";
const HEALTH_WATCH = "/grpc.health.v1.Health/Watch";
const RECHARGE = "/stagedoor.wallet.v1.WalletService/RechargeWallet";
const CREATE_PAYMENT = "/stagedoor.payment.v1.PaymentService/CreatePayment";

/** Field 1 of both ListConcertDatesRequest (concert_id) and HealthCheckRequest (service) is a string. */
function stringField1(bytes: Uint8Array): Uint8Array {
  const length = bytes.length;
  const varint: number[] = [];
  for (let rest = length; ; rest >>>= 7) {
    if (rest < 0x80) {
      varint.push(rest);
      break;
    }
    varint.push((rest & 0x7f) | 0x80);
  }
  return new Uint8Array([0x0a, ...varint, ...bytes]);
}

/** Just over the 64 KiB an RPC message may have, as a well-formed message. */
const OVERSIZED = stringField1(new Uint8Array(70 * 1024).fill(0x61));
/** A well-formed message of both request types (field 1 set to "x"). */
const VALID = stringField1(new Uint8Array([0x78]));

const malformed: ExpectedError = { code: Code.InvalidArgument, reason: "MALFORMED_REQUEST" };
const tooLarge: ExpectedError = { code: Code.ResourceExhausted, reason: "REQUEST_TOO_LARGE" };

/** Bodies that are not a message of the method's request type, in protobuf. */
const BINARY_CASES: [string, Omit<RawRequest, "protocol" | "path">, ExpectedError][] = [
  [
    "a varint that never ends",
    { message: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]) },
    malformed,
  ],
  ["a length beyond the body", { message: new Uint8Array([0x0a, 0x10, 0x61]) }, malformed],
  ["a reserved wire type", { message: new Uint8Array([0x0e, 0x01]) }, malformed],
  ["a string that is not UTF-8", { message: new Uint8Array([0x0a, 0x02, 0xc3, 0x28]) }, malformed],
  [
    "gzip of garbage",
    { message: gzipSync(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f])), encoding: "gzip" },
    malformed,
  ],
  [
    "truncated brotli",
    { message: brotliCompressSync(OVERSIZED).subarray(0, 9), encoding: "br" },
    malformed,
  ],
  ["bytes that are not gzip at all", { message: VALID, encoding: "gzip" }, malformed],
  ["a message over 64 KiB", { message: OVERSIZED }, tooLarge],
  [
    "a gzip bomb that inflates past 64 KiB",
    { message: gzipSync(OVERSIZED), encoding: "gzip" },
    tooLarge,
  ],
  [
    "an encoding the server does not read (zstd)",
    { message: VALID, encoding: "zstd" },
    { code: Code.Unimplemented, reason: "UNSUPPORTED_ENCODING" },
  ],
];

/** Bodies that are not a message of the method's request type, in JSON; `field` is the JSON name of field 1. */
function jsonCases(
  jsonField: string,
  protoField: string,
): [string, Omit<RawRequest, "protocol" | "path">, ExpectedError][] {
  return [
    ["JSON that does not parse ({)", { message: "{", codec: "json" }, malformed],
    ["a JSON array ([])", { message: "[]", codec: "json" }, malformed],
    ["a JSON string", { message: '"hello"', codec: "json" }, malformed],
    [
      "a number where a string belongs",
      { message: `{"${jsonField}": 5}`, codec: "json" },
      { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: protoField },
    ],
    [
      "a string that is not UTF-8",
      {
        message: Buffer.concat([
          Buffer.from(`{"${jsonField}":"`),
          Buffer.from([0xc3, 0x28]),
          Buffer.from('"}'),
        ]),
        codec: "json",
      },
      malformed,
    ],
    [
      "JSON over 64 KiB",
      { message: JSON.stringify({ [jsonField]: "a".repeat(70 * 1024) }), codec: "json" },
      tooLarge,
    ],
  ];
}

/** Asserts the hand-made call's answer is the expected error with its ErrorInfo (and BadRequest). */
async function expectAnswer(
  answer: Promise<"ok" | ConnectError>,
  expected: ExpectedError,
): Promise<ConnectError> {
  return expectRpcError(
    answer.then((outcome) => {
      if (outcome instanceof ConnectError) throw outcome;
      return outcome;
    }),
    expected,
  );
}

describe("one error contract: every non-OK answer carries ErrorInfo", () => {
  let server: TestServer;

  before(async () => {
    server = await startRpcServer();
  });

  after(async () => {
    await server?.stop();
  });

  describe("protobuf bodies the server cannot read", () => {
    const targets: [RawProtocol, string][] = [
      ["connect", LIST_DATES],
      ["grpc", LIST_DATES],
      ["grpc-web", LIST_DATES],
      ["connect-stream", HEALTH_WATCH],
      ["grpc", HEALTH_WATCH],
      ["grpc-web", HEALTH_WATCH],
    ];
    for (const [what, request, expected] of BINARY_CASES) {
      for (const [protocol, path] of targets) {
        const kind = path === HEALTH_WATCH ? "a server stream" : "a unary method";
        it(`${what}, to ${kind} over ${protocol} → ${Code[expected.code]} ${expected.reason}`, async () => {
          await expectAnswer(rawCall(server.url, { protocol, path, ...request }), expected);
        });
      }
    }

    for (const [protocol, path] of targets.filter(([p]) => p !== "connect")) {
      const kind = path === HEALTH_WATCH ? "a server stream" : "a unary method";
      it(`a frame marked compressed without a declared encoding, to ${kind} over ${protocol}`, async () => {
        await expectAnswer(
          rawCall(server.url, { protocol, path, message: gzipSync(VALID), flags: 1 }),
          malformed,
        );
      });
    }

    for (const protocol of ["grpc", "grpc-web"] as const) {
      for (const path of [LIST_DATES, HEALTH_WATCH]) {
        const kind = path === HEALTH_WATCH ? "a server stream" : "a unary method";
        it(`two messages, to ${kind} over ${protocol} → InvalidArgument MALFORMED_REQUEST`, async () => {
          const two = Buffer.concat([frame(0, VALID), frame(0, VALID)]);
          await expectAnswer(
            rawCall(server.url, { protocol, path, message: two, framed: true }),
            malformed,
          );
        });
        it(`no message at all, to ${kind} over ${protocol} → InvalidArgument MALFORMED_REQUEST`, async () => {
          await expectAnswer(
            rawCall(server.url, { protocol, path, message: new Uint8Array(0), framed: true }),
            malformed,
          );
        });
      }
    }
  });

  describe("JSON bodies the server cannot read", () => {
    const targets: [RawProtocol, string, string, string][] = [
      ["connect", LIST_DATES, "concertId", "concert_id"],
      ["grpc", LIST_DATES, "concertId", "concert_id"],
      ["grpc-web", LIST_DATES, "concertId", "concert_id"],
      ["connect-stream", HEALTH_WATCH, "service", "service"],
      ["grpc", HEALTH_WATCH, "service", "service"],
      ["grpc-web", HEALTH_WATCH, "service", "service"],
    ];
    for (const [protocol, path, jsonField, protoField] of targets) {
      const kind = path === HEALTH_WATCH ? "a server stream" : "a unary method";
      for (const [what, request, expected] of jsonCases(jsonField, protoField)) {
        it(`${what}, to ${kind} over ${protocol} → ${Code[expected.code]} ${expected.reason}`, async () => {
          await expectAnswer(rawCall(server.url, { protocol, path, ...request }), expected);
        });
      }
    }
  });

  describe("unknown methods", () => {
    const unknown = { code: Code.Unimplemented, reason: "METHOD_NOT_FOUND" };
    for (const path of [
      "/stagedoor.catalog.v1.CatalogService/NoSuchMethod",
      "/stagedoor.nothing.v1.NoService/List",
    ]) {
      for (const [protocol, codec] of [
        ["connect", "proto"],
        ["connect", "json"],
        ["connect-stream", "proto"],
        ["grpc", "proto"],
        ["grpc-web", "proto"],
        ["grpc-web", "json"],
      ] as const) {
        it(`${path} over ${protocol} (${codec}) → Unimplemented METHOD_NOT_FOUND`, async () => {
          const message = codec === "json" ? "{}" : VALID;
          await expectAnswer(rawCall(server.url, { protocol, path, message, codec }), unknown);
        });
      }

      it(`${path} with @grpc/grpc-js → UNIMPLEMENTED with ErrorInfo METHOD_NOT_FOUND`, async () => {
        const error = await grpcJsRawCall(server.url, path, Buffer.from(VALID));
        expect(error.code).to.equal(grpc.status.UNIMPLEMENTED);
        await expectRpcError(Promise.reject(richError(error)), unknown);
      });
    }

    it("a plain GET of an unknown path is still the web server's 404", async () => {
      const res = await fetch(`${server.url}/stagedoor.catalog.v1.CatalogService/NoSuchMethod`);
      expect(res.status).to.equal(404);
      expect(await res.json()).to.deep.equal({ error: "no such route" });
    });
  });

  describe("over the SDK's transports and @grpc/grpc-js", () => {
    for (const protocol of PROTOCOLS) {
      it(`over ${protocol} (connect-node): an unknown health service → NotFound SERVICE_NOT_FOUND`, async () => {
        const health = createClient(Health, transportFor(protocol, server.url));
        await expectRpcError(health.check({ service: "nope.v1.Nope" }), {
          code: Code.NotFound,
          reason: "SERVICE_NOT_FOUND",
        });
      });

      it(`over ${protocol} (connect-node): a message over 64 KiB → ResourceExhausted REQUEST_TOO_LARGE`, async () => {
        await expectRpcError(
          clientFor(protocol, server.url).catalog.listConcertDates({
            concertId: "a".repeat(70 * 1024),
          }),
          tooLarge,
        );
      });
    }

    const grpcJsCases: [string, string, Uint8Array, ExpectedError][] = [
      [
        "a varint that never ends",
        LIST_DATES,
        new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]),
        malformed,
      ],
      [
        "a string that is not UTF-8",
        LIST_DATES,
        new Uint8Array([0x0a, 0x02, 0xc3, 0x28]),
        malformed,
      ],
      ["a message over 64 KiB", LIST_DATES, OVERSIZED, tooLarge],
      [
        "a string that is not UTF-8, to a server stream",
        HEALTH_WATCH,
        new Uint8Array([0x0a, 0x02, 0xc3, 0x28]),
        malformed,
      ],
      [
        "an unknown health service",
        "/grpc.health.v1.Health/Check",
        toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "nope" })),
        { code: Code.NotFound, reason: "SERVICE_NOT_FOUND" },
      ],
    ];
    for (const [what, path, message, expected] of grpcJsCases) {
      it(`with @grpc/grpc-js: ${what} → ${Code[expected.code]} ${expected.reason}`, async () => {
        const error = await grpcJsRawCall(server.url, path, Buffer.from(message));
        await expectRpcError(Promise.reject(richError(error)), expected);
      });
    }
  });

  describe("int64 fields take only canonical decimal integers", () => {
    /** Spellings `BigInt()` reads (or a JSON number loses) that ProtoJSON does not allow. */
    const REFUSED: [string, string][] = [
      ["hexadecimal", '"0x10"'],
      ["binary", '"0b10000"'],
      ["octal", '"0o20"'],
      ["a leading space", '" 16"'],
      ["a trailing space", '"16 "'],
      ["a trailing newline", '"16\\n"'],
      ["a plus sign", '"+16"'],
      ["a leading zero", '"016"'],
      ["minus zero", '"-0"'],
      ["an empty string", '""'],
      ["an exponent in a string", '"1e1"'],
      ["a decimal point in a string", '"16.0"'],
      ["a fraction", "16.5"],
      ["a number beyond 2^53 (it would be rounded)", "9007199254740993"],
      ["a number beyond int64", "1e300"],
      ["a boolean", "true"],
    ];
    const protocols: ["connect" | "grpc" | "grpc-web", string][] = [
      ["connect", "Connect JSON"],
      ["grpc-web", "gRPC-Web JSON"],
      ["grpc", "gRPC JSON"],
    ];

    for (const [protocol, label] of protocols) {
      describe(`over ${label}`, () => {
        let token: string;

        before(async () => {
          token = (await admittedUser(clientFor("connect", server.url), server.concertId, "int64"))
            .token;
        });

        for (const [what, amount] of REFUSED) {
          it(`RechargeWallet refuses ${what} (${amount}) as amount and credits nothing`, async () => {
            await expectAnswer(
              rawCall(server.url, {
                protocol,
                path: RECHARGE,
                codec: "json",
                message: `{"amount":${amount},"requestId":"${newRequestId()}"}`,
                headers: { authorization: `Bearer ${token}` },
              }),
              { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "amount" },
            );
            const { wallet } = await clientFor("connect", server.url, token).wallet.getWallet({});
            expect([wallet?.balance, wallet?.version]).to.deep.equal([0n, 0n]);
          });
        }

        it("CreatePayment refuses a hexadecimal amount", async () => {
          await expectAnswer(
            rawCall(server.url, {
              protocol,
              path: CREATE_PAYMENT,
              codec: "json",
              message: `{"reservationId":"${crypto.randomUUID()}","amount":"0x10","requestId":"${newRequestId()}"}`,
              headers: { authorization: `Bearer ${token}` },
            }),
            { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "amount" },
          );
        });
      });
    }

    it("accepts the canonical spellings, as a string and as a number, over every JSON protocol", async () => {
      const { token } = await admittedUser(
        clientFor("connect", server.url),
        server.concertId,
        "canonical",
      );
      for (const [protocol] of protocols) {
        for (const amount of ['"16"', "16", "1.6e1"]) {
          const answer = await rawCall(server.url, {
            protocol,
            path: RECHARGE,
            codec: "json",
            message: `{"amount":${amount},"requestId":"${newRequestId()}"}`,
            headers: { authorization: `Bearer ${token}` },
          });
          expect(answer, `${protocol} ${amount}`).to.equal("ok");
        }
      }
      const { wallet } = await clientFor("connect", server.url, token).wallet.getWallet({});
      expect(wallet?.balance).to.equal(16n * 9n);
    });
  });

  describe("REST", () => {
    it("refuses the same amount spellings (it takes JSON numbers only) and credits nothing", async () => {
      const userId = `rest-int64-${crypto.randomUUID().slice(0, 8)}`;
      const issued = await fetch(`${server.url}/api/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ userId }),
      });
      const { token } = (await issued.json()) as { token: string };
      for (const amount of [
        '"0x10"',
        '"16"',
        '" 16"',
        "16.5",
        "9007199254740993",
        "1e300",
        "true",
      ]) {
        const res = await fetch(`${server.url}/api/balance/recharge`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: `{"userId":"${userId}","amount":${amount}}`,
        });
        expect(res.status, amount).to.equal(400);
        expect(await res.json(), amount).to.have.keys(["error"]);
        expect(res.headers.get("x-error-reason"), amount).to.equal("INVALID_ARGUMENT");
      }
      const balance = await fetch(`${server.url}/api/balance?userId=${userId}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(balance.status).to.equal(200);
      expect(await balance.json()).to.deep.equal({ userId, currentBalance: 0 });
    });

    it("every error answer names its reason in x-error-reason, and keeps the seed's body", async () => {
      const json = { "content-type": "application/json" };
      const answers: [string, Promise<Response>, number, string][] = [
        ["an unknown route", fetch(`${server.url}/api/nope`), 404, "METHOD_NOT_FOUND"],
        ["a wrong HTTP method", fetch(`${server.url}/api/token`), 405, "METHOD_NOT_FOUND"],
        [
          "a body that is not JSON",
          fetch(`${server.url}/api/token`, { method: "POST", body: "{}" }),
          415,
          "MALFORMED_REQUEST",
        ],
        [
          "JSON that does not parse",
          fetch(`${server.url}/api/token`, { method: "POST", headers: json, body: "{" }),
          400,
          "MALFORMED_REQUEST",
        ],
        [
          "a body over 16 KiB",
          fetch(`${server.url}/api/token`, {
            method: "POST",
            headers: json,
            body: JSON.stringify({ userId: "x".repeat(20 * 1024) }),
          }),
          413,
          "REQUEST_TOO_LARGE",
        ],
        [
          "a missing field",
          fetch(`${server.url}/api/token`, { method: "POST", headers: json, body: "{}" }),
          400,
          "INVALID_ARGUMENT",
        ],
        ["no token", fetch(`${server.url}/api/balance?userId=a`), 401, "TOKEN_MISSING"],
        [
          "an unknown date",
          fetch(`${server.url}/api/concerts/seats?date=2000-01-01`),
          404,
          "CONCERT_DATE_NOT_FOUND",
        ],
      ];
      for (const [what, pending, status, reason] of answers) {
        const res = await pending;
        const body = (await res.json()) as Record<string, unknown>;
        expect([res.status, Object.keys(body)], what).to.deep.equal([status, ["error"]]);
        expect(res.headers.get("x-error-reason"), what).to.equal(reason);
      }
    });
  });
});

/**
 * One unary call with @grpc/grpc-js whose request bytes are sent as given
 * (no serializer), so a stock gRPC client can send what the SDK would not.
 */
function grpcJsRawCall(baseUrl: string, path: string, bytes: Buffer): Promise<grpc.ServiceError> {
  const client = new grpc.Client(new URL(baseUrl).host, grpc.credentials.createInsecure());
  return new Promise<grpc.ServiceError>((resolve, reject) => {
    const settle = (error: unknown) => {
      client.close();
      if (isGrpcJsError(error)) resolve(error);
      else reject(new Error(`expected a gRPC error, got ${String(error)}`));
    };
    if (path === HEALTH_WATCH) {
      const stream = client.makeServerStreamRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        bytes,
        new grpc.Metadata(),
      );
      stream.on("data", () => {});
      stream.on("error", settle);
      stream.on("end", () => settle("the end of the stream"));
      return;
    }
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
      (error) => settle(error ?? "a response"),
    );
  });
}
