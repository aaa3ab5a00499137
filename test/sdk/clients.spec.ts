import { Code, type Interceptor } from "@connectrpc/connect";
import {
  bearerToken,
  createStagedoorClient,
  errorReason,
  HealthCheckResponse_ServingStatus,
  QueueTokenState,
  type StagedoorClient,
} from "@stagedoor/sdk";
import { createNodeTransport, type NodeProtocol } from "@stagedoor/sdk/node";
import { createWebTransport, type WebProtocol } from "@stagedoor/sdk/web";
import { expect } from "chai";
import { admittedUser, startRpcServer, uniqueUser } from "../rpc/rpc-kit.js";
import type { TestServer } from "../support/test-server.js";
import { expectConnectError } from "./sdk-kit.js";

/** Records the Authorization header of every call that passes through. */
function authorizationSpy(): { interceptor: Interceptor; seen: (string | null)[] } {
  const seen: (string | null)[] = [];
  return {
    seen,
    interceptor: (next) => (req) => {
      seen.push(req.header.get("authorization"));
      return next(req);
    },
  };
}

/** Records the content type of every call that passes through. */
function contentTypeSpy(): { interceptor: Interceptor; seen: (string | null)[] } {
  const seen: (string | null)[] = [];
  return {
    seen,
    interceptor: (next) => (req) => {
      seen.push(req.header.get("content-type"));
      return next(req);
    },
  };
}

/** One unary call, one server stream's first message and a health check. */
async function exercise(client: StagedoorClient, concertId: string): Promise<void> {
  const { concerts } = await client.catalog.listConcerts({});
  expect(concerts.map((c) => c.id)).to.include(concertId);
  const { token } = await client.queue.issueQueueToken({ concertId, userId: uniqueUser("proto") });
  const controller = new AbortController();
  try {
    for await (const response of client.queue.watchQueueStatus(
      {},
      { headers: { authorization: `Bearer ${token}` }, signal: controller.signal },
    )) {
      expect(response.event.case).to.equal("status");
      break;
    }
  } finally {
    controller.abort();
  }
  const health = await client.health.check({});
  expect(health.status).to.equal(HealthCheckResponse_ServingStatus.SERVING);
}

