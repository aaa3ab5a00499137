import { getEventListeners } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, createFileRegistry } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  file_google_protobuf_wrappers,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type HandlerContext } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@stagedoor/sdk";
import { expect } from "chai";
import { createLogger } from "../../../server/src/logger.js";
import {
  type ConnectAdapterOptions,
  createConnectAdapter,
  int64Plan,
  QUIET_SIGNALS_KEPT,
  QuietSignals,
  requestIdKey,
} from "../../../server/src/transport/connect-adapter.js";
import { type RawProtocol, rawCall } from "../../rpc/raw-calls.js";
import { expectRpcError } from "../../rpc/rpc-kit.js";

/**
 * Serves grpc.health.v1.Health through an adapter over HTTP/1.1 for the
 * enclosing describe (started before its tests, closed after its tests).
 * `check` and `watch` see each call's context first; a watch sends SERVING,
 * then stays open until its signal aborts.
 */
function serveHealth(
  options: Pick<ConnectAdapterOptions, "shutdownSignal" | "quietSignals">,
  hooks: { check?: (ctx: HandlerContext) => void; watch?: (ctx: HandlerContext) => void },
): { readonly baseUrl: string } {
  const served = { baseUrl: "" };
  let server: http.Server;
  before(async () => {
    const adapter = createConnectAdapter({
      ...options,
      logger: createLogger("silent"),
      fallback: (_req, res) => {
        res.writeHead(404);
        res.end();
      },
      routes: (router) => {
        router.service(Health, {
          check(_req, ctx) {
            hooks.check?.(ctx);
            return { status: ServingStatus.SERVING };
          },
          async *watch(_req, ctx) {
            hooks.watch?.(ctx);
            yield { status: ServingStatus.SERVING };
            await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          },
          list: () => ({ statuses: {} }),
        });
      },
    });
    server = http.createServer((req, res) => adapter(req, res, "id-from-the-listener"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    served.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return served;
}

describe("createConnectAdapter", () => {
  const shutdown = new AbortController();
  /** What the handlers saw: shutdown listeners while they ran, and the call's request id. */
  const seen = { checkListeners: -1, watchListeners: -1, requestId: "" };
  const served = serveHealth(
    { shutdownSignal: shutdown.signal },
    {
      check(ctx) {
        seen.checkListeners = getEventListeners(shutdown.signal, "abort").length;
        seen.requestId = ctx.values.get(requestIdKey);
      },
      watch() {
        seen.watchListeners = getEventListeners(shutdown.signal, "abort").length;
      },
    },
  );

  it("gives the interceptors and handlers the listener's request id", async () => {
    const health = createClient(
      Health,
      createConnectTransport({ baseUrl: served.baseUrl, httpVersion: "1.1" }),
    );
    await health.check({});
    expect(seen.requestId).to.equal("id-from-the-listener");
  });

  it("links only streams to the shutdown signal: a unary call adds no listener to it", async () => {
    const health = createClient(
      Health,
      createConnectTransport({ baseUrl: served.baseUrl, httpVersion: "1.1" }),
    );
    expect((await health.check({})).status).to.equal(ServingStatus.SERVING);
    expect(seen.checkListeners).to.equal(0);

    const stream = health.watch({})[Symbol.asyncIterator]();
    expect((await stream.next()).value?.status).to.equal(ServingStatus.SERVING);
    expect(seen.watchListeners).to.be.greaterThan(0);
    // Shutting down ends the open stream.
    shutdown.abort();
    const end = await stream.next().then(
      (result) => (result.done ? "ended" : "another message"),
      (error: unknown) => Code[ConnectError.from(error).code],
    );
    expect(end).to.be.oneOf(["ended", "Canceled", "Aborted", "Unavailable"]);
  });
});

describe("createConnectAdapter's signals of unary calls over HTTP/1.1", () => {
  const quiet = new QuietSignals();
  /** Told the stream's signal once a watch has begun. */
  let watching: (signal: AbortSignal) => void = () => undefined;
  const served = serveHealth({ quietSignals: quiet }, { watch: (ctx) => watching(ctx.signal) });

  /** Every signal waiting in the pool, taken out and put back. */
  function pooled(): AbortSignal[] {
    const signals: AbortSignal[] = [];
    while (quiet.size > 0) signals.push(quiet.take());
    for (const signal of signals) quiet.giveBack(signal);
    return signals;
  }

  it("reuses one never-aborting signal, with no listener left, for calls one after another", async () => {
    const connect = createClient(
      Health,
      createConnectTransport({ baseUrl: served.baseUrl, httpVersion: "1.1" }),
    );
    const grpcWeb = createClient(
      Health,
      createGrpcWebTransport({ baseUrl: served.baseUrl, httpVersion: "1.1" }),
    );
    for (let i = 0; i < 3; i++) {
      expect((await connect.check({})).status).to.equal(ServingStatus.SERVING);
    }
    const [signal, ...more] = pooled();
    expect(more).to.have.length(0);
    expect(signal?.aborted).to.equal(false);
    expect(getEventListeners(signal as AbortSignal, "abort")).to.have.length(0);
    // gRPC-Web makes its answer as it writes it, still linked to the call's
    // signal when the handler returns: that signal is dropped, never pooled
    // with a listener on it.
    for (let i = 0; i < 3; i++) {
      expect((await grpcWeb.check({})).status).to.equal(ServingStatus.SERVING);
    }
    for (const left of pooled()) {
      expect(left.aborted).to.equal(false);
      expect(getEventListeners(left, "abort")).to.have.length(0);
    }
  });

  it("grows to the calls in flight at once, each with a signal of its own", async () => {
    const connect = createClient(
      Health,
      createConnectTransport({ baseUrl: served.baseUrl, httpVersion: "1.1" }),
    );
    await Promise.all(Array.from({ length: 6 }, () => connect.check({})));
    const signals = pooled();
    expect(signals.length).to.be.within(1, 6);
    expect(new Set(signals).size).to.equal(signals.length);
    for (const signal of signals) expect(getEventListeners(signal, "abort")).to.have.length(0);
  });

  it("gives a stream a signal of its own that aborts when the client goes away", async () => {
    const before = quiet.size;
    const started = new Promise<AbortSignal>((resolve) => {
      watching = resolve;
    });
    const client = new AbortController();
    const health = createClient(
      Health,
      createConnectTransport({ baseUrl: served.baseUrl, httpVersion: "1.1" }),
    );
    const stream = health.watch({}, { signal: client.signal })[Symbol.asyncIterator]();
    expect((await stream.next()).value?.status).to.equal(ServingStatus.SERVING);
    const signal = await started;
    expect(quiet.size).to.equal(before);
    const aborted = new Promise((resolve) => signal.addEventListener("abort", resolve));
    client.abort();
    await stream.next().catch(() => undefined);
    await aborted;
    expect(signal.aborted).to.equal(true);
    expect(quiet.size).to.equal(before);
  });

  it("never takes back a signal something still listens to", () => {
    const signals = new QuietSignals();
    const signal = signals.take();
    const listener = () => undefined;
    signal.addEventListener("abort", listener);
    signals.giveBack(signal);
    expect(signals.size).to.equal(0);
    signal.removeEventListener("abort", listener);
    signals.giveBack(signal);
    expect(signals.size).to.equal(1);
    expect(signals.take()).to.equal(signal);
    // After a spike, it keeps no more than QUIET_SIGNALS_KEPT idle signals.
    const spike = Array.from({ length: QUIET_SIGNALS_KEPT + 5 }, () => signals.take());
    for (const each of spike) signals.giveBack(each);
    expect(signals.size).to.equal(QUIET_SIGNALS_KEPT);
  });
});

/**
 * A service built at run time whose requests hold int64 values everywhere
 * ProtoJSON can put them: a field, a nested message, a repeated message, a
 * repeated uint64, a map key and value, an Int64Value, and a recursive type.
 */
function int64Service() {
  const field = (
    name: string,
    number: number,
    type: Type,
    more: { label?: Label; typeName?: string; jsonName?: string } = {},
  ) => ({
    name,
    number,
    type,
    label: more.label ?? Label.OPTIONAL,
    jsonName: more.jsonName ?? name,
    ...(more.typeName === undefined ? {} : { typeName: more.typeName }),
  });
  const file = create(FileDescriptorProtoSchema, {
    name: "test/int64.proto",
    package: "test.v1",
    syntax: "proto3",
    dependency: ["google/protobuf/wrappers.proto"],
    messageType: [
      {
        name: "Inner",
        field: [
          field("value", 1, Type.INT64),
          field("counts", 2, Type.UINT64, { label: Label.REPEATED }),
        ],
      },
      {
        name: "Amounts",
        field: [
          field("amount", 1, Type.SINT64),
          field("inner", 2, Type.MESSAGE, { typeName: ".test.v1.Inner" }),
          field("items", 3, Type.MESSAGE, { label: Label.REPEATED, typeName: ".test.v1.Inner" }),
          field("by_id", 4, Type.MESSAGE, {
            label: Label.REPEATED,
            typeName: ".test.v1.Amounts.ByIdEntry",
            jsonName: "byId",
          }),
          field("wrapped", 5, Type.MESSAGE, { typeName: ".google.protobuf.Int64Value" }),
          field("note", 6, Type.STRING),
          field("self", 7, Type.MESSAGE, { typeName: ".test.v1.Chain" }),
        ],
        nestedType: [
          {
            name: "ByIdEntry",
            field: [field("key", 1, Type.FIXED64), field("value", 2, Type.INT64)],
            options: { mapEntry: true },
          },
        ],
      },
      {
        name: "Chain",
        field: [
          field("next", 1, Type.MESSAGE, { typeName: ".test.v1.Chain" }),
          field("n", 2, Type.SFIXED64),
        ],
      },
      { name: "Plain", field: [field("text", 1, Type.STRING)] },
    ],
    service: [
      {
        name: "AmountService",
        method: [
          { name: "Get", inputType: ".test.v1.Amounts", outputType: ".test.v1.Plain" },
          {
            name: "Watch",
            inputType: ".test.v1.Amounts",
            outputType: ".test.v1.Plain",
            serverStreaming: true,
          },
          { name: "Echo", inputType: ".test.v1.Plain", outputType: ".test.v1.Plain" },
        ],
      },
    ],
  });
  const registry = createFileRegistry(file, (name) =>
    name === "google/protobuf/wrappers.proto" ? file_google_protobuf_wrappers : undefined,
  );
  const service = registry.getService("test.v1.AmountService");
  if (!service) throw new Error("test.v1.AmountService did not build");
  return service;
}

describe("createConnectAdapter with a service implementation missing a method", () => {
  it("refuses to build, naming the method, instead of answering its calls unimplemented", () => {
    expect(() =>
      createConnectAdapter({
        logger: createLogger("silent"),
        fallback: (_req, res) => res.end(),
        routes: (router) => {
          router.service(Health, {
            check: () => ({ status: ServingStatus.SERVING }),
          });
        },
      }),
    ).to.throw("grpc.health.v1.Health.Watch has no implementation");
  });
});

describe("int64 fields in JSON requests, for every int64 field of any request type", () => {
  const service = int64Service();
  let server: http.Server;
  let baseUrl: string;
  /** gRPC needs HTTP/2. */
  let h2server: http2.Http2Server;
  let h2Url: string;

  before(async () => {
    const adapter = createConnectAdapter({
      logger: createLogger("silent"),
      fallback: (_req, res) => {
        res.writeHead(404);
        res.end();
      },
      routes: (router) => {
        router.service(service, {
          get: () => ({ text: "ok" }),
          async *watch() {
            yield { text: "ok" };
          },
          echo: () => ({ text: "ok" }),
        } as never);
      },
    });
    server = http.createServer((req, res) => adapter(req, res, "int64"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    h2server = http2.createServer((req, res) => adapter(req, res, "int64"));
    await new Promise<void>((resolve) => h2server.listen(0, "127.0.0.1", resolve));
    h2Url = `http://127.0.0.1:${(h2server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await new Promise((resolve) => h2server.close(resolve));
  });

  it("works out where each request type holds int64 values, once, recursive types included", () => {
    const [get, , echo] = service.methods;
    const plan = int64Plan(get?.input as NonNullable<typeof get>["input"]);
    expect(plan?.fields.map((f) => [f.name, f.shape, f.int64, f.int64Key])).to.deep.equal([
      ["amount", "singular", "signed", undefined],
      ["inner", "singular", undefined, undefined],
      ["items", "list", undefined, undefined],
      ["by_id", "map", "signed", "unsigned"],
      ["wrapped", "singular", "signed", undefined],
      ["self", "singular", undefined, undefined],
    ]);
    expect(int64Plan(echo?.input as NonNullable<typeof echo>["input"])).to.equal(undefined);
  });

  const REFUSED: [string, string][] = [
    ['{"amount":"0x10"}', "amount"],
    ['{"amount":" 16"}', "amount"],
    ['{"inner":{"value":"0b1"}}', "inner.value"],
    ['{"inner":{"counts":["1","-1"]}}', "inner.counts[1]"],
    ['{"inner":{"counts":["18446744073709551616"]}}', "inner.counts[0]"],
    ['{"items":[{"value":"1"},{"value":"+1"}]}', "items[1].value"],
    ['{"byId":{"0x1":"2"}}', 'by_id["0x1"]'],
    ['{"by_id":{"1":"0o2"}}', 'by_id["1"]'],
    ['{"wrapped":"016"}', "wrapped"],
    ['{"self":{"next":{"next":{"n":"1e3"}}}}', "self.next.next.n"],
    ['{"amount":"9223372036854775808"}', "amount"],
  ];
  const ACCEPTED = [
    '{"amount":"-9223372036854775808","inner":{"value":3,"counts":["18446744073709551615"]}}',
    '{"byId":{"1":"-2"},"wrapped":"7","self":{"next":{"n":-5}},"note":"0x10"}',
    '{"items":[{"value":"0"}],"amount":null}',
  ];
  const targets: [RawProtocol, string][] = [
    ["connect", "/test.v1.AmountService/Get"],
    ["grpc-web", "/test.v1.AmountService/Get"],
    ["grpc", "/test.v1.AmountService/Get"],
    ["connect-stream", "/test.v1.AmountService/Watch"],
    ["grpc-web", "/test.v1.AmountService/Watch"],
    ["grpc", "/test.v1.AmountService/Watch"],
  ];
  for (const [protocol, path] of targets) {
    const kind = path.endsWith("Watch") ? "a server stream" : "a unary method";
    it(`over ${protocol} JSON, to ${kind}: refuses each non-canonical value, naming its field`, async () => {
      for (const [message, field] of REFUSED) {
        await expectRpcError(
          rawCall(protocol === "grpc" ? h2Url : baseUrl, {
            protocol,
            path,
            message,
            codec: "json",
          }).then((answer) => {
            if (answer instanceof ConnectError) throw answer;
            return answer;
          }),
          { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field },
        );
      }
    });

    it(`over ${protocol} JSON, to ${kind}: accepts canonical values`, async () => {
      for (const message of ACCEPTED) {
        const answer = await rawCall(protocol === "grpc" ? h2Url : baseUrl, {
          protocol,
          path,
          message,
          codec: "json",
        });
        expect(answer, message).to.equal("ok");
      }
    });
  }
});
