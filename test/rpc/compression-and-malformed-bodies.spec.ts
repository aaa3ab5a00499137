import http2 from "node:http2";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import {
  createStagedoorClient,
  Health,
  HealthCheckRequestSchema,
  ListConcertsRequestSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor, PROTOCOLS, type Protocol } from "../support/clients.js";
import type { TestServer } from "../support/test-server.js";
import { admittedUser, startRpcServer } from "./rpc-kit.js";

const LIST_CONCERTS = "/stagedoor.catalog.v1.CatalogService/ListConcerts";
const HEALTH_WATCH = "/grpc.health.v1.Health/Watch";

/** Not a protobuf message: a varint that never ends. */
const GARBAGE = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]);

const COMPRESSIONS = [
  ["gzip", compressionGzip, (b: Uint8Array) => new Uint8Array(gzipSync(b))],
  ["br", compressionBrotli, (b: Uint8Array) => new Uint8Array(brotliCompressSync(b))],
] as const;

/** Records whether the client sent each call compressed. */
function encodingSpy(): { interceptor: Interceptor; seen: (string | null)[] } {
  const seen: (string | null)[] = [];
  return {
    seen,
    interceptor: (next) => (req) => {
      seen.push(
        req.header.get("content-encoding") ??
          req.header.get("connect-content-encoding") ??
          req.header.get("grpc-encoding"),
      );
      return next(req);
    },
  };
}

function compressingTransport(
  protocol: Protocol,
  baseUrl: string,
  compression: typeof compressionGzip,
  interceptors: Interceptor[],
) {
  // Our messages are small: compress every one of them.
  const options = { baseUrl, sendCompression: compression, compressMinBytes: 1, interceptors };
  switch (protocol) {
    case "connect":
      return createConnectTransport({ ...options, httpVersion: "1.1" });
    case "grpc":
      return createGrpcTransport(options);
    case "grpc-web":
      return createGrpcWebTransport({ ...options, httpVersion: "1.1" });
  }
}

/** One enveloped message (gRPC, gRPC-Web, Connect streaming). */
function frame(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** Splits an enveloped body into its frames. */
function frames(body: Uint8Array): { flags: number; payload: Uint8Array }[] {
  const out = [];
  let offset = 0;
  while (offset + 5 <= body.length) {
    const length = new DataView(body.buffer, body.byteOffset + offset + 1, 4).getUint32(0);
    out.push({
      flags: body[offset] ?? 0,
      payload: body.subarray(offset + 5, offset + 5 + length),
    });
    offset += 5 + length;
  }
  return out;
}

/** How a hand-made request's body is framed and labelled. */
type RawProtocol = "connect" | "connect-stream" | "grpc" | "grpc-web";

interface RawRequest {
  readonly protocol: RawProtocol;
  readonly path: string;
  /** The message bytes (framed here for the enveloped protocols). */
  readonly message: Uint8Array;
  /** The request's declared encoding, if any. */
  readonly encoding?: string;
  /** Frame flags; 1 marks a compressed frame. */
  readonly flags?: number;
}

/**
 * Sends a hand-made request and returns the Connect code name it was answered
 * with ("ok" for success), read wherever the protocol puts it.
 */
async function rawCall(baseUrl: string, request: RawRequest): Promise<string> {
  const flags = request.flags ?? (request.encoding ? 1 : 0);
  if (request.protocol === "grpc") {
    return grpcCall(baseUrl, request.path, frame(flags, request.message), request.encoding);
  }
  const headers: Record<string, string> = {};
  let body = request.message;
  switch (request.protocol) {
    case "connect":
      headers["content-type"] = "application/proto";
      if (request.encoding) headers["content-encoding"] = request.encoding;
      break;
    case "connect-stream":
      headers["content-type"] = "application/connect+proto";
      if (request.encoding) headers["connect-content-encoding"] = request.encoding;
      body = frame(flags, body);
      break;
    case "grpc-web":
      headers["content-type"] = "application/grpc-web+proto";
      if (request.encoding) headers["grpc-encoding"] = request.encoding;
      body = frame(flags, body);
      break;
  }
  const res = await fetch(`${baseUrl}${request.path}`, { method: "POST", headers, body });
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (request.protocol === "connect") {
    if (res.status === 200) return "ok";
    return (JSON.parse(new TextDecoder().decode(bytes)) as { code: string }).code;
  }
  const last = frames(bytes).at(-1);
  if (!last) return `no frames (HTTP ${res.status})`;
  const text = new TextDecoder().decode(last.payload);
  if (request.protocol === "connect-stream") {
    const end = JSON.parse(text) as { error?: { code: string } };
    return end.error?.code ?? "ok";
  }
  const status = /grpc-status: ?(\d+)/.exec(text)?.[1];
  return status === undefined ? `no status in ${JSON.stringify(text)}` : codeName(Number(status));
}

/** A gRPC call over h2c; the code name from the trailers. */
function grpcCall(
  baseUrl: string,
  path: string,
  body: Uint8Array,
  encoding: string | undefined,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc+proto",
      te: "trailers",
      ...(encoding ? { "grpc-encoding": encoding } : {}),
    });
    let status: string | undefined;
    const read = (headers: http2.IncomingHttpHeaders) => {
      const value = headers["grpc-status"];
      if (typeof value === "string") status = value;
    };
    stream.on("response", read);
    stream.on("trailers", read);
    stream.on("data", () => {});
    stream.on("end", () => {
      session.close();
      resolve(status === undefined ? "no grpc-status" : codeName(Number(status)));
    });
    stream.on("error", (error) => {
      session.close();
      reject(error);
    });
    stream.end(body);
  });
}

