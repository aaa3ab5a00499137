import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { bootstrap, type RunningServer } from "../../server/src/bootstrap.js";
import { loadConfig } from "../../server/src/config.js";
import { createLogger } from "../../server/src/logger.js";
import { clientFor, PROTOCOLS } from "../support/clients.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { admittedUser } from "./rpc-kit.js";

/** A whole server whose log lines (at `level`) are kept, parsed. */
async function startLoggedServer(level: string) {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  const database: TestDatabase = await createTestDatabase();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-test-data-"));
  let server: RunningServer;
  try {
    server = await bootstrap(
      loadConfig({
        DATABASE_URL: database.url,
        AUTH_MODE: "trust",
        HOST: "127.0.0.1",
        PORT: "0",
        DATA_DIR: dataDir,
        SEED_DEMO: "true",
        TOKEN_SECRET: randomBytes(32).toString("hex"),
        DB_POOL_MAX: "10",
        SHUTDOWN_TIMEOUT_MS: "250",
        SERVE_WEB: "false",
      }),
      { logger: createLogger(level, destination) },
    );
  } catch (error) {
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const concertId = (await server.services.catalog.defaultConcert()).id;
  return {
    url: server.url,
    concertId,
    lines,
    async stop() {
      await server.stop();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

type LoggedServer = Awaited<ReturnType<typeof startLoggedServer>>;

/** Calls that are refused for ordinary client reasons, and one that succeeds. */
async function refusalsAndASuccess(server: LoggedServer, protocol: (typeof PROTOCOLS)[number]) {
  const anonymous = clientFor(protocol, server.url);
  const codes: (Code | "ok")[] = [];
  const refused = (call: Promise<unknown>) =>
    call.then(
      () => codes.push("ok"),
      (error: unknown) => codes.push(ConnectError.from(error).code),
    );
  await refused(anonymous.catalog.getSeat({ seatId: randomUUID() }));
  await refused(anonymous.wallet.getWallet({}));
  await refused(anonymous.queue.issueQueueToken({ concertId: server.concertId, userId: "" }));
  const user = await admittedUser(anonymous, server.concertId, "logged");
  const { seats } = await anonymous.catalog.listAvailableSeats({
    concertDateId: (await anonymous.catalog.listConcertDates({ concertId: server.concertId }))
      .dates[0]?.id,
    pageSize: 1,
  });
  const seatId = seats[0]?.id ?? "";
  const me = clientFor(protocol, server.url, user.token);
  await me.reservation.holdSeat({ seatId, requestId: `r-${randomUUID()}` });
  const other = await admittedUser(anonymous, server.concertId, "loser");
  await refused(
    clientFor(protocol, server.url, other.token).reservation.holdSeat({
      seatId,
      requestId: `r-${randomUUID()}`,
    }),
  );
  return codes;
}

describe("what a call costs in log lines", () => {
  describe("at the default level (info)", () => {
    let server: LoggedServer;

    before(async () => {
      server = await startLoggedServer("info");
    });

    after(async () => {
      await server?.stop();
    });

    for (const protocol of PROTOCOLS) {
      it(`over ${protocol}: expected refusals (a taken seat, a bad argument, no token) write nothing`, async () => {
        const before = server.lines.length;
        const codes = await refusalsAndASuccess(server, protocol);
        expect(codes).to.deep.equal([
          Code.NotFound,
          Code.Unauthenticated,
          Code.InvalidArgument,
          Code.FailedPrecondition,
        ]);
        expect(server.lines.slice(before)).to.deep.equal([]);
      });
    }

    it("REST: expected refusals write nothing either", async () => {
      const before = server.lines.length;
      for (const [path, init] of [
        ["/api/balance?userId=someone", {}],
        [
          "/api/token",
          { method: "POST", headers: { "content-type": "application/json" }, body: "{" },
        ],
        ["/api/concerts/seats?date=2000-01-01", {}],
      ] as const) {
        const res = await fetch(`${server.url}${path}`, init);
        expect(res.status, path).to.be.within(400, 499);
        await res.arrayBuffer();
      }
      expect(server.lines.slice(before)).to.deep.equal([]);
    });
  });

  describe("at debug", () => {
    let server: LoggedServer;

    before(async () => {
      server = await startLoggedServer("debug");
    });

    after(async () => {
      await server?.stop();
    });

    it("REST calls are logged the same way: one line per call under the request id it answered with", async () => {
      const before = server.lines.length;
      const ok = await fetch(`${server.url}/api/concerts/dates`, {
        headers: { "x-request-id": "rest-ok-1" },
      });
      await ok.arrayBuffer();
      const refused = await fetch(`${server.url}/api/balance?userId=someone`);
      await refused.arrayBuffer();
      const missing = await fetch(`${server.url}/api/nope`, { method: "POST" });
      await missing.arrayBuffer();
      const calls = server.lines
        .slice(before)
        .filter((line) => line.msg === "call failed" || line.msg === "call ok");
      expect(
        calls.map((l) => [l.level, l.msg, l.requestId, l.procedure, l.code, l.reason]),
      ).to.deep.equal([
        [20, "call ok", "rest-ok-1", "GET /api/concerts/dates", undefined, undefined],
        [
          20,
          "call failed",
          refused.headers.get("x-request-id"),
          "GET /api/balance",
          "unauthenticated",
          "TOKEN_MISSING",
        ],
        [
          20,
          "call failed",
          missing.headers.get("x-request-id"),
          "POST /api/",
          "unimplemented",
          "METHOD_NOT_FOUND",
        ],
      ]);
    });

    it("a body Connect cannot read, and an unknown method, are logged once each too", async () => {
      const before = server.lines.length;
      const garbage = await fetch(
        `${server.url}/stagedoor.catalog.v1.CatalogService/ListConcerts`,
        {
          method: "POST",
          headers: { "content-type": "application/proto", "x-request-id": "bad-body-1" },
          body: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]),
        },
      );
      await garbage.arrayBuffer();
      const unknown = await fetch(`${server.url}/stagedoor.catalog.v1.CatalogService/Nope`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": "no-method-1" },
        body: "{}",
      });
      await unknown.arrayBuffer();
      const calls = server.lines
        .slice(before)
        .filter((line) => line.msg === "call failed" || line.msg === "call ok");
      expect(calls.map((l) => [l.requestId, l.procedure, l.code, l.reason])).to.deep.equal([
        [
          "bad-body-1",
          "stagedoor.catalog.v1.CatalogService/ListConcerts",
          "invalid_argument",
          "MALFORMED_REQUEST",
        ],
        [
          "no-method-1",
          "stagedoor.catalog.v1.CatalogService/Nope",
          "unimplemented",
          "METHOD_NOT_FOUND",
        ],
      ]);
    });

    it("every call is one line under the request id the response carries", async () => {
      const before = server.lines.length;
      const client = clientFor("connect", server.url);
      const echoed = await client.catalog.getSeat({ seatId: randomUUID() }).then(
        () => "the call must fail",
        (error: unknown) => ConnectError.from(error).metadata.get("x-request-id"),
      );
      expect(echoed).to.be.a("string");
      await client.catalog.listConcerts({}, { headers: { "x-request-id": "mine-1" } });
      const calls = server.lines
        .slice(before)
        .filter((line) => line.msg === "call failed" || line.msg === "call ok");
      expect(calls.map((l) => [l.level, l.msg, l.requestId, l.procedure, l.code])).to.deep.equal([
        [20, "call failed", echoed, "stagedoor.catalog.v1.CatalogService/GetSeat", "not_found"],
        [20, "call ok", "mine-1", "stagedoor.catalog.v1.CatalogService/ListConcerts", undefined],
      ]);
    });
  });
});
