import { expect } from "chai";
import { createLogger } from "../../../server/src/logger.js";
import type { Session } from "../../../server/src/modules/queue/queue.service.js";
import type { QueueStore } from "../../../server/src/modules/queue/queue-store.js";
import {
  QueueWatchHub,
  type WatchEvent,
  type WatchHubOptions,
} from "../../../server/src/modules/queue/queue-watch-hub.js";
import { expectDomainError, expectRejectsDomain, must } from "../unit-helpers.js";
import { type QueueFixture, queueFixture } from "./queue-fixture.js";

const OPTIONS: WatchHubOptions = {
  tickMs: 250,
  heartbeatMs: 10_000,
  touchEveryMs: 10_000,
  maxPerToken: 3,
  maxStreams: 10_000,
  frontSize: 2,
  frontEveryMs: 1000,
  farEveryMs: 5000,
};

/** Lets every pending promise callback run (the hub wakes streams with microtasks only). */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Follows a promise so a test can ask whether it settled without awaiting it. */
function track<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  promise.then(
    (value) => {
      state.settled = true;
      state.value = value;
    },
    (error: unknown) => {
      state.settled = true;
      state.error = error;
    },
  );
  return state;
}

/** Counts the store calls the hub makes. */
class CountingStore {
  snapshots = 0;
  /** Tokens read by snapshot calls. */
  snapshotTokens = 0;
  versions = 0;
  digests = 0;
  touches = 0;
  /** Tokens passed to touch calls. */
  touchedTokens = 0;
  failVersions = 0;

  /** Every call the hub made to the store, of any kind. */
  get calls(): number {
    return this.snapshots + this.versions + this.digests + this.touches;
  }

  wrap(inner: QueueStore): QueueStore {
    return {
      issue: (input) => inner.issue(input),
      lookup: (concertId, hash, now, touch) => inner.lookup(concertId, hash, now, touch),
      lookupWithSeat: (concertId, hash, now, touch, seat) =>
        inner.lookupWithSeat(concertId, hash, now, touch, seat),
      retire: (concertId, now) => inner.retire(concertId, now),
      configure: (concertId, settings) => inner.configure(concertId, settings),
      openingDraw: (concertId) => inner.openingDraw(concertId),
      seats: inner.seats,
      snapshots: (concertId, ids, now, touch) => {
        this.snapshots++;
        this.snapshotTokens += ids.length;
        return inner.snapshots(concertId, ids, now, touch);
      },
      lineDigest: (concertId, after) => {
        this.digests++;
        return inner.lineDigest(concertId, after);
      },
      touchMany: (concertId, ids, now) => {
        this.touches++;
        this.touchedTokens += ids.length;
        return inner.touchMany(concertId, ids, now);
      },
      leave: (concertId, id, now) => inner.leave(concertId, id, now),
      complete: (concertId, id, now) => inner.complete(concertId, id, now),
      promote: (concertId, now) => inner.promote(concertId, now),
      concerts: () => inner.concerts(),
      versions: (ids) => {
        this.versions++;
        if (this.failVersions > 0) {
          this.failVersions--;
          return Promise.reject(new Error("redis timeout"));
        }
        return inner.versions(ids);
      },
      close: () => inner.close(),
    };
  }
}