/** "invalid_argument" for Code.InvalidArgument, as the Connect protocol spells codes. */
function codeName(code: number): string {
  return code === 0
    ? "ok"
    : (Code[code] ?? String(code)).replace(/[A-Z]/g, (c, i: number) =>
        i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`,
      );
}

describe("compressed requests and malformed bodies", () => {
  let server: TestServer;

  before(async () => {
    server = await startRpcServer();
  });

  after(async () => {
    await server?.stop();
  });

  describe("compressed requests work", () => {
    for (const protocol of PROTOCOLS) {
      for (const [name, compression] of COMPRESSIONS) {
        it(`over ${protocol} with ${name}: unary calls and a server stream`, async () => {
          const spy = encodingSpy();
          const transport = compressingTransport(protocol, server.url, compression, [
            spy.interceptor,
          ]);
          const client = createStagedoorClient(transport);
          const { concerts } = await client.catalog.listConcerts({ pageSize: 5 });
          expect(concerts.map((c) => c.id)).to.deep.equal([server.concertId]);
          const user = await admittedUser(client, server.concertId, `zip-${name}`);
          expect(user.token).to.match(/^sdq_/);

          const health = createClient(Health, transport);
          const controller = new AbortController();
          const stream = health.watch(
            { service: "stagedoor.queue.v1.QueueService" },
            { signal: controller.signal },
          );
          for await (const message of stream) {
            expect(message.status).to.equal(ServingStatus.SERVING);
            break;
          }
          controller.abort();
          expect(spy.seen).to.deep.equal([name, name, name]);
        });
      }
    }

    for (const [name, , compress] of COMPRESSIONS) {
      it(`a plain ${name} application/proto POST is answered 200, as connectNodeAdapter answers it`, async () => {
        const message = toBinary(
          ListConcertsRequestSchema,
          create(ListConcertsRequestSchema, { pageSize: 5 }),
        );
        const res = await fetch(`${server.url}${LIST_CONCERTS}`, {
          method: "POST",
          headers: { "content-type": "application/proto", "content-encoding": name },
          body: compress(message),
        });
        expect(res.status).to.equal(200);
        expect(res.headers.get("content-type")).to.equal("application/proto");
        await res.arrayBuffer();
      });
    }
  });

  describe("a body that is not a message is invalid_argument in every protocol", () => {
    const validWatch = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}));
    const cases: [string, (protocol: RawProtocol, path: string) => RawRequest][] = [
      ["garbage protobuf", (protocol, path) => ({ protocol, path, message: GARBAGE })],
      [
        "gzip of garbage protobuf",
        (protocol, path) => ({ protocol, path, message: gzipSync(GARBAGE), encoding: "gzip" }),
      ],
      [
        "brotli of garbage protobuf",
        (protocol, path) => ({
          protocol,
          path,
          message: brotliCompressSync(GARBAGE),
          encoding: "br",
        }),
      ],
      [
        "truncated gzip",
        (protocol, path) => ({
          protocol,
          path,
          message: gzipSync(validWatch).subarray(0, 12),
          encoding: "gzip",
        }),
      ],
      [
        "bytes that are not gzip at all",
        (protocol, path) => ({ protocol, path, message: GARBAGE, encoding: "gzip" }),
      ],
    ];
    const unary: RawProtocol[] = ["connect", "grpc", "grpc-web"];
    const streams: RawProtocol[] = ["connect-stream", "grpc", "grpc-web"];
    for (const [what, request] of cases) {
      for (const protocol of unary) {
        it(`${what} to a unary method over ${protocol}`, async () => {
          expect(await rawCall(server.url, request(protocol, LIST_CONCERTS))).to.equal(
            "invalid_argument",
          );
        });
      }
      for (const protocol of streams) {
        it(`${what} to a server stream over ${protocol}`, async () => {
          expect(await rawCall(server.url, request(protocol, HEALTH_WATCH))).to.equal(
            "invalid_argument",
          );
        });
      }
    }

    for (const protocol of ["grpc", "grpc-web", "connect-stream"] as const) {
      it(`a frame marked compressed without a declared encoding over ${protocol}`, async () => {
        expect(
          await rawCall(server.url, {
            protocol,
            path: protocol === "connect-stream" ? HEALTH_WATCH : LIST_CONCERTS,
            message: gzipSync(validWatch),
            flags: 1,
          }),
        ).to.equal("invalid_argument");
      });
    }

    it("the same bodies well formed are answered, so the refusals are about the bodies", async () => {
      const list = toBinary(ListConcertsRequestSchema, create(ListConcertsRequestSchema, {}));
      for (const protocol of unary) {
        expect(
          await rawCall(server.url, { protocol, path: LIST_CONCERTS, message: list }),
        ).to.equal("ok");
        expect(
          await rawCall(server.url, {
            protocol,
            path: LIST_CONCERTS,
            message: gzipSync(list),
            encoding: "gzip",
          }),
        ).to.equal("ok");
      }
    });

    it("the server answers normally afterwards", async () => {
      for (const protocol of PROTOCOLS) {
        const { concerts } = await clientFor(protocol, server.url).catalog.listConcerts({});
        expect(concerts).to.have.length(1);
      }
    });
  });

  it("an unsupported encoding is still unimplemented, as Connect answers it", async () => {
    const error = await fetch(`${server.url}${LIST_CONCERTS}`, {
      method: "POST",
      headers: { "content-type": "application/proto", "content-encoding": "zstd" },
      body: GARBAGE,
    }).then(async (res) => ({
      status: res.status,
      code: ((await res.json()) as { code: string }).code,
    }));
    expect(error).to.deep.equal({ status: 501, code: "unimplemented" });
  });
});