describe("SDK clients and transports", () => {
  let server: TestServer;
  let token: string;

  before(async () => {
    server = await startRpcServer();
    const anonymous = createStagedoorClient(createNodeTransport({ baseUrl: server.url }));
    ({ token } = await admittedUser(anonymous, server.concertId, "client"));
  });

  after(async () => {
    await server?.stop();
  });

  describe("createStagedoorClient", () => {
    it("still takes a ready transport on its own", async () => {
      const client = createStagedoorClient(createNodeTransport({ baseUrl: server.url }));
      const { dates } = await client.catalog.listConcertDates({ concertId: server.concertId });
      expect(dates).to.have.length(3);
    });

    it("calls a transport factory with the base URL and the token's interceptor first", async () => {
      const spy = authorizationSpy();
      let factoryBaseUrl: string | undefined;
      const client = createStagedoorClient({
        baseUrl: server.url,
        token,
        interceptors: [spy.interceptor],
        transport: (options) => {
          factoryBaseUrl = options.baseUrl;
          return createNodeTransport(options);
        },
      });
      const { status } = await client.queue.getQueueStatus({});
      expect(status?.state).to.equal(QueueTokenState.ADMITTED);
      expect(factoryBaseUrl).to.equal(server.url);
      expect(spy.seen).to.deep.equal([`Bearer ${token}`]);
    });

    it("reads a token function on every call, sending nothing while it has none", async () => {
      let current: string | undefined;
      const spy = authorizationSpy();
      const client = createStagedoorClient({
        baseUrl: server.url,
        transport: createNodeTransport,
        token: () => current,
        interceptors: [spy.interceptor],
      });
      const error = await expectConnectError(client.queue.getQueueStatus({}), Code.Unauthenticated);
      expect(errorReason(error)).to.equal("TOKEN_MISSING");
      current = token;
      await client.queue.getQueueStatus({});
      expect(spy.seen).to.deep.equal([null, `Bearer ${token}`]);
    });

    it("lets a call's own Authorization header win over the client's token", async () => {
      const spy = authorizationSpy();
      const client = createStagedoorClient({
        baseUrl: server.url,
        transport: createNodeTransport,
        token: "sdq_stale",
        interceptors: [spy.interceptor],
      });
      await client.queue.getQueueStatus({}, { headers: { authorization: `Bearer ${token}` } });
      expect(spy.seen).to.deep.equal([`Bearer ${token}`]);
    });

    it("adds the token to a ready transport's calls", async () => {
      const spy = authorizationSpy();
      const transport = createNodeTransport({
        baseUrl: server.url,
        interceptors: [spy.interceptor],
      });
      const client = createStagedoorClient({ transport, token });
      const { status } = await client.queue.getQueueStatus({});
      expect(status?.state).to.equal(QueueTokenState.ADMITTED);
      const events: string[] = [];
      for await (const response of client.queue.watchQueueStatus({})) {
        events.push(response.event.case ?? "none");
      }
      expect(events).to.deep.equal(["status", "admitted"]);
      expect(spy.seen).to.deep.equal([`Bearer ${token}`, `Bearer ${token}`]);
    });

    it("refuses options it cannot honour", () => {
      const transport = createNodeTransport({ baseUrl: server.url });
      expect(() =>
        createStagedoorClient({ transport, interceptors: [bearerToken(token)] }),
      ).to.throw(TypeError, /factory/);
      expect(() => createStagedoorClient({ transport: createNodeTransport })).to.throw(
        TypeError,
        /baseUrl/,
      );
      const notATransport = { transport: { unary: "no" } } as unknown as Parameters<
        typeof createStagedoorClient
      >[0];
      expect(() => createStagedoorClient(notATransport)).to.throw(TypeError, /transport/);
    });
  });

  describe("createNodeTransport", () => {
    const presets: [NodeProtocol, "1.1" | "2" | undefined][] = [
      ["connect", undefined],
      ["connect", "2"],
      ["grpc", undefined],
      ["grpc", "2"],
      ["grpc-web", undefined],
      ["grpc-web", "2"],
    ];
    for (const [protocol, httpVersion] of presets) {
      it(`speaks ${protocol} over HTTP/${httpVersion ?? "default"}`, async () => {
        const transport = createNodeTransport({
          baseUrl: server.url,
          protocol,
          ...(httpVersion ? { httpVersion } : {}),
        });
        await exercise(createStagedoorClient(transport), server.concertId);
      });
    }

    const formats: [NodeProtocol, string[], string[]][] = [
      [
        "connect",
        ["application/proto", "application/connect+proto"],
        ["application/json", "application/connect+json"],
      ],
      ["grpc-web", ["application/grpc-web+proto"], ["application/grpc-web+json"]],
    ];
    for (const [protocol, binary, json] of formats) {
      it(`speaks binary ${protocol} by default, and JSON when asked`, async () => {
        for (const [useBinaryFormat, expected] of [
          [undefined, binary],
          [false, json],
          [true, binary],
        ] as const) {
          const spy = contentTypeSpy();
          const transport = createNodeTransport({
            baseUrl: server.url,
            protocol,
            interceptors: [spy.interceptor],
            ...(useBinaryFormat === undefined ? {} : { useBinaryFormat }),
          });
          await exercise(createStagedoorClient(transport), server.concertId);
          expect(
            [...new Set(spy.seen)].sort(),
            `useBinaryFormat: ${useBinaryFormat}`,
          ).to.deep.equal([...expected].sort());
        }
      });
    }

    it("refuses gRPC over HTTP/1.1 and unknown protocols", () => {
      expect(() =>
        createNodeTransport({ baseUrl: server.url, protocol: "grpc", httpVersion: "1.1" }),
      ).to.throw(TypeError, /HTTP\/2/);
      expect(() =>
        createNodeTransport({ baseUrl: server.url, protocol: "soap" as NodeProtocol }),
      ).to.throw(TypeError, /soap/);
    });
  });

  // Node 20 has fetch, so the browser transports run here too (CORS aside,
  // which only browsers enforce; the browser suite covers that).
  describe("createWebTransport", () => {
    for (const protocol of ["connect", "grpc-web"] as WebProtocol[]) {
      it(`speaks ${protocol} over fetch`, async () => {
        await exercise(
          createStagedoorClient({
            baseUrl: server.url,
            transport: (o) => createWebTransport({ ...o, protocol }),
          }),
          server.concertId,
        );
      });
    }

    it("sends side-effect-free Connect calls as GET when asked", async () => {
      const methods: string[] = [];
      const recordingFetch: typeof fetch = (input, init) => {
        methods.push(init?.method ?? "GET");
        return fetch(input, init);
      };
      const client = createStagedoorClient(
        createWebTransport({ baseUrl: server.url, useHttpGet: true, fetch: recordingFetch }),
      );
      await client.catalog.listConcerts({});
      await client.queue.getQueueStatus({}, { headers: { authorization: `Bearer ${token}` } });
      expect(methods).to.deep.equal(["GET", "POST"]);
    });

    it("refuses GET for gRPC-Web and unknown protocols", () => {
      expect(() =>
        createWebTransport({ baseUrl: server.url, protocol: "grpc-web", useHttpGet: true }),
      ).to.throw(TypeError, /Connect/);
      expect(() =>
        createWebTransport({ baseUrl: server.url, protocol: "grpc" as WebProtocol }),
      ).to.throw(TypeError, /grpc/);
    });
  });
});
