import type { Logger } from "../../logger.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError } from "../../shared/domain-error.js";
import type { QueueService, QueueStatusView, Session } from "./queue.service.js";
import type { QueueSnapshot, QueueStore } from "./queue-store.js";

/** One event of a watch stream. */
export type WatchEvent =
  | { readonly kind: "status"; readonly status: QueueStatusView }
  | { readonly kind: "heartbeat"; readonly at: Date }
  | { readonly kind: "admitted"; readonly expireTime: Date };

/** Timings of the hub. */
export interface WatchHubOptions {
  /** How often the hub looks for changes; bounds how stale a pushed position can be. */
  readonly tickMs: number;
  /** The longest silence on a stream before a heartbeat. */
  readonly heartbeatMs: number;
  /** How often open streams count as activity, so watchers keep their place. */
  readonly touchEveryMs: number;
  /** Live streams one token may have at once (more tabs or devices are refused). */
  readonly maxPerToken: number;
  /** Live streams this process serves at once. */
  readonly maxStreams: number;
}

/** How long a refused watcher is told to wait before trying again. */
const RETRY_REFUSED_WATCH_MS = 5_000;

/**
 * One open stream. It holds at most one event its reader has not taken: the
 * latest status or heartbeat replaces an older one nobody read, and the final
 * `admitted` replaces whatever was waiting. A reader that stops reading (a
 * client that does not read its stream) costs one event, however long it
 * stays.
 */
class Watcher {
  /** The event waiting for the reader, if any. */
  private next: WatchEvent | undefined;
  failure: unknown;
  lastPosition: number;
  lastSentAt: number;
  private wake: (() => void) | undefined;

  constructor(
    readonly tokenId: string,
    position: number,
    now: number,
  ) {
    this.lastPosition = position;
    this.lastSentAt = now;
  }

  /** How many events wait for the reader (0 or 1). */
  get buffered(): number {
    return this.next === undefined ? 0 : 1;
  }

  push(event: WatchEvent, now: number): void {
    const waiting = this.next;
    // Nothing follows `admitted`: once it waits, it stays. A status that
    // waits says more than a heartbeat would.
    if (waiting?.kind === "admitted") return;
    if (!(event.kind === "heartbeat" && waiting?.kind === "status")) this.next = event;
    this.lastSentAt = now;
    this.notify();
  }

  /** Takes the waiting event, if any. */
  take(): WatchEvent | undefined {
    const event = this.next;
    this.next = undefined;
    return event;
  }

  fail(error: unknown): void {
    this.failure = error;
    this.notify();
  }

  waitForChange(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }

  private notify(): void {
    this.wake?.();
  }
}

/**
 * Fans queue positions out to every open watch stream of this process with one
 * shared ticker. Each tick reads one change counter per concert; only when a
 * concert's line moved (or activity is due) does it fetch the positions of that
 * concert's watchers, in one batched store call. Thousands of open streams cost
 * a handful of store calls per second, not one polling loop each.
 */
export class QueueWatchHub {
  private readonly byConcert = new Map<string, Set<Watcher>>();
  /** Open streams per token id. */
  private readonly byToken = new Map<string, number>();
  private count = 0;
  private readonly lastVersions = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private lastTouch = 0;
  private ticking = false;
  private stopping = false;

  constructor(
    private readonly queue: QueueService,
    private readonly store: QueueStore,
    private readonly clock: Clock,
    private readonly options: WatchHubOptions,
    private readonly logger: Logger,
  ) {}

  /** How many streams are open right now. */
  get size(): number {
    return this.count;
  }

  /** How many events wait for readers across all open streams (at most one per stream). */
  get buffered(): number {
    let total = 0;
    for (const watchers of this.byConcert.values()) {
      for (const watcher of watchers) total += watcher.buffered;
    }
    return total;
  }

  /** Starts the shared ticker. */
  start(): void {
    this.stopping = false;
    this.timer ??= setInterval(() => void this.tick(), this.options.tickMs);
  }

