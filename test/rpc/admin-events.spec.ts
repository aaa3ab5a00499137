import { createHash, randomBytes, randomUUID } from "node:crypto";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { AdminService } from "@stagedoor/sdk";
import { expect } from "chai";
import pg from "pg";
import { bearer, type Protocol, transportFor } from "../support/clients.js";
import { FakeClock } from "../support/fake-clock.js";
import { freePort } from "../support/ports.js";
import type { TestServer } from "../support/test-server.js";
import { expectRpcError, must, newRequestId, startRpcServer } from "./rpc-kit.js";

const KEY = randomBytes(24).toString("base64url");
const HOUR = 3_600_000;

/** A URL nothing listens on (a free port), so every delivery fails. */
async function deadUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}/hooks`;
}

describe("rpc: AdminService dead-lettered events (ListDeadLetteredEvents, RedeliverEvent)", () => {
  let server: TestServer;
  let db: pg.Pool;
  let url: string;
  const clock = new FakeClock(Date.now());
  const eventIds: string[] = [];

  before(async () => {
    url = await deadUrl();
    server = await startRpcServer({
      clock,
      withoutJobs: true,
      env: {
        ADMIN_API_KEYS: `ops:${createHash("sha256").update(KEY).digest("hex")}`,
        WEBHOOK_URLS: url,
        WEBHOOK_SECRET: randomBytes(24).toString("hex"),
        WEBHOOK_TIMEOUT_SECONDS: "2",
      },
    });
    db = new pg.Pool({ connectionString: server.databaseUrl, max: 2 });
    // Three events of one concert, for a receiver that is down for good.
    const concertId = randomUUID();
    for (let i = 0; i < 3; i++) {
      const id = randomUUID();
      eventIds.push(id);
      await db.query(
        `insert into outbox_event (id, concert_id, type, payload, occurred_at)
         values ($1, $2, 'seat.held', $3::jsonb, $4)`,
        [id, concertId, JSON.stringify({ n: i }), clock.now()],
      );
    }
    await server.services.relay.runOnce();
    clock.advance(73 * HOUR);
    await server.services.relay.runOnce();
  });
  after(async () => {
    await db?.end();
    await server?.stop();
  });

  const client = (protocol: Protocol): Client<typeof AdminService> =>
    createClient(AdminService, transportFor(protocol, server.url, [bearer(KEY)]));

  for (const protocol of ["connect", "grpc-web"] as const) {
    it(`lists dead letters page by page over ${protocol}`, async () => {
      const admin = client(protocol);
      const first = await admin.listDeadLetteredEvents({ pageSize: 2 });
      expect(first.deliveries).to.have.length(2);
      expect(first.nextPageToken).to.not.equal("");
      const second = await admin.listDeadLetteredEvents({
        pageSize: 2,
        pageToken: first.nextPageToken,
      });
      const all = [...first.deliveries, ...second.deliveries].filter(
        (d) => d.destination === `webhook:${url}`,
      );
      expect(all.map((d) => d.eventId)).to.have.members(eventIds);
      for (const delivery of all) {
        expect(delivery.deadLettered).to.equal(true);
        expect(delivery.type).to.equal("seat.held");
        expect(delivery.lastError).to.match(/^request failed/);
        expect(delivery.deadLetterTime).to.not.equal(undefined);
        expect(JSON.parse(delivery.payloadJson)).to.have.property("n");
      }
      expect(all.map((d) => Number(d.sequence)).sort()).to.deep.equal([1, 2, 3]);
    });
  }

  it("refuses bad pages, bad ids, unknown deliveries and calls without a key, changing nothing", async () => {
    const admin = client("connect");
    const forged = Buffer.from(JSON.stringify({ us: "x", id: "y", dest: "z" })).toString(
      "base64url",
    );
    const bad = [
      [() => admin.listDeadLetteredEvents({ pageSize: -1 }), "page_size"],
      [() => admin.listDeadLetteredEvents({ pageSize: 101 }), "page_size"],
      [() => admin.listDeadLetteredEvents({ pageToken: "not a token!" }), "page_token"],
      [() => admin.listDeadLetteredEvents({ pageToken: forged }), "page_token"],
      [
        () =>
          admin.redeliverEvent({ eventId: "nope", destination: "x", requestId: newRequestId() }),
        "event_id",
      ],
      [
        () =>
          admin.redeliverEvent({
            eventId: must(eventIds[0]),
            destination: "",
            requestId: newRequestId(),
          }),
        "destination",
      ],
      [
        () =>
          admin.redeliverEvent({
            eventId: must(eventIds[0]),
            destination: `webhook:${url}`,
            requestId: "",
          }),
        "request_id",
      ],
    ] as const;
    for (const [call, field] of bad) {
      await expectRpcError(call, { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field });
    }
    await expectRpcError(
      admin.redeliverEvent({
        eventId: randomUUID(),
        destination: `webhook:${url}`,
        requestId: newRequestId(),
      }),
      { code: Code.NotFound, reason: "EVENT_DELIVERY_NOT_FOUND" },
    );
    const anonymous = createClient(AdminService, transportFor("grpc", server.url, []));
    await expectRpcError(anonymous.listDeadLetteredEvents({}), {
      code: Code.Unauthenticated,
      reason: "ADMIN_KEY_MISSING",
    });
    const { rows } = await db.query<{ n: number }>(
      "select count(*)::int as n from outbox_delivery where status = 'DEAD'",
    );
    expect(must(rows[0]).n).to.equal(3);
  });

  it("redelivers a dead letter once (audited); a second call is refused", async () => {
    const admin = client("grpc");
    const eventId = must(eventIds[1]);
    const destination = `webhook:${url}`;
    const requestId = newRequestId();
    const moved = await admin.redeliverEvent({ eventId, destination, requestId });
    expect(moved.delivery?.deadLettered).to.equal(false);
    expect(moved.delivery?.eventId).to.equal(eventId);
    const replay = await admin.redeliverEvent({ eventId, destination, requestId });
    expect(replay.delivery?.eventId).to.equal(eventId);
    await expectRpcError(
      admin.redeliverEvent({ eventId, destination, requestId: newRequestId() }),
      {
        code: Code.FailedPrecondition,
        reason: "EVENT_NOT_DEAD_LETTERED",
      },
    );
    const { rows } = await db.query<{ status: string; actor: string }>(
      `select d.status, a.actor from outbox_delivery d, admin_audit a
        where d.event_id = $1 and a.target = 'event/' || $1 and a.action = 'RedeliverEvent'`,
      [eventId],
    );
    expect(rows).to.deep.equal([{ status: "PENDING", actor: "ops" }]);
  });
});
