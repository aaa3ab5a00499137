import { type Client, createClient, createRouterTransport } from "@connectrpc/connect";
import {
  CatalogService as CatalogApi,
  QueueService as QueueApi,
  ReservationService as ReservationApi,
} from "@stagedoor/sdk";
import { expect } from "chai";
import type { Services } from "../../../server/src/container.js";
import type { SeatFacts } from "../../../server/src/modules/catalog/date-seats.js";
import type { QueueService, SeatRef, Session } from "../../../server/src/modules/queue/index.js";
import { sessionKey } from "../../../server/src/transport/context.js";
import {
  createAuthInterceptor,
  type SeatOfCall,
} from "../../../server/src/transport/interceptors/auth.interceptor.js";
import { PUBLIC_METHODS, seatOfCall } from "../../../server/src/transport/routes.js";
import { CONCERT, queueFixture } from "../queue/queue-fixture.js";
import { rejectionOf } from "../unit-helpers.js";

const DATE = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9d01";
const CACHED_SEAT = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9a01";
const UNCACHED_SEAT = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9a02";
const TOKEN = "sdq_test-token";

/** A QueueService stand-in that records how it was asked to authenticate. */
class RecordingQueue {
  readonly calls: { token: string | undefined; seat: SeatRef | undefined; argc: number }[] = [];
  failure: Error | undefined;

  async authenticate(...args: [string | undefined, SeatRef?]): Promise<Session> {
    const [token, seat] = args;
    this.calls.push({ token, seat, argc: args.length });
    if (this.failure) throw this.failure;
    return sessionFor(token ?? "", seat);
  }
}

function sessionFor(token: string, seat: SeatRef | undefined): Session {
  return {
    principal: {
      userId: `user-of-${token}`,
      concertId: "concert-1",
      tokenId: "tok-1",
      state: "admitted",
      admissionExpiresAt: new Date(Date.UTC(2030, 0, 1, 12, 5)),
    },
    status: {
      concertId: "concert-1",
      state: "admitted",
      position: 0,
      waitingCount: 0,
      estimatedWaitMs: 0,
      expireTime: new Date(Date.UTC(2030, 0, 1, 12, 5)),
      opensAt: null,
      admissionPaused: false,
    },
    arrival: 0,
    ...(seat && { seat: { seatVersion: 4, state: "held", heldUntil: 1, owner: "someone" } }),
  };
}

/** A catalog that only knows the facts it was given, recording what it was asked. */
class FakeCatalog {
  readonly asked: string[] = [];
  constructor(private readonly seats: ReadonlyMap<string, SeatFacts>) {}
  cachedSeat(seatId: string): SeatFacts | undefined {
    this.asked.push(seatId);
    return this.seats.get(seatId);
  }
}

const cachedFacts: SeatFacts = {
  id: CACHED_SEAT,
  concertDateId: DATE,
  number: 7,
  grade: "R",
  price: 10_000n,
};

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

/**
 * An in-memory Connect router with the auth interceptor, whose handlers
 * record the session each call ran with.
 */
function harness(queue: Pick<QueueService, "authenticate">, seatOf?: SeatOfCall) {
  const sessions: { method: string; session: Session | undefined }[] = [];
  const transport = createRouterTransport(
    (router) => {
      router.service(ReservationApi, {
        holdSeat(_req, ctx) {
          sessions.push({ method: "HoldSeat", session: ctx.values.get(sessionKey) });
          return {};
        },
        getReservation(_req, ctx) {
          sessions.push({ method: "GetReservation", session: ctx.values.get(sessionKey) });
          return {};
        },
      });
      router.service(CatalogApi, {
        listConcerts(_req, ctx) {
          sessions.push({ method: "ListConcerts", session: ctx.values.get(sessionKey) });
          return {};
        },
      });
      router.service(QueueApi, {
        issueQueueToken(_req, ctx) {
          sessions.push({ method: "IssueQueueToken", session: ctx.values.get(sessionKey) });
          return {};
        },
        async *watchQueueStatus(_req, ctx) {
          sessions.push({ method: "WatchQueueStatus", session: ctx.values.get(sessionKey) });
          yield {};
        },
      });
    },
    {
      router: {
        interceptors: [createAuthInterceptor(queue as QueueService, PUBLIC_METHODS, seatOf)],
      },
    },
  );
  return {
    sessions,
    reservations: createClient(ReservationApi, transport) as Client<typeof ReservationApi>,
    catalog: createClient(CatalogApi, transport) as Client<typeof CatalogApi>,
    queueApi: createClient(QueueApi, transport) as Client<typeof QueueApi>,
  };
}