  /** Stops the ticker and ends every open stream with `unavailable`, so clients reconnect elsewhere. */
  stop(): void {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const watchers of this.byConcert.values()) {
      for (const watcher of watchers) watcher.fail(shuttingDown());
    }
  }

  /**
   * Streams a session's status: the current status first, then a status
   * whenever the position moves, heartbeats in silence, and finally `admitted`.
   * A reader that falls behind gets the latest status, not every one it
   * missed. Ends quietly when `signal` aborts (the client went away), and
   * throws why when the token stops working or the server shuts down. A
   * waiting session's stream is refused with `resource_exhausted` when its
   * token already has `maxPerToken` streams open or the process `maxStreams`.
   */
  async *watch(session: Session, signal: AbortSignal): AsyncGenerator<WatchEvent> {
    if (this.stopping) throw shuttingDown();
    if (session.status.state !== "waiting") {
      yield { kind: "status", status: session.status };
      if (session.status.state === "admitted") {
        yield { kind: "admitted", expireTime: session.status.expireTime };
      }
      return;
    }
    const { principal } = session;
    // Counted before the first status goes out, so streams opened at once
    // cannot all slip under the limits.
    this.admit(principal.tokenId);
    const watcher = new Watcher(
      principal.tokenId,
      session.status.position,
      this.clock.now().getTime(),
    );
    this.add(principal.concertId, watcher);
    try {
      yield { kind: "status", status: session.status };
      // stop() may have run while the first status was on its way out.
      if (this.stopping) throw shuttingDown();
      for (;;) {
        const event = watcher.take();
        if (event !== undefined) {
          yield event;
          if (event.kind === "admitted") return;
          continue;
        }
        if (watcher.failure !== undefined) throw watcher.failure;
        if (signal.aborted) return;
        await watcher.waitForChange(signal);
      }
    } finally {
      this.remove(principal.concertId, watcher);
    }
  }

  /** One pass of the ticker; exposed for tests that drive time themselves. */
  async tick(): Promise<void> {
    if (this.ticking || this.byConcert.size === 0) return;
    this.ticking = true;
    try {
      const now = this.clock.now().getTime();
      const touch = now - this.lastTouch >= this.options.touchEveryMs;
      const concerts = [...this.byConcert.keys()];
      const versions = await this.store.versions(concerts);
      for (const [index, concertId] of concerts.entries()) {
        const version = versions[index] ?? 0;
        if (!touch && this.lastVersions.get(concertId) === version) continue;
        const watchers = [...(this.byConcert.get(concertId) ?? [])];
        if (watchers.length === 0) continue;
        const snapshots = await this.store.snapshots(
          concertId,
          watchers.map((w) => w.tokenId),
          now,
          touch,
        );
        this.lastVersions.set(concertId, version);
        for (const watcher of watchers) {
          this.deliver(watcher, snapshots.get(watcher.tokenId) ?? null, now);
        }
      }
      if (touch) this.lastTouch = now;
      for (const watchers of this.byConcert.values()) {
        for (const watcher of watchers) {
          if (now - watcher.lastSentAt >= this.options.heartbeatMs) {
            watcher.push({ kind: "heartbeat", at: new Date(now) }, now);
          }
        }
      }
    } catch (error) {
      // A store hiccup delays updates by a tick; the streams stay open.
      this.logger.warn({ err: error }, "queue watch tick failed");
    } finally {
      this.ticking = false;
    }
  }

  private deliver(watcher: Watcher, snapshot: QueueSnapshot | null, now: number): void {
    let session: Session;
    try {
      session = this.queue.session(snapshot);
    } catch (error) {
      watcher.fail(error);
      return;
    }
    const { status } = session;
    if (status.state === "admitted" || status.state === "completed") {
      // A user admitted and done (paid on another device) between two ticks
      // was still admitted: tell them so and end the stream.
      watcher.push({ kind: "admitted", expireTime: status.expireTime }, now);
    } else if (status.position !== watcher.lastPosition) {
      watcher.lastPosition = status.position;
      watcher.push({ kind: "status", status }, now);
    }
  }

  /** Refuses a new stream of `tokenId` past either limit. */
  private admit(tokenId: string): void {
    const { maxPerToken, maxStreams } = this.options;
    if ((this.byToken.get(tokenId) ?? 0) >= maxPerToken) {
      throw new DomainError(
        "resource_exhausted",
        "WATCH_LIMIT_REACHED",
        `this queue token already has ${maxPerToken} status streams open; close one, or poll GetQueueStatus`,
        { retryAfterMs: RETRY_REFUSED_WATCH_MS, metadata: { limit: String(maxPerToken) } },
      );
    }
    if (this.count >= maxStreams) {
      throw new DomainError(
        "resource_exhausted",
        "WATCH_CAPACITY_REACHED",
        "this server has no room for another status stream; retry later, or poll GetQueueStatus",
        { retryAfterMs: RETRY_REFUSED_WATCH_MS, metadata: { limit: String(maxStreams) } },
      );
    }
  }

  private add(concertId: string, watcher: Watcher): void {
    this.count += 1;
    this.byToken.set(watcher.tokenId, (this.byToken.get(watcher.tokenId) ?? 0) + 1);
    let watchers = this.byConcert.get(concertId);
    if (!watchers) {
      watchers = new Set();
      this.byConcert.set(concertId, watchers);
    }
    watchers.add(watcher);
    // The line may have moved between this watcher's first status and now,
    // with a tick already recording the new version: forget it, so the next
    // tick looks at every watcher of this concert.
    this.lastVersions.delete(concertId);
  }

  private remove(concertId: string, watcher: Watcher): void {
    const watchers = this.byConcert.get(concertId);
    if (!watchers?.delete(watcher)) return;
    this.count -= 1;
    const open = (this.byToken.get(watcher.tokenId) ?? 1) - 1;
    if (open === 0) this.byToken.delete(watcher.tokenId);
    else this.byToken.set(watcher.tokenId, open);
    if (watchers.size === 0) {
      this.byConcert.delete(concertId);
      this.lastVersions.delete(concertId);
    }
  }
}

function shuttingDown(): DomainError {
  return new DomainError(
    "unavailable",
    "SERVER_SHUTTING_DOWN",
    "the server is shutting down; reconnect to keep your place",
    { retryAfterMs: 500 },
  );
}
