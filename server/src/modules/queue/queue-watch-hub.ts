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
}

class Watcher {
  readonly events: WatchEvent[] = [];
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

  push(event: WatchEvent, now: number): void {
    this.events.push(event);
    this.lastSentAt = now;
    this.notify();
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
    let count = 0;
    for (const watchers of this.byConcert.values()) count += watchers.size;
    return count;
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
   * Ends quietly when `signal` aborts (the client went away), and throws why
   * when the token stops working or the server shuts down.
   */
  async *watch(session: Session, signal: AbortSignal): AsyncGenerator<WatchEvent> {
    if (this.stopping) throw shuttingDown();
    yield { kind: "status", status: session.status };
    if (session.status.state !== "waiting") {
      if (session.status.state === "admitted") {
        yield { kind: "admitted", expireTime: session.status.expireTime };
      }
      return;
    }
    const { principal } = session;
    const watcher = new Watcher(
      principal.tokenId,
      session.status.position,
      this.clock.now().getTime(),
    );
    this.add(principal.concertId, watcher);
    try {
      // stop() may have run while the first status was on its way out.
      if (this.stopping) throw shuttingDown();
      for (;;) {
        const event = watcher.events.shift();
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

  private add(concertId: string, watcher: Watcher): void {
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
    if (!watchers) return;
    watchers.delete(watcher);
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
