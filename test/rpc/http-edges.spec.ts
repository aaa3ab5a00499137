import { randomUUID } from "node:crypto";
import diagnostics from "node:diagnostics_channel";
import type { ClientRequest } from "node:http";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  createStagedoorClient,
  Health,
  ReservationState,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type StagedoorClient,
} from "@stagedoor/sdk";
import { expect } from "chai";
import { bearer, clientFor, PROTOCOLS, transportFor } from "../support/clients.js";
import type { TestServer } from "../support/test-server.js";
import { admittedUser, must, newRequestId, seatsOfDate, startRpcServer } from "./rpc-kit.js";

const LIST_CONCERTS = "/stagedoor.catalog.v1.CatalogService/ListConcerts";
const JSON_HEADERS = { "content-type": "application/json" };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Just over the server's 64 KiB message limit. */
const OVERSIZED = "a".repeat(70 * 1024);

/**
 * HTTP-level behaviour of the one port: Connect GET for side-effect-free
 * methods, plain JSON over fetch, unknown paths, size limits, malformed
 * bodies, and request ids on every response.
 */
describe("HTTP edges of the RPC endpoint", () => {
  let server: TestServer;

  before(async () => {
    server = await startRpcServer();
  });

  after(async () => {
    await server?.stop();
  });

  /** The server still answers normally (after a refusal). */
  async function expectStillServing(): Promise<void> {
    const { concerts } = await clientFor("connect", server.url).catalog.listConcerts({});
    expect(concerts.map((c) => c.id)).to.deep.equal([server.concertId]);
    const health = createClient(Health, transportFor("grpc", server.url));
    expect((await health.check({ service: "" })).status).to.equal(ServingStatus.SERVING);
  }

  describe("Connect GET and plain JSON", () => {
    it("serves NO_SIDE_EFFECTS methods over Connect GET (useHttpGet)", async () => {
      // What actually goes on the wire, seen below the transport through
      // Node's HTTP client diagnostics channel.
      const sent: string[] = [];
      // Node 20 may publish one request twice (when it ends before it has a socket).
      const seen = new WeakSet<ClientRequest>();
      const record = (message: unknown) => {
        const { request } = message as { request: ClientRequest };
        if (seen.has(request)) return;
        seen.add(request);
        if (request.host === "127.0.0.1" && request.path.includes(".v1.")) {
          sent.push(`${request.method} ${request.path.split("?")[0]?.split("/").at(-1)}`);
        }
      };
      diagnostics.subscribe("http.client.request.start", record);
      const viaGet = (token?: string) =>
        createStagedoorClient(
          createConnectTransport({
            baseUrl: server.url,
            httpVersion: "1.1",
            useHttpGet: true,
            interceptors: token ? [bearer(token)] : [],
          }),
        );
      try {
        const anonymous = viaGet();
        const { concerts } = await anonymous.catalog.listConcerts({});
        expect(concerts.map((c) => c.id)).to.deep.equal([server.concertId]);
        const { seats, dateId } = await seatsOfDate(anonymous, server.concertId, 0);
        expect(seats.size).to.equal(50);
        const { seat } = await anonymous.catalog.getSeat({ seatId: must(seats.get(7)).id });
        expect([seat?.concertDateId, seat?.number, seat?.price]).to.deep.equal([
          dateId,
          7,
          150_000n,
        ]);

        // An authenticated NO_SIDE_EFFECTS read works over GET too.
        const user = await admittedUser(clientFor("connect", server.url), server.concertId, "get");
        const post = clientFor("connect", server.url, user.token);
        const { reservation } = await post.reservation.holdSeat({
          seatId: must(seats.get(8)).id,
          requestId: newRequestId(),
        });
        const got = await viaGet(user.token).reservation.getReservation({
          reservationId: must(reservation).id,
        });
        expect(got.reservation?.state).to.equal(ReservationState.HELD);

        expect(sent).to.deep.equal([
          "GET ListConcerts",
          "GET ListConcertDates",
          "GET ListAvailableSeats",
          "GET GetSeat",
          // The side-effecting calls of the ordinary client stay POSTs.
          "POST IssueQueueToken",
          "POST HoldSeat",
          "GET GetReservation",
        ]);
      } finally {
        diagnostics.unsubscribe("http.client.request.start", record);
      }
    });

    it("answers a hand-written Connect GET URL", async () => {
      const message = encodeURIComponent(JSON.stringify({ pageSize: 5 }));
      const res = await fetch(
        `${server.url}${LIST_CONCERTS}?connect=v1&encoding=json&message=${message}`,
      );
      expect(res.status).to.equal(200);
      const body = (await res.json()) as { concerts: { id: string }[] };
      expect(body.concerts.map((c) => c.id)).to.deep.equal([server.concertId]);
    });

    it("answers a plain fetch POST of Connect JSON with 200 JSON", async () => {
      const res = await fetch(`${server.url}${LIST_CONCERTS}`, {
        method: "POST",
        headers: JSON_HEADERS,
        body: "{}",
      });
      expect(res.status).to.equal(200);
      expect(res.headers.get("content-type")).to.match(/^application\/json/);
      const body = (await res.json()) as {
        concerts: { id: string; title: string }[];
        nextPageToken: string;
      };
      expect(body.concerts.map((c) => c.id)).to.deep.equal([server.concertId]);
      expect(body.concerts[0]?.title).to.be.a("string").and.not.equal("");
      expect(body.nextPageToken).to.equal("");

      // proto3 JSON: int64 as a string, enums by name.
      const { dates } = await clientFor("connect", server.url).catalog.listConcertDates({
        concertId: server.concertId,
      });
      const seatsRes = await fetch(
        `${server.url}/stagedoor.catalog.v1.CatalogService/ListAvailableSeats`,
        {
          method: "POST",
          headers: JSON_HEADERS,
          body: JSON.stringify({ concertDateId: must(dates[2]).id, pageSize: 1 }),
        },
      );
      expect(seatsRes.status).to.equal(200);
      const seatsBody = (await seatsRes.json()) as { seats: Record<string, unknown>[] };
      expect(seatsBody.seats[0]).to.include({
        number: 1,
        grade: "VIP",
        price: "150000",
        state: "SEAT_STATE_AVAILABLE",
      });
    });
  });

  describe("refusals", () => {
    for (const [method, path] of [
      ["POST", "/stagedoor.catalog.v1.CatalogService/NoSuchMethod"],
      ["POST", "/stagedoor.nothing.v1.NoService/List"],
      ["GET", "/no/such/path"],
      ["GET", "/"],
    ] as const) {
      it(`${method} ${path} is 404`, async () => {
        const res = await fetch(`${server.url}${path}`, {
          method,
          ...(method === "POST" ? { headers: JSON_HEADERS, body: "{}" } : {}),
        });
        expect(res.status).to.equal(404);
        await res.arrayBuffer();
        await expectStillServing();
      });
    }

    for (const protocol of PROTOCOLS) {
      it(`over ${protocol}: a request over 64 KiB is refused resource_exhausted`, async () => {
        const error = await clientFor(protocol, server.url)
          .catalog.listConcerts({ pageToken: OVERSIZED })
          .then(
            () => undefined,
            (thrown: unknown) => ConnectError.from(thrown),
          );
        expect(error?.code, error?.message).to.equal(Code.ResourceExhausted);
        await expectStillServing();
      });
    }

    it("a plain POST over 64 KiB is refused with 429 resource_exhausted", async () => {
      const res = await fetch(`${server.url}${LIST_CONCERTS}`, {
        method: "POST",
        headers: JSON_HEADERS,
        body: JSON.stringify({ pageToken: OVERSIZED }),
      });
      expect(res.status).to.equal(429);
      expect(((await res.json()) as { code: string }).code).to.equal("resource_exhausted");
      await expectStillServing();
    });

    for (const [what, body] of [
      ["malformed JSON", "{nope"],
      ["a JSON array", "[]"],
      ["a string where a number belongs", '{"pageSize":"many"}'],
      ["a number out of int32 range", '{"pageSize":99999999999}'],
    ] as const) {
      it(`${what} is invalid_argument`, async () => {
        const res = await fetch(`${server.url}${LIST_CONCERTS}`, {
          method: "POST",
          headers: JSON_HEADERS,
          body,
        });
        expect(res.status).to.equal(400);
        expect(((await res.json()) as { code: string }).code).to.equal("invalid_argument");
        await expectStillServing();
      });
    }

    it("an int64 beyond its range in JSON is invalid_argument and charges nothing", async () => {
      const user = await admittedUser(clientFor("connect", server.url), server.concertId, "json");
      const res = await fetch(`${server.url}/stagedoor.wallet.v1.WalletService/RechargeWallet`, {
        method: "POST",
        headers: { ...JSON_HEADERS, authorization: `Bearer ${user.token}` },
        body: JSON.stringify({ amount: "99999999999999999999", requestId: newRequestId() }),
      });
      expect(res.status).to.equal(400);
      expect(((await res.json()) as { code: string }).code).to.equal("invalid_argument");
      const { wallet } = await clientFor("connect", server.url, user.token).wallet.getWallet({});
      // Still the empty wallet of a fan who never recharged.
      expect([wallet?.balance, wallet?.version]).to.deep.equal([0n, 0n]);
    });

    it("a garbage protobuf body is invalid_argument, not internal", async () => {
      const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]);
      const res = await fetch(`${server.url}${LIST_CONCERTS}`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body: garbage,
      });
      const body = (await res.json()) as { code: string };
      expect([res.status, body.code]).to.deep.equal([400, "invalid_argument"]);

      // The same bytes in a gRPC-Web frame: the status travels in the trailer frame.
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, garbage.length]), garbage]);
      const web = await fetch(`${server.url}${LIST_CONCERTS}`, {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto" },
        body: frame,
      });
      const trailer = Buffer.from(await web.arrayBuffer()).toString("latin1");
      expect(/grpc-status: ?(\d+)/.exec(trailer)?.[1], "gRPC-Web status").to.equal(
        String(Code.InvalidArgument),
      );
      await expectStillServing();
    });
  });

  describe("x-request-id", () => {
    for (const protocol of PROTOCOLS) {
      describe(`over ${protocol}`, () => {
        let anonymous: StagedoorClient;

        before(() => {
          anonymous = clientFor(protocol, server.url);
        });

        it("every successful response has one, and a sane caller id is echoed", async () => {
          let generated: string | null = null;
          await anonymous.catalog.listConcerts(
            {},
            { onHeader: (headers) => (generated = headers.get("x-request-id")) },
          );
          expect(generated).to.match(UUID);

          const mine = `trace.${randomUUID().slice(0, 8)}_A-1`;
          let echoed: string | null = null;
          await anonymous.catalog.listConcerts(
            {},
            {
              headers: { "x-request-id": mine },
              onHeader: (headers) => (echoed = headers.get("x-request-id")),
            },
          );
          expect(echoed).to.equal(mine);
        });

        it("an unsafe caller id is replaced, not echoed", async () => {
          for (const unsafe of ["has spaces in it", "x".repeat(65), "semi;colon"]) {
            let got: string | null = null;
            await anonymous.catalog.listConcerts(
              {},
              {
                headers: { "x-request-id": unsafe },
                onHeader: (headers) => (got = headers.get("x-request-id")),
              },
            );
            expect(got, unsafe).to.match(UUID);
          }
        });

        it("a server stream's response has one", async () => {
          let got: string | null = null;
          const controller = new AbortController();
          const health = createClient(Health, transportFor(protocol, server.url));
          const stream = health.watch(
            { service: "" },
            {
              signal: controller.signal,
              headers: { "x-request-id": "stream-1" },
              onHeader: (headers) => (got = headers.get("x-request-id")),
            },
          );
          const iterator = stream[Symbol.asyncIterator]();
          await iterator.next();
          controller.abort();
          await iterator.next().catch(() => undefined);
          expect(got).to.equal("stream-1");
        });

        it("an error response has one too", async () => {
          for (const call of [
            () =>
              anonymous.catalog.getSeat(
                { seatId: randomUUID() },
                { headers: { "x-request-id": "err-1" } },
              ),
            () => anonymous.wallet.getWallet({}, { headers: { "x-request-id": "err-1" } }),
          ]) {
            const error = await call().then(
              () => undefined,
              (thrown: unknown) => ConnectError.from(thrown),
            );
            expect(error, "the call must fail").to.be.instanceOf(ConnectError);
            expect(
              error?.metadata.get("x-request-id"),
              `x-request-id of a ${Code[error?.code ?? Code.Unknown]} response`,
            ).to.equal("err-1");
          }
        });
      });
    }

    it("plain HTTP answers have one: 200, 404, 400 and 429", async () => {
      const answers = await Promise.all([
        fetch(`${server.url}${LIST_CONCERTS}`, {
          method: "POST",
          headers: JSON_HEADERS,
          body: "{}",
        }),
        fetch(`${server.url}/no/such/path`),
        fetch(`${server.url}${LIST_CONCERTS}`, {
          method: "POST",
          headers: JSON_HEADERS,
          body: "{nope",
        }),
        fetch(`${server.url}${LIST_CONCERTS}`, {
          method: "POST",
          headers: JSON_HEADERS,
          body: JSON.stringify({ pageToken: OVERSIZED }),
        }),
      ]);
      const seen = await Promise.all(
        answers.map(async (res) => {
          await res.arrayBuffer();
          return [res.status, res.headers.get("x-request-id") !== null];
        }),
      );
      expect(seen).to.deep.equal([
        [200, true],
        [404, true],
        [400, true],
        [429, true],
      ]);
    });
  });
});
