import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { expect } from "chai";
import type { Services } from "../../../server/src/container.js";
import { createLogger } from "../../../server/src/logger.js";
import { RateLimiter } from "../../../server/src/modules/ratelimit/index.js";
import { DomainError } from "../../../server/src/shared/domain-error.js";
import { TrustedProxies } from "../../../server/src/transport/client-address.js";
import { HttpError } from "../../../server/src/transport/rest/rest-io.js";
import { createRestRouter, restAnswer } from "../../../server/src/transport/rest/rest-router.js";

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

describe("REST error answers (restAnswer)", () => {
  it("maps a domain error by kind, with the route's overrides, and names the reason", () => {
    const notFound = new DomainError("not_found", "RESERVATION_NOT_FOUND", "no such reservation");
    expect(restAnswer(notFound, undefined)).to.deep.include({
      status: 404,
      headers: { "x-error-reason": "RESERVATION_NOT_FOUND" },
    });
    expect(restAnswer(notFound, { RESERVATION_NOT_FOUND: 401 }).status).to.equal(401);
  });

  it("keeps the HTTP layer's own status and headers", () => {
    const answer = restAnswer(
      new HttpError(405, "unimplemented", "METHOD_NOT_FOUND", "use POST", { allow: "POST" }),
      { METHOD_NOT_FOUND: 400 },
    );
    expect([answer.status, answer.headers]).to.deep.equal([
      405,
      { allow: "POST", "x-error-reason": "METHOD_NOT_FOUND" },
    ]);
  });

  it("turns a transient database error into 503 with retry-after", () => {
    const answer = restAnswer(Object.assign(new Error("timeout"), { code: "57014" }), undefined);
    expect(answer.status).to.equal(503);
    expect(answer.failure.reason).to.equal("SERVER_BUSY");
    expect(Number(answer.headers["retry-after"])).to.be.greaterThan(0);
  });

  it("answers a bug with a bare internal error, never its message", () => {
    const bug = new TypeError("secret detail");
    const answer = restAnswer(bug, undefined);
    expect([answer.status, answer.failure.message, answer.headers]).to.deep.equal([
      500,
      "internal error",
      { "x-error-reason": "INTERNAL_ERROR" },
    ]);
    expect(answer.cause).to.equal(bug);
  });
});

describe("REST calls are logged like RPCs", () => {
  let server: http.Server;
  let baseUrl: string;
  const { logger, lines } = capturingLogger("info");

  before(async () => {
    const services = {
      catalog: {
        defaultConcert: async () => {
          throw new TypeError("secret detail");
        },
      },
    } as unknown as Services;
    const unlimited = { user: undefined, address: undefined };
    const limiter = new RateLimiter({ token: unlimited, hold: unlimited, payment: unlimited });
    const rest = createRestRouter(services, logger, { limiter, proxies: new TrustedProxies([]) });
    server = http.createServer((req, res) => void rest(req, res, "req-9"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("logs a bug once, at error, with its cause, under the request id; answers a bare 500", async () => {
    const res = await fetch(`${baseUrl}/api/concerts/dates`);
    expect([res.status, await res.json()]).to.deep.equal([500, { error: "internal error" }]);
    expect(res.headers.get("x-error-reason")).to.equal("INTERNAL_ERROR");
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include({
      level: 50,
      msg: "unexpected error",
      requestId: "req-9",
      procedure: "GET /api/concerts/dates",
      code: "internal",
      reason: "INTERNAL_ERROR",
    });
    expect(lines[0]?.err).to.deep.include({ message: "secret detail" });
  });
});
