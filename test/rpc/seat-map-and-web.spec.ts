import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import { SeatState } from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor, PROTOCOLS } from "../support/clients.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { must, newRequestId, uniqueUser } from "./rpc-kit.js";

describe("the seat map, CORS and the web box office's files", () => {
  let server: TestServer;
  let webDir: string;
  const allowed = "https://tickets.example.com";
  /** A file named by its content hash, as the web build names app.js, with its precompressed copies. */
  const HASHED = "app-QLVN7RLU.js";
  const BUNDLE = `console.log(${JSON.stringify("box office ".repeat(200))});`;

  before(async () => {
    webDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-web-"));
    await writeFile(
      path.join(webDir, "index.html"),
      '<!doctype html><meta name="stagedoor-settings" content="{}"><title>box office</title>',
    );
    await writeFile(path.join(webDir, "app.js"), "console.log('hi');");
    await writeFile(path.join(webDir, HASHED), BUNDLE);
    await writeFile(path.join(webDir, `${HASHED}.br`), brotliCompressSync(BUNDLE));
    await writeFile(path.join(webDir, `${HASHED}.gz`), gzipSync(BUNDLE));
    await writeFile(path.join(webDir, ".secret.json"), "{}");
    server = await startTestServer({
      env: {
        WEB_DIR: webDir,
        CORS_ORIGINS: allowed,
        WEB_LOGIN_URL: "https://login.example.com/sign-in?next=box-office",
      },
    });
  });
  after(async () => {
    await server?.stop();
    await rm(webDir, { recursive: true, force: true });
  });

  describe("ListSeats", () => {
    for (const protocol of PROTOCOLS) {
      it(`shows every seat with its state over ${protocol}`, async () => {
        const anon = clientFor(protocol, server.url);
        const { dates } = await anon.catalog.listConcertDates({ concertId: server.concertId });
        const date = must(dates[PROTOCOLS.indexOf(protocol)]);
        const first = await anon.catalog.listSeats({ concertDateId: date.id });
        expect(first.seats.map((s) => s.number)).to.deep.equal(
          Array.from({ length: 50 }, (_, i) => i + 1),
        );
        expect(first.seats.every((s) => s.state === SeatState.AVAILABLE)).to.equal(true);

        // One seat held, one sold: the map shows both, unlike ListAvailableSeats.
        const held = must(first.seats[4]);
        const sold = must(first.seats[5]);
        const holder = await anon.queue.issueQueueToken({
          concertId: server.concertId,
          userId: uniqueUser("holder"),
        });
        const buyer = await anon.queue.issueQueueToken({
          concertId: server.concertId,
          userId: uniqueUser("buyer"),
        });
        const asHolder = clientFor(protocol, server.url, holder.token);
        const asBuyer = clientFor(protocol, server.url, buyer.token);
        await asHolder.reservation.holdSeat({ seatId: held.id, requestId: newRequestId() });
        const { reservation } = await asBuyer.reservation.holdSeat({
          seatId: sold.id,
          requestId: newRequestId(),
        });
        await asBuyer.wallet.rechargeWallet({ amount: sold.price, requestId: newRequestId() });
        await asBuyer.payment.createPayment({
          reservationId: must(reservation).id,
          amount: sold.price,
          requestId: newRequestId(),
        });

        const after = await anon.catalog.listSeats({ concertDateId: date.id, pageSize: 10 });
        expect(after.seats.map((s) => s.state)).to.deep.equal([
          ...Array(4).fill(SeatState.AVAILABLE),
          SeatState.HELD,
          SeatState.SOLD,
          ...Array(4).fill(SeatState.AVAILABLE),
        ]);
        const rest: number[] = [];
        let token = after.nextPageToken;
        while (token !== "") {
          const page = await anon.catalog.listSeats({
            concertDateId: date.id,
            pageSize: 10,
            pageToken: token,
          });
          rest.push(...page.seats.map((s) => s.number));
          token = page.nextPageToken;
        }
        expect(rest).to.deep.equal(Array.from({ length: 40 }, (_, i) => i + 11));
      });
    }
  });

  describe("CORS", () => {
    it("answers a preflight from an allowed origin with the Connect and gRPC-Web headers", async () => {
      const res = await fetch(`${server.url}/stagedoor.catalog.v1.CatalogService/ListConcerts`, {
        method: "OPTIONS",
        headers: {
          origin: allowed,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type,connect-protocol-version,authorization",
        },
      });
      expect(res.status).to.equal(204);
      expect(res.headers.get("access-control-allow-origin")).to.equal(allowed);
      const headers = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
      for (const name of [
        "content-type",
        "connect-protocol-version",
        "authorization",
        "x-grpc-web",
      ]) {
        expect(headers).to.include(name);
      }
      expect(res.headers.get("vary")).to.include("Origin");
    });

    it("exposes the headers clients read on responses to an allowed origin", async () => {
      const res = await fetch(`${server.url}/stagedoor.catalog.v1.CatalogService/ListConcerts`, {
        method: "POST",
        headers: { origin: allowed, "content-type": "application/json" },
        body: "{}",
      });
      expect(res.status).to.equal(200);
      expect(res.headers.get("access-control-allow-origin")).to.equal(allowed);
      const exposed = (res.headers.get("access-control-expose-headers") ?? "").toLowerCase();
      for (const name of [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "x-request-id",
      ]) {
        expect(exposed).to.include(name);
      }
    });

    it("refuses a preflight from any other origin and adds no CORS headers for it", async () => {
      const preflight = await fetch(
        `${server.url}/stagedoor.catalog.v1.CatalogService/ListConcerts`,
        {
          method: "OPTIONS",
          headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
        },
      );
      expect(preflight.status).to.equal(403);
      expect(preflight.headers.get("access-control-allow-origin")).to.equal(null);
      const simple = await fetch(`${server.url}/api/concerts/dates`, {
        headers: { origin: "https://evil.example" },
      });
      expect(simple.status).to.equal(200);
      expect(simple.headers.get("access-control-allow-origin")).to.equal(null);
    });
  });

  describe("web files", () => {
    it("serves index.html at / with a strict content security policy", async () => {
      const res = await fetch(`${server.url}/`);
      expect(res.status).to.equal(200);
      expect(res.headers.get("content-type")).to.equal("text/html; charset=utf-8");
      expect(res.headers.get("content-security-policy")).to.include("default-src 'self'");
      expect(await res.text()).to.include("box office");
      const head = await fetch(`${server.url}/app.js`, { method: "HEAD" });
      expect(head.status).to.equal(200);
      expect(head.headers.get("content-type")).to.equal("text/javascript; charset=utf-8");
    });

    it("tells the page its settings in index.html, which is never cached without revalidation", async () => {
      const res = await fetch(`${server.url}/`);
      expect(res.headers.get("cache-control")).to.equal("no-cache");
      const html = await res.text();
      const content = must(/<meta name="stagedoor-settings" content="([^"]*)">/.exec(html))[1];
      const settings: unknown = JSON.parse(must(content).replaceAll("&quot;", '"'));
      expect(settings).to.deep.equal({
        auth: "trust",
        loginOrigins: ["https://login.example.com"],
        loginUrl: "https://login.example.com/sign-in?next=box-office",
      });
    });

    it("serves a content-hashed file brotli- or gzip-encoded as accepted, cached for a year", async () => {
      const get = (acceptEncoding: string) =>
        // For the headers; fetch decodes the body, so rawBody reads the bytes as sent.
        fetch(`${server.url}/${HASHED}`, { headers: { "accept-encoding": acceptEncoding } });
      const cases: [string, string | null, (body: Buffer) => Buffer][] = [
        ["gzip, deflate, br, zstd", "br", brotliDecompressSync],
        ["gzip;q=1, br;q=0", "gzip", gunzipSync],
        ["gzip", "gzip", gunzipSync],
        ["identity", null, (body) => body],
      ];
      for (const [accept, encoding, decode] of cases) {
        const res = await get(accept);
        expect(res.status, accept).to.equal(200);
        expect(res.headers.get("content-encoding"), accept).to.equal(encoding);
        expect(res.headers.get("cache-control"), accept).to.equal(
          "public, max-age=31536000, immutable",
        );
        expect(res.headers.get("vary"), accept).to.equal("accept-encoding");
        expect(res.headers.get("content-type"), accept).to.equal("text/javascript; charset=utf-8");
        const raw = await rawBody(`${server.url}/${HASHED}`, accept);
        expect(Number(res.headers.get("content-length")), accept).to.equal(raw.length);
        expect(decode(raw).toString("utf8"), accept).to.equal(BUNDLE);
      }
      // A file without a content hash in its name is revalidated, and has no encodings.
      const plain = await fetch(`${server.url}/app.js`, { headers: { "accept-encoding": "br" } });
      expect(plain.headers.get("cache-control")).to.equal("no-cache");
      expect(plain.headers.get("content-encoding")).to.equal(null);
      // The precompressed copies are not files of the site themselves.
      expect((await fetch(`${server.url}/${HASHED}.br`)).status).to.equal(404);
    });

    it("never serves dotfiles, files outside the folder, or unknown paths", async () => {
      for (const target of [
        "/.secret.json",
        "/..%2fpackage.json",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/missing.js",
      ]) {
        const res = await fetch(`${server.url}${target}`);
        expect(res.status, target).to.equal(404);
        expect(await res.json(), target).to.deep.equal({ error: "no such route" });
      }
    });
  });
});

/** The bytes of a GET exactly as sent (fetch would decode a content-encoding). */
function rawBody(url: string, acceptEncoding: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { "accept-encoding": acceptEncoding } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve(Buffer.concat(chunks)));
        res.on("error", reject);
      })
      .on("error", reject);
  });
}
