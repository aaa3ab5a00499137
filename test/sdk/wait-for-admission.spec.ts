import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  type AdmissionEvent,
  errorReason,
  QueueTokenState,
  type QueueUpdate,
  type Reconnect,
  waitForAdmission,
  watchAdmission,
} from "@stagedoor/sdk";
import type { NodeProtocol } from "@stagedoor/sdk/node";
import { expect } from "chai";
import {
  must,
  newRequestId,
  pollUntil,
  seatsOfDate,
  startRpcServer,
  withDeadline,
} from "../rpc/rpc-kit.js";
import type { TestServer } from "../support/test-server.js";
import { CallCounter, expectConnectError, type Fan, joinQueue, sdkClient } from "./sdk-kit.js";

/** Generous bound for promotion (a 250 ms job) plus a stream tick to reach a watcher. */
const ADMISSION_MS = 10_000;
const PROTOCOLS: readonly NodeProtocol[] = ["connect", "grpc", "grpc-web"];

/** Passes the first message of a stream on, then breaks it as a dropped connection would. */
async function* firstThenReset<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  for await (const message of messages) {
    yield message;
    break;
  }
  throw new ConnectError("injected: connection reset", Code.Unavailable);
}

describe("SDK waitForAdmission and watchAdmission", () => {
  let server: TestServer;
  // Every fan a test creates gives up its place afterwards, so the single
  // admission slot is free for the next test.
  const fans: Fan[] = [];

  before(async () => {
    server = await startRpcServer({ env: { QUEUE_MAX_ACTIVE: "1" } });
  });

  afterEach(async () => {
    for (const fan of fans.splice(0)) await fan.leave();
  });

  after(async () => {
    await server?.stop();
  });

  async function join(label: string, expected: "admitted" | "waiting"): Promise<Fan> {
    const fan = await joinQueue(server.url, server.concertId, label, expected);
    fans.push(fan);
    return fan;
  }

  /** The first fan takes the only slot; the second waits at position 1. */
  async function oneAdmittedOneWaiting(): Promise<{ first: Fan; second: Fan }> {
    const first = await join("first", "admitted");
    const second = await join("second", "waiting");
    return { first, second };
  }

  async function statusOf(fan: Fan) {
    const { status } = await sdkClient(server.url, { token: fan.token }).queue.getQueueStatus({});
    return must(status, "status");
  }

  for (const protocol of PROTOCOLS) {
    it(`resolves when a waiting fan is admitted, reporting the position first (${protocol})`, async () => {
      const { first, second } = await oneAdmittedOneWaiting();
      const updates: QueueUpdate[] = [];
      const client = sdkClient(server.url, { token: second.token, protocol });
      const admitted = waitForAdmission(client, { onUpdate: (update) => updates.push(update) });

      await pollUntil(() => updates.length > 0, ADMISSION_MS, "the first status");
      const firstUpdate = must(updates[0], "first update");
      expect(firstUpdate.position).to.equal(1);
      expect(firstUpdate.source).to.equal("stream");
      expect(firstUpdate.status.state).to.equal(QueueTokenState.WAITING);
      expect(firstUpdate.waitingCount).to.be.at.least(1);
      expect(firstUpdate.estimatedWaitMs).to.be.at.least(0);

      await first.leave();
      const admission = await withDeadline(admitted, ADMISSION_MS, "the admission");
      const status = await statusOf(second);
      expect(status.state).to.equal(QueueTokenState.ADMITTED);
      expect(admission.expireTime.getTime()).to.equal(
        timestampDate(must(status.expireTime, "expireTime")).getTime(),
      );
    });
  }

  it("resolves at once for a token that is already admitted", async () => {
    const fan = await join("admitted", "admitted");
    const updates: QueueUpdate[] = [];
    const admission = await waitForAdmission(sdkClient(server.url), {
      token: fan.token,
      onUpdate: (update) => updates.push(update),
    });
    const status = await statusOf(fan);
    expect(admission.expireTime.getTime()).to.equal(
      timestampDate(must(status.expireTime, "expireTime")).getTime(),
    );
    expect(updates.map((u) => u.position)).to.deep.equal([0]);
  });

  it("reconnects after broken streams and keeps the place in line", async () => {
    const { first, second } = await oneAdmittedOneWaiting();
    const third = await join("third", "waiting");
    let streams = 0;
    const breakTwice: Interceptor = (next) => async (req) => {
      const res = await next(req);
      if (!res.stream || req.method.name !== "WatchQueueStatus") return res;
      streams += 1;
      return streams <= 2 ? { ...res, message: firstThenReset(res.message) } : res;
    };
    const updates: QueueUpdate[] = [];
    const reconnects: Reconnect[] = [];
    const admitted = waitForAdmission(
      sdkClient(server.url, { token: second.token, interceptors: [breakTwice] }),
      {
        initialDelayMs: 20,
        maxDelayMs: 100,
        onUpdate: (update) => updates.push(update),
        onReconnect: (reconnect) => reconnects.push(reconnect),
      },
    );

    await pollUntil(() => updates.length >= 3, ADMISSION_MS, "a status from the third stream");
    expect(streams).to.equal(3);
    expect(reconnects.map((r) => [Code[r.error.code], r.mode, r.attempt])).to.deep.equal([
      ["Unavailable", "stream", 1],
      ["Unavailable", "stream", 2],
    ]);
    // Still first in line after two reconnects, ahead of the fan behind.
    expect(updates.map((u) => u.position)).to.deep.equal([1, 1, 1]);

    await first.leave();
    await withDeadline(admitted, ADMISSION_MS, "the admission after reconnecting");
    expect((await statusOf(second)).state).to.equal(QueueTokenState.ADMITTED);
    const behind = await statusOf(third);
    expect(behind.state).to.equal(QueueTokenState.WAITING);
    expect(behind.position).to.equal(1n);
  });

  it("falls back to polling when streaming is unimplemented", async () => {
    const { first, second } = await oneAdmittedOneWaiting();
    const calls = new CallCounter();
    const noStreams: Interceptor = (next) => async (req) => {
      if (req.stream) throw new ConnectError("injected: no streaming here", Code.Unimplemented);
      return next(req);
    };
    const updates: QueueUpdate[] = [];
    const reconnects: Reconnect[] = [];
    const admitted = waitForAdmission(
      sdkClient(server.url, { token: second.token, interceptors: [calls.interceptor, noStreams] }),
      {
        pollIntervalMs: 50,
        onUpdate: (update) => updates.push(update),
        onReconnect: (reconnect) => reconnects.push(reconnect),
      },
    );

    await pollUntil(() => updates.length >= 2, ADMISSION_MS, "two polled statuses");
    expect(calls.of("WatchQueueStatus")).to.equal(1);
    expect(reconnects.map((r) => [Code[r.error.code], r.mode])).to.deep.equal([
      ["Unimplemented", "poll"],
    ]);
    expect(updates.slice(0, 2).map((u) => [u.source, u.position])).to.deep.equal([
      ["poll", 1],
      ["poll", 1],
    ]);

    await first.leave();
    await withDeadline(admitted, ADMISSION_MS, "the admission while polling");
    expect(calls.of("WatchQueueStatus")).to.equal(1);
    expect(calls.of("GetQueueStatus")).to.be.at.least(3);
  });

  it("switches to polling after maxStreamFailures broken streams in a row", async () => {
    const { first, second } = await oneAdmittedOneWaiting();
    const calls = new CallCounter();
    const brokenStreams: Interceptor = (next) => async (req) => {
      if (req.stream) throw new ConnectError("injected: proxy dropped it", Code.Unavailable);
      return next(req);
    };
    const updates: QueueUpdate[] = [];
    const admitted = waitForAdmission(
      sdkClient(server.url, {
        token: second.token,
        interceptors: [calls.interceptor, brokenStreams],
      }),
      {
        maxStreamFailures: 2,
        initialDelayMs: 10,
        maxDelayMs: 20,
        pollIntervalMs: 50,
        onUpdate: (update) => updates.push(update),
      },
    );

    await pollUntil(() => updates.length >= 1, ADMISSION_MS, "a polled status");
    await first.leave();
    await withDeadline(admitted, ADMISSION_MS, "the admission while polling");
    expect(calls.of("WatchQueueStatus")).to.equal(2);
    expect(updates.every((u) => u.source === "poll")).to.equal(true);
  });

  it("watchAdmission yields every status, then the admission, and closes its stream", async () => {
    const { first, second } = await oneAdmittedOneWaiting();
    const events: AdmissionEvent[] = [];
    for await (const event of watchAdmission(sdkClient(server.url), { token: second.token })) {
      events.push(event);
      if (events.length === 1) await first.leave();
    }
    expect(events[0]?.type).to.equal("status");
    expect(events[0]?.type === "status" ? events[0].position : undefined).to.equal(1);
    const last = must(events.at(-1), "last event");
    expect(last.type).to.equal("admitted");
    expect(last.type === "admitted" ? last.expireTime.getTime() : 0).to.be.greaterThan(Date.now());
    await pollUntil(() => server.services.watchHub.size === 0, ADMISSION_MS, "the stream closed");
  });

  it("closes the stream when the caller breaks out of watchAdmission", async () => {
    const { second } = await oneAdmittedOneWaiting();
    for await (const event of watchAdmission(sdkClient(server.url, { token: second.token }))) {
      expect(event.type).to.equal("status");
      break;
    }
    await pollUntil(() => server.services.watchHub.size === 0, ADMISSION_MS, "the stream closed");
    // Giving up watching is not giving up the place.
    expect((await statusOf(second)).position).to.equal(1n);
  });

  it("stops waiting on an open stream when the AbortSignal fires", async () => {
    const { second } = await oneAdmittedOneWaiting();
    const controller = new AbortController();
    const updates: QueueUpdate[] = [];
    const waiting = waitForAdmission(sdkClient(server.url, { token: second.token }), {
      signal: controller.signal,
      onUpdate: (update) => updates.push(update),
    });
    await pollUntil(() => updates.length > 0, ADMISSION_MS, "the first status");
    controller.abort();
    await expectConnectError(waiting, Code.Canceled);
    await pollUntil(() => server.services.watchHub.size === 0, ADMISSION_MS, "the stream closed");
  });

  it("stops a pending reconnect delay when the AbortSignal fires", async () => {
    const { second } = await oneAdmittedOneWaiting();
    const controller = new AbortController();
    const calls = new CallCounter();
    const brokenStreams: Interceptor = (next) => async (req) => {
      if (req.stream) throw new ConnectError("injected: connection refused", Code.Unavailable);
      return next(req);
    };
    const reconnects: Reconnect[] = [];
    const waiting = waitForAdmission(
      sdkClient(server.url, {
        token: second.token,
        interceptors: [calls.interceptor, brokenStreams],
      }),
      {
        signal: controller.signal,
        // A delay no test waits out: only the abort can end it.
        initialDelayMs: 600_000,
        maxDelayMs: 600_000,
        onReconnect: (reconnect) => {
          reconnects.push(reconnect);
          controller.abort();
        },
      },
    );
    await withDeadline(
      expectConnectError(waiting, Code.Canceled),
      ADMISSION_MS,
      "the rejection after abort",
    );
    expect(reconnects).to.have.length(1);
    expect(must(reconnects[0], "reconnect").delayMs).to.be.at.least(300_000);
    expect(calls.of("WatchQueueStatus")).to.equal(1);
  });

  it("rejects at once, without a call, when the signal already fired", async () => {
    const calls = new CallCounter();
    const controller = new AbortController();
    controller.abort();
    await expectConnectError(
      waitForAdmission(
        sdkClient(server.url, { token: "sdq_unused", interceptors: [calls.interceptor] }),
        {
          signal: controller.signal,
        },
      ),
      Code.Canceled,
    );
    expect(calls.counts.size).to.equal(0);
  });

  it("fails fast, without reconnecting, when the token is not accepted", async () => {
    const calls = new CallCounter();
    const reconnects: Reconnect[] = [];
    const error = await expectConnectError(
      waitForAdmission(
        sdkClient(server.url, { token: "sdq_not-a-real-token", interceptors: [calls.interceptor] }),
        { initialDelayMs: 10, onReconnect: (reconnect) => reconnects.push(reconnect) },
      ),
      Code.Unauthenticated,
    );
    expect(errorReason(error)).to.equal("TOKEN_INVALID");
    expect(calls.of("WatchQueueStatus")).to.equal(1);
    expect(reconnects).to.have.length(0);
  });

  it("fails with TOKEN_NOT_ADMITTED when the token's admission already ended with a payment", async () => {
    const fan = await join("buyer", "admitted");
    const client = sdkClient(server.url, { token: fan.token });
    const { seats } = await seatsOfDate(client, server.concertId, 0);
    const seat = must([...seats.values()].at(-1), "a free seat");
    await client.wallet.rechargeWallet({ amount: seat.price, requestId: newRequestId() });
    const { reservation } = await client.reservation.holdSeat({
      seatId: seat.id,
      requestId: newRequestId(),
    });
    await client.payment.createPayment({
      reservationId: must(reservation, "reservation").id,
      amount: seat.price,
      requestId: newRequestId(),
    });
    expect((await statusOf(fan)).state).to.equal(QueueTokenState.COMPLETED);

    const error = await expectConnectError(waitForAdmission(client), Code.FailedPrecondition);
    expect(errorReason(error)).to.equal("TOKEN_NOT_ADMITTED");
  });

  it("reports the lobby with its opening, then admits the fan once the lobby is drawn", async () => {
    // A concert of its own: its scheduled opening leaves the others alone.
    const ops = { name: "sdk" };
    const concert = await server.services.catalogAdmin.createConcert(ops, {
      title: "SDK opening",
      venue: "Hall",
      timeZone: "UTC",
      requestId: newRequestId(),
    });
    const opensAt = Date.now() + 1_500;
    await server.services.saleSettings.update(ops, {
      concertId: concert.id,
      requestId: newRequestId(),
      fields: ["opens_at"],
      opensAt: new Date(opensAt),
      maxAdmitted: 0,
      admissionMs: 0,
      holdMs: 0,
    });
    const { token, status } = await sdkClient(server.url).queue.issueQueueToken({
      concertId: concert.id,
      userId: `sdk-lobby-${newRequestId()}`,
    });
    expect(status?.state).to.equal(QueueTokenState.LOBBY);
    const updates: QueueUpdate[] = [];
    const client = sdkClient(server.url, { token });
    await withDeadline(
      waitForAdmission(client, { onUpdate: (update) => updates.push(update) }),
      ADMISSION_MS,
      "the admission after the opening",
    );
    const first = must(updates[0], "first update");
    expect(first.status.state).to.equal(QueueTokenState.LOBBY);
    expect(first.opensAt?.getTime()).to.equal(opensAt);
    expect(first.admissionPaused).to.equal(false);
    await client.queue.leaveQueue({});
  });
});