describe("auth interceptor with seatOfCall", () => {
  let queue: RecordingQueue;
  let catalog: FakeCatalog;
  let h: ReturnType<typeof harness>;

  beforeEach(() => {
    queue = new RecordingQueue();
    catalog = new FakeCatalog(new Map([[CACHED_SEAT, cachedFacts]]));
    h = harness(queue, seatOfCall(catalog as unknown as Services["catalog"]));
  });

  it("HoldSeat of a seat whose facts are cached authenticates with its date and seat", async () => {
    await h.reservations.holdSeat({ seatId: CACHED_SEAT, requestId: "r-1" }, bearer(TOKEN));
    expect(queue.calls).to.deep.equal([
      { token: TOKEN, seat: { dateId: DATE, seatId: CACHED_SEAT }, argc: 2 },
    ]);
    expect(catalog.asked).to.deep.equal([CACHED_SEAT]);
  });

  it("puts the session, with the seat's gate entry, in the call's context values", async () => {
    await h.reservations.holdSeat({ seatId: CACHED_SEAT, requestId: "r-1" }, bearer(TOKEN));
    expect(h.sessions).to.deep.equal([
      { method: "HoldSeat", session: sessionFor(TOKEN, { dateId: DATE, seatId: CACHED_SEAT }) },
    ]);
  });

  it("HoldSeat of a seat whose facts are not cached authenticates without a seat", async () => {
    await h.reservations.holdSeat({ seatId: UNCACHED_SEAT, requestId: "r-1" }, bearer(TOKEN));
    expect(queue.calls.map((call) => call.seat)).to.deep.equal([undefined]);
    expect(catalog.asked).to.deep.equal([UNCACHED_SEAT]);
    expect(h.sessions[0]?.session).to.deep.equal(sessionFor(TOKEN, undefined));
    expect(h.sessions[0]?.session).not.to.have.property("seat");
  });

  it("another authenticated method authenticates without a seat, never asking the catalog", async () => {
    await h.reservations.getReservation({ reservationId: CACHED_SEAT }, bearer(TOKEN));
    expect(queue.calls.map((call) => [call.token, call.seat])).to.deep.equal([[TOKEN, undefined]]);
    expect(catalog.asked).to.deep.equal([]);
    expect(h.sessions[0]?.session?.principal.userId).to.equal(`user-of-${TOKEN}`);
  });

  it("a streaming method authenticates without asking seatOf", async () => {
    const always = harness(queue, () => ({ dateId: DATE, seatId: CACHED_SEAT }));
    for await (const _ of always.queueApi.watchQueueStatus({}, bearer(TOKEN))) {
      // one event
    }
    expect(queue.calls.map((call) => [call.token, call.seat])).to.deep.equal([[TOKEN, undefined]]);
    expect(always.sessions[0]?.method).to.equal("WatchQueueStatus");
    expect(always.sessions[0]?.session?.principal.userId).to.equal(`user-of-${TOKEN}`);
  });

  it("does not authenticate public methods, with or without a token", async () => {
    await h.catalog.listConcerts({});
    await h.catalog.listConcerts({}, bearer(TOKEN));
    await h.queueApi.issueQueueToken({});
    expect(queue.calls).to.deep.equal([]);
    expect(h.sessions).to.deep.equal([
      { method: "ListConcerts", session: undefined },
      { method: "ListConcerts", session: undefined },
      { method: "IssueQueueToken", session: undefined },
    ]);
  });

  it("passes a missing or malformed credential on as undefined, for the queue to refuse", async () => {
    await h.reservations.getReservation({ reservationId: "r" });
    await h.reservations.getReservation(
      { reservationId: "r" },
      { headers: { authorization: "Basic abc" } },
    );
    expect(queue.calls.map((call) => call.token)).to.deep.equal([undefined, undefined]);
  });

  it("runs no handler when authentication fails", async () => {
    queue.failure = new Error("the queue token is not valid");
    await rejectionOf(
      h.reservations.holdSeat({ seatId: CACHED_SEAT, requestId: "r-1" }, bearer(TOKEN)),
    );
    expect(queue.calls).to.have.length(1);
    expect(h.sessions).to.deep.equal([]);
  });

  it("without seatOf, HoldSeat authenticates without a seat", async () => {
    const plain = harness(queue);
    await plain.reservations.holdSeat({ seatId: CACHED_SEAT, requestId: "r-1" }, bearer(TOKEN));
    expect(queue.calls.map((call) => call.seat)).to.deep.equal([undefined]);
  });

  it("with the real QueueService, HoldSeat's session carries the seat's gate entry", async () => {
    const f = queueFixture();
    const { token } = await f.issue("ann");
    await f.store.seats.record(
      { concertId: CONCERT, dateId: DATE },
      {
        seatId: CACHED_SEAT,
        seatVersion: 3,
        state: "held",
        heldUntil: 1_893_456_000_123,
        owner: "bob",
      },
    );
    const real = harness(f.queue, seatOfCall(catalog as unknown as Services["catalog"]));

    await real.reservations.holdSeat({ seatId: CACHED_SEAT, requestId: "r-1" }, bearer(token));
    await real.reservations.holdSeat({ seatId: UNCACHED_SEAT, requestId: "r-2" }, bearer(token));

    const [cached, uncached] = real.sessions.map((s) => s.session);
    expect(cached?.principal.userId).to.equal("ann");
    expect(cached?.seat).to.deep.equal({
      seatVersion: 3,
      state: "held",
      heldUntil: 1_893_456_000_123,
      owner: "bob",
    });
    expect(uncached?.principal.userId).to.equal("ann");
    expect(uncached?.seat).to.equal(undefined);
  });
});