describe("QueueWatchHub", () => {
  let f: QueueFixture;
  let counting: CountingStore;
  let hub: QueueWatchHub;
  let controllers: AbortController[];
  let streams: AsyncGenerator<WatchEvent>[];

  function makeHub(options: WatchHubOptions = OPTIONS): QueueWatchHub {
    return new QueueWatchHub(
      f.queue,
      counting.wrap(f.store),
      f.clock,
      options,
      createLogger("silent"),
    );
  }

  beforeEach(() => {
    f = queueFixture({ limits: { maxActive: 1, admissionTtlMs: 60_000, idleMs: 30_000 } });
    counting = new CountingStore();
    hub = makeHub();
    controllers = [];
    streams = [];
  });

  afterEach(async () => {
    // End every stream a test left open, so nothing keeps the process alive.
    for (const controller of controllers) controller.abort();
    hub.stop();
    for (const stream of streams) await stream.return(undefined).catch(() => undefined);
  });

  async function sessionOf(userId: string): Promise<Session> {
    const { token } = await f.issue(userId);
    return f.queue.authenticate(token);
  }

  /** Opens a stream for a session and reads its first event. */
  async function open(session: Session, onHub: QueueWatchHub = hub) {
    const controller = new AbortController();
    controllers.push(controller);
    const stream = onHub.watch(session, controller.signal);
    streams.push(stream);
    const first = await stream.next();
    return { stream, controller, first };
  }

  /** Lets `ms` pass in ticks of tickMs, as the ticker would. */
  async function elapse(ms: number, onHub: QueueWatchHub = hub): Promise<void> {
    for (let t = 0; t < ms; t += OPTIONS.tickMs) {
      f.clock.advance(OPTIONS.tickMs);
      await onHub.tick();
    }
    await flush();
  }

  /** Asks for the next event, which the test then causes with `hub.tick()`. */
  function nextOf(stream: AsyncGenerator<WatchEvent>) {
    return track(stream.next());
  }

  it("starts with the current status", async () => {
    await sessionOf("ann");
    const bob = await sessionOf("bob");
    const { first } = await open(bob);
    expect(first).to.deep.equal({ done: false, value: { kind: "status", status: bob.status } });
    expect(bob.status).to.deep.include({ state: "waiting", position: 1 });
  });

  it("answers an admitted session with its status and `admitted`, then ends", async () => {
    const ann = await sessionOf("ann");
    const { stream, first } = await open(ann);
    expect(first.value).to.deep.equal({ kind: "status", status: ann.status });
    expect((await stream.next()).value).to.deep.equal({
      kind: "admitted",
      expireTime: ann.status.expireTime,
    });
    expect((await stream.next()).done).to.equal(true);
    expect(hub.size).to.equal(0);
  });

  it("pushes a status when the position moves, and nothing while it stands still", async () => {
    await sessionOf("ann");
    const bob = await sessionOf("bob");
    const carol = await sessionOf("carol");
    const { stream } = await open(carol);
    const next = nextOf(stream);
    await flush();
    expect(hub.size).to.equal(1);

    await elapse(OPTIONS.farEveryMs);
    expect(next.settled).to.equal(false);

    await f.queue.leave(bob.principal);
    await elapse(OPTIONS.frontEveryMs);
    expect(next.settled).to.equal(true);
    const event = must(next.value).value;
    expect(event).to.deep.include({ kind: "status" });
    expect(event?.kind === "status" && event.status).to.deep.include({
      state: "waiting",
      position: 1,
      waitingCount: 1,
    });
  });

  it("pushes `admitted` with the admission's end when the user is admitted, then ends", async () => {
    const ann = await sessionOf("ann");
    const bob = await sessionOf("bob");
    const { stream } = await open(bob);
    const next = nextOf(stream);
    await flush();

    f.clock.advance(2000);
    await f.queue.leave(ann.principal);
    await hub.tick();
    await flush();
    expect(must(next.value).value).to.deep.equal({
      kind: "admitted",
      expireTime: new Date(f.clock.ms() + f.limits.admissionTtlMs),
    });
    expect((await stream.next()).done).to.equal(true);
    expect(hub.size).to.equal(0);
  });

  it("sends a heartbeat after heartbeatMs of silence, and not before", async () => {
    await sessionOf("ann");
    const bob = await sessionOf("bob");
    const { stream } = await open(bob);
    const next = nextOf(stream);
    await flush();

    f.clock.advance(OPTIONS.heartbeatMs - 1);
    await hub.tick();
    await flush();
    expect(next.settled).to.equal(false);

    f.clock.advance(1);
    await hub.tick();
    await flush();
    expect(must(next.value).value).to.deep.equal({ kind: "heartbeat", at: f.clock.now() });

    // The silence is measured again from the heartbeat.
    const following = nextOf(stream);
    f.clock.advance(OPTIONS.heartbeatMs - 1);
    await hub.tick();
    await flush();
    expect(following.settled).to.equal(false);
  });

  it("throws TOKEN_INVALID when the token leaves the queue", async () => {
    await sessionOf("ann");
    const bob = await sessionOf("bob");
    const { stream } = await open(bob);
    const next = nextOf(stream);
    await flush();

    await f.queue.leave(bob.principal);
    await hub.tick();
    await flush();
    expectDomainError(next.error, "unauthenticated", "TOKEN_INVALID");
    expect(hub.size).to.equal(0);
  });

  it("throws TOKEN_EXPIRED when a watched token is evicted anyway", async () => {
    // Touching less often than the idle window cannot keep the place.
    hub = makeHub({ ...OPTIONS, touchEveryMs: 10 * 60_000, heartbeatMs: 10 * 60_000 });
    await sessionOf("ann");
    const bob = await sessionOf("bob");
    const { stream } = await open(bob);
    const next = nextOf(stream);
    await flush();

    f.clock.advance(f.limits.idleMs + 1);
    // The admitter's promotion step evicts the idle waiter.
    await f.queue.promoteAll();
    await hub.tick();
    await flush();
    expectDomainError(next.error, "unauthenticated", "TOKEN_EXPIRED");
  });

  it("ends the stream with unavailable SERVER_SHUTTING_DOWN when the hub stops", async () => {
    await sessionOf("ann");
    const bob = await sessionOf("bob");
    const { stream } = await open(bob);
    const next = nextOf(stream);
    await flush();

    hub.stop();
    await flush();
    const error = expectDomainError(next.error, "unavailable", "SERVER_SHUTTING_DOWN");
    expect(error.retryAfterMs).to.be.a("number").and.greaterThan(0);
    expect(hub.size).to.equal(0);

    // A stream opened after the stop is refused at once.
    const late = hub.watch(bob, new AbortController().signal);
    await expectRejectsDomain(late.next(), "unavailable", "SERVER_SHUTTING_DOWN");
  });

  // The first status is yielded before the stream registers with the hub; a
  // stop() in between must still end the stream rather than leave it hanging.
  it("ends a stream that registers just after the hub stopped", async () => {
    await sessionOf("ann");
    const bob = await sessionOf("bob");
    const { stream } = await open(bob);
    hub.stop();
    const next = nextOf(stream);
    await flush();
    expect(next.settled, "the stream is still waiting after stop()").to.equal(true);
    expectDomainError(next.error, "unavailable", "SERVER_SHUTTING_DOWN");
  });

  it("ends quietly when the client goes away, and forgets the stream", async () => {
    await sessionOf("ann");
    const bob = await sessionOf("bob");
    const { stream, controller } = await open(bob);
    const next = nextOf(stream);
    await flush();
    expect(hub.size).to.equal(1);

    controller.abort();
    await flush();
    expect(next.settled).to.equal(true);
    expect(next.error).to.equal(undefined);
    expect(must(next.value).done).to.equal(true);
    expect(hub.size).to.equal(0);
  });

  it("keeps a watcher's place past the idle window, while an unwatched waiter loses theirs", async () => {
    await sessionOf("ann");
    const bob = await sessionOf("bob");
    const carol = await sessionOf("carol");
    const { stream, controller } = await open(bob);
    const next = nextOf(stream);
    await flush();

    // 45 s of ticks, with touches due every 10 s, against a 30 s idle window.
    for (let i = 0; i < 5; i++) {
      f.clock.advance(9000);
      await hub.tick();
    }
    await flush();
    expect(next.error).to.equal(undefined);
    const bobNow = must(await f.queue.refresh(bob.principal, false));
    expect(bobNow.status).to.deep.include({ state: "waiting", position: 1 });
    await expectRejectsDomain(
      f.queue.refresh(carol.principal, false).then((s) => must(s)),
      "unauthenticated",
      "TOKEN_EXPIRED",
    );

    // Once nobody watches, bob's place lapses like anyone else's.
    controller.abort();
    await flush();
    f.clock.advance(f.limits.idleMs + 1);
    await hub.tick();
    await expectRejectsDomain(
      f.queue.refresh(bob.principal, false).then((s) => must(s)),
      "unauthenticated",
      "TOKEN_EXPIRED",
    );
  });

  it("reads nothing but the versions while the line stands still", async () => {
    hub = makeHub({ ...OPTIONS, touchEveryMs: 10 * 60_000, heartbeatMs: 10 * 60_000 });
    await hub.tick();
    expect(counting.versions, "no streams, no store calls").to.equal(0);

    await sessionOf("ann");
    const bob = await sessionOf("bob");
    const carol = await sessionOf("carol");
    const { stream } = await open(carol);
    const next = nextOf(stream);
    await flush();

    await hub.tick();
    expect(counting.digests, "the first tick reads the line once").to.equal(1);
    await elapse(OPTIONS.farEveryMs);
    expect(counting.versions).to.equal(1 + OPTIONS.farEveryMs / OPTIONS.tickMs);
    expect(counting.digests).to.equal(1);
    expect(counting.snapshots).to.equal(0);

    await f.queue.leave(bob.principal);
    await hub.tick();
    expect(counting.digests).to.equal(2);
    // Carol still waits: her position is derived, not read.
    expect(counting.snapshots).to.equal(0);
    await elapse(OPTIONS.frontEveryMs);
    expect(next.settled).to.equal(true);
  });

  it("costs the same store calls per tick for 5 watchers as for 60", async () => {
    /** Store calls of 5 s of a moving line, with `watchers` streams open. */
    const callsWith = async (watchers: number) => {
      f = queueFixture({ limits: { maxActive: 1, admissionTtlMs: 60_000, idleMs: 30_000 } });
      counting = new CountingStore();
      const local = makeHub();
      const ann = await sessionOf("ann");
      const ahead = await sessionOf("ahead");
      for (let i = 0; i < watchers; i++) {
        const session = await sessionOf(`fan-${i}`);
        const controller = new AbortController();
        controllers.push(controller);
        const stream = local.watch(session, controller.signal);
        streams.push(stream);
        await stream.next();
        nextOf(stream);
      }
      await local.tick();
      const before = counting.calls;
      await f.queue.leave(ahead.principal);
      await elapse(OPTIONS.tickMs, local);
      await f.queue.endAdmission(ann.principal);
      await elapse(OPTIONS.farEveryMs, local);
      local.stop();
      return { calls: counting.calls - before, tokens: counting.snapshotTokens };
    };
    const few = await callsWith(5);
    const many = await callsWith(60);
    expect(many.calls).to.equal(few.calls);
    // Only the one watcher admitted is read exactly.
    expect(many.tokens).to.equal(1);
    expect(few.tokens).to.equal(1);
  });

  // The first status comes from the session, read before the stream
  // registers; if the line moved and a tick already consumed that change in
  // between, the new watcher must still learn its new position.
  it("updates a stream whose line moved just before it registered", async () => {
    hub = makeHub({ ...OPTIONS, touchEveryMs: 10 * 60_000, heartbeatMs: 10 * 60_000 });
    await sessionOf("ann");
    const first = await sessionOf("first");
    const bob = await sessionOf("bob");
    const carol = await sessionOf("carol");
    const bobStream = await open(bob);
    nextOf(bobStream.stream);
    await flush();
    await hub.tick();

    expect(carol.status.position).to.equal(3);
    await f.queue.leave(first.principal);
    await elapse(OPTIONS.tickMs);

    const carolStream = await open(carol);
    const next = nextOf(carolStream.stream);
    await elapse(OPTIONS.farEveryMs);
    expect(next.settled, "carol's stream still shows position 3").to.equal(true);
    const event = must(next.value).value;
    expect(event?.kind === "status" && event.status.position).to.equal(2);
  });

  it("keeps streams open through a failing tick and catches up on the next", async () => {
    await sessionOf("ann");
    const bob = await sessionOf("bob");
    const carol = await sessionOf("carol");
    const { stream } = await open(carol);
    const next = nextOf(stream);
    await flush();
    await hub.tick();

    await f.queue.leave(bob.principal);
    counting.failVersions = 1;
    f.clock.advance(OPTIONS.frontEveryMs);
    await hub.tick();
    await flush();
    expect(next.settled).to.equal(false);

    await elapse(OPTIONS.frontEveryMs);
    const event = must(next.value).value;
    expect(event?.kind === "status" && event.status.position).to.equal(1);
  });

  it("still reports the admission when it ended (paid elsewhere) before the stream saw it", async () => {
    const ann = await sessionOf("ann");
    const bob = await sessionOf("bob");
    const { stream } = await open(bob);
    const next = nextOf(stream);
    await flush();

    await f.queue.leave(ann.principal);
    await f.queue.endAdmission(bob.principal);
    await hub.tick();
    await flush();
    expect(next.error).to.equal(undefined);
    const event = must(next.value).value;
    expect(event?.kind).to.equal("admitted");
    const done = await stream.next();
    expect(done.done).to.equal(true);
  });

  describe("staggered updates", () => {
    /**
     * ann admitted, then `count` waiters each with an open stream whose
     * reader records when each event arrived (in ms since the start).
     */
    async function watchedLine(count: number) {
      const ann = await sessionOf("ann");
      const waiters: Session[] = [];
      for (let i = 0; i < count; i++) waiters.push(await sessionOf(`fan-${i}`));
      const start = f.clock.ms();
      const seen = waiters.map(() => [] as { at: number; event: WatchEvent }[]);
      for (const [i, session] of waiters.entries()) {
        const { stream } = await open(session);
        void (async () => {
          try {
            for await (const event of stream) seen[i]?.push({ at: f.clock.ms() - start, event });
          } catch {
            // The token stopped working or the hub stopped: the stream ends.
          }
        })();
      }
      await flush();
      return { ann, waiters, seen, start };
    }

    const positionsOf = (events: { event: WatchEvent }[]) =>
      events.flatMap(({ event }) => (event.kind === "status" ? [event.status.position] : []));

    it("shows fans near the front their new place within frontEveryMs, the others within farEveryMs", async () => {
      const { waiters, seen } = await watchedLine(12);
      await hub.tick();
      const moved = f.clock.ms();
      // The first in line leaves: everyone behind moves up one place.
      await f.queue.leave(must(waiters[0]).principal);
      const updatedAt = new Map<number, number>();
      for (let t = OPTIONS.tickMs; t <= OPTIONS.farEveryMs; t += OPTIONS.tickMs) {
        await elapse(OPTIONS.tickMs);
        for (let i = 1; i < waiters.length; i++) {
          if (!updatedAt.has(i) && positionsOf(must(seen[i])).length > 0) {
            updatedAt.set(i, f.clock.ms() - moved);
          }
        }
      }
      for (let i = 1; i < waiters.length; i++) {
        const position = i; // after the move
        const limit = position <= OPTIONS.frontSize ? OPTIONS.frontEveryMs : OPTIONS.farEveryMs;
        const at = updatedAt.get(i);
        expect(at, `fan at ${position} was never updated`).to.be.a("number");
        expect(at, `fan at ${position} updated late`).to.be.at.most(limit);
        expect(positionsOf(must(seen[i]))).to.deep.equal([position]);
      }
      // The far fans are spread over the rotation, not all updated at once.
      const far = [...updatedAt.entries()]
        .filter(([i]) => i > OPTIONS.frontSize)
        .map(([, at]) => at);
      expect(new Set(far).size).to.be.greaterThan(1);
    });

    it("pushes nothing when the place a fan sees does not change", async () => {
      hub = makeHub({ ...OPTIONS, heartbeatMs: 10 * 60_000 });
      const { waiters, seen } = await watchedLine(4);
      await hub.tick();
      // The last in line leaves: nobody ahead of them moves.
      await f.queue.leave(must(waiters[3]).principal);
      await elapse(OPTIONS.farEveryMs);
      for (let i = 0; i < 3; i++) expect(must(seen[i]), `fan ${i}`).to.deep.equal([]);
      // A fan who joins behind does not move anyone either.
      await sessionOf("late");
      await elapse(OPTIONS.farEveryMs);
      for (let i = 0; i < 3; i++) expect(must(seen[i]), `fan ${i}`).to.deep.equal([]);
    });

    it("derives the exact positions of a line that moved in every way", async () => {
      hub = makeHub({ ...OPTIONS, frontSize: 5 });
      const { ann, waiters, seen } = await watchedLine(40);
      const unwatched = [];
      for (let i = 0; i < 5; i++) unwatched.push(await sessionOf(`quiet-${i}`));
      await hub.tick();
      // Leaves from the middle, the front and the back; an admission ending,
      // which admits the first waiter; a fan who joins again at the back.
      for (const i of [7, 1, 39, 20, 21, 22]) await f.queue.leave(must(waiters[i]).principal);
      await f.queue.endAdmission(ann.principal);
      await elapse(OPTIONS.tickMs);
      await f.issue("fan-30"); // fan-30 keeps their live token: nothing moves
      await f.queue.leave(must(unwatched[0]).principal);
      await elapse(OPTIONS.farEveryMs);
      for (const [i, session] of waiters.entries()) {
        const exact = await f.queue.refresh(session.principal, false).catch(() => null);
        const events = must(seen[i]);
        if (exact === null || exact.status.state !== "waiting") {
          const last = events[events.length - 1]?.event.kind;
          if (exact?.status.state === "admitted") expect(last, `fan ${i}`).to.equal("admitted");
          continue;
        }
        const shown = positionsOf(events);
        const latest = shown.length > 0 ? shown[shown.length - 1] : session.status.position;
        expect(latest, `fan ${i}`).to.equal(exact.status.position);
      }
    });

    it("touches every watched token once per touchEveryMs, in one call per concert", async () => {
      hub = makeHub({ ...OPTIONS, heartbeatMs: 10 * 60_000 });
      const { waiters } = await watchedLine(30);
      await elapse(OPTIONS.touchEveryMs - OPTIONS.tickMs);
      expect(counting.touches).to.equal(0);
      await elapse(OPTIONS.tickMs);
      expect(counting.touches).to.equal(1);
      expect(counting.touchedTokens).to.equal(30);
      await elapse(OPTIONS.touchEveryMs);
      expect(counting.touches).to.equal(2);
      expect(counting.touchedTokens).to.equal(60);
      // Each touch reached the store: every waiter was seen just now.
      for (const session of waiters) {
        const now = must(await f.queue.refresh(session.principal, false));
        expect(now.status.expireTime.getTime()).to.equal(f.clock.ms() + f.limits.idleMs);
      }
    });

    it("touches a token with several streams once", async () => {
      await sessionOf("ann");
      const bob = await sessionOf("bob");
      await open(bob);
      await open(bob);
      await elapse(OPTIONS.touchEveryMs);
      expect(counting.touches).to.equal(1);
      expect(counting.touchedTokens).to.equal(1);
    });
  });

  describe("limits", () => {
    it("refuses a token's stream past maxPerToken with resource_exhausted and a retry delay", async () => {
      await sessionOf("ann");
      const bob = await sessionOf("bob");
      for (let i = 0; i < OPTIONS.maxPerToken; i++) await open(bob);
      expect(hub.size).to.equal(3);

      const refused = hub.watch(bob, new AbortController().signal);
      const error = await expectRejectsDomain(
        refused.next(),
        "resource_exhausted",
        "WATCH_LIMIT_REACHED",
      );
      expect(error.retryAfterMs).to.be.a("number").and.greaterThan(0);
      expect(error.metadata).to.deep.equal({ limit: "3" });
      expect(hub.size, "the refused stream is not counted").to.equal(3);

      // Another token is not affected.
      const carol = await sessionOf("carol");
      await open(carol);
      expect(hub.size).to.equal(4);
    });

    it("takes a token's stream again once one of its streams closed", async () => {
      await sessionOf("ann");
      const bob = await sessionOf("bob");
      const opened = [];
      for (let i = 0; i < OPTIONS.maxPerToken; i++) opened.push(await open(bob));
      const first = must(opened[0]);
      first.controller.abort();
      expect((await first.stream.next()).done).to.equal(true);
      expect(hub.size).to.equal(2);

      const { first: again } = await open(bob);
      expect(again.value).to.deep.include({ kind: "status" });
      expect(hub.size).to.equal(3);
    });

    it("counts a stream before its first status, so streams opened at once cannot pass the limit", async () => {
      await sessionOf("ann");
      const bob = await sessionOf("bob");
      const attempts = Array.from({ length: 5 }, () => {
        const controller = new AbortController();
        controllers.push(controller);
        const stream = hub.watch(bob, controller.signal);
        streams.push(stream);
        return stream.next().then(
          () => "open",
          (error: unknown) => {
            expectDomainError(error, "resource_exhausted", "WATCH_LIMIT_REACHED");
            return "refused";
          },
        );
      });
      const outcomes = await Promise.all(attempts);
      expect(outcomes.filter((o) => o === "open")).to.have.length(3);
      expect(hub.size).to.equal(3);
    });

    it("refuses any stream past maxStreams of the process", async () => {
      hub = makeHub({ ...OPTIONS, maxStreams: 2 });
      await sessionOf("ann");
      const bob = await sessionOf("bob");
      const carol = await sessionOf("carol");
      const dave = await sessionOf("dave");
      await open(bob);
      await open(carol);
      const error = await expectRejectsDomain(
        hub.watch(dave, new AbortController().signal).next(),
        "resource_exhausted",
        "WATCH_CAPACITY_REACHED",
      );
      expect(error.retryAfterMs).to.be.a("number").and.greaterThan(0);
      expect(hub.size).to.equal(2);
    });

    it("does not count an admitted session's stream, which ends at once", async () => {
      hub = makeHub({ ...OPTIONS, maxStreams: 1, maxPerToken: 1 });
      const ann = await sessionOf("ann");
      const bob = await sessionOf("bob");
      await open(bob);
      // The process is full, but ann is admitted: her stream says so and ends.
      const { stream } = await open(ann);
      expect((await stream.next()).value).to.deep.include({ kind: "admitted" });
      expect((await stream.next()).done).to.equal(true);
    });
  });

  describe("a reader that falls behind", () => {
    /** A line of `count` waiters behind ann (admitted), with carol last. */
    async function longLine(count: number) {
      await sessionOf("ann");
      const ahead: Session[] = [];
      for (let i = 0; i < count; i++) ahead.push(await sessionOf(`ahead-${i}`));
      const carol = await sessionOf("carol");
      return { ahead, carol };
    }

    it("keeps only the latest status, however many moves it missed", async () => {
      hub = makeHub({ ...OPTIONS, frontSize: 100 });
      const { ahead, carol } = await longLine(50);
      expect(carol.status.position).to.equal(51);
      // Carol's stream is open but its reader takes nothing after the first status.
      const { stream } = await open(carol);
      for (const session of ahead) {
        await f.queue.leave(session.principal);
        await elapse(OPTIONS.frontEveryMs);
        expect(hub.buffered, "events waiting for the reader").to.equal(1);
      }
      const next = await stream.next();
      const event = must(next.value);
      expect(event.kind === "status" && event.status.position).to.equal(1);
      // Nothing older follows: the reader is up to date.
      const following = nextOf(stream);
      await flush();
      expect(following.settled).to.equal(false);
      expect(hub.buffered).to.equal(0);
    });

    it("keeps a waiting status rather than a later heartbeat", async () => {
      const { ahead, carol } = await longLine(1);
      const { stream } = await open(carol);
      await f.queue.leave(must(ahead[0]).principal);
      await elapse(OPTIONS.frontEveryMs);
      f.clock.advance(OPTIONS.heartbeatMs);
      await hub.tick();
      expect(hub.buffered).to.equal(1);
      const event = must((await stream.next()).value);
      expect(event.kind === "status" && event.status.position).to.equal(1);
    });

    it("keeps the final admission, which replaces a waiting status and is never replaced", async () => {
      const ann = await sessionOf("ann");
      const bob = await sessionOf("bob");
      const carol = await sessionOf("carol");
      const { stream } = await open(carol);
      await f.queue.leave(bob.principal);
      await hub.tick();
      await f.queue.leave(ann.principal);
      await hub.tick();
      f.clock.advance(OPTIONS.heartbeatMs);
      await hub.tick();
      expect(hub.buffered).to.equal(1);
      expect(must((await stream.next()).value).kind).to.equal("admitted");
      expect((await stream.next()).done).to.equal(true);
    });
  });
});
