import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "../../logger.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError, shuttingDown } from "../../shared/domain-error.js";
import { MinHeap } from "./min-heap.js";
import type { QueueService, QueueStatusView, Session } from "./queue.service.js";
import type { LineDigest, QueueSnapshot, QueueStore } from "./queue-store.js";

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
  /** Waiters at most this far from the front (2 × QUEUE_MAX_ACTIVE) count as near it. */
  readonly frontSize: number;
  /** The longest a waiter near the front may see an old position (ms). */
  readonly frontEveryMs: number;
  /** The longest any other waiter may see an old position (ms). */
  readonly farEveryMs: number;
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
  /** The position the reader was last shown. */
  lastPosition: number;
  lastSentAt: number;
  /** When the stream last counted as activity for its token. */
  lastSeenAt: number;
  /** The {@link LineWatch.generation} its position was last derived from. */
  generation = -1;
  /** Near the front (visited every frontEveryMs) or not (every farEveryMs). */
  near: boolean;
  /** Set once the stream is told it was admitted or failed: nothing more to do for it. */
  finished = false;
  /** Whether the reader was last shown admission as paused. */
  paused = false;
  private wake: (() => void) | undefined;

  constructor(
    readonly tokenId: string,
    readonly concertId: string,
    /** Its arrival number in the line (see LineDigest). */
    readonly arrival: number,
    /** Which slot of its group's rotation visits it. */
    readonly phase: number,
    position: number,
    lastSeenAt: number,
    now: number,
    near: boolean,
  ) {
    this.lastPosition = position;
    this.lastSentAt = now;
    this.lastSeenAt = lastSeenAt;
    this.near = near;
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
    this.finished = true;
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

/** A group of watchers visited in rotation: slot `s` of the rotation visits `slots[s]`. */
class Rotation {
  readonly slots: Set<Watcher>[];
  /** The line generation each slot was last visited at; -1 forces the next visit. */
  readonly visited: number[];

  constructor(size: number) {
    this.slots = Array.from({ length: size }, () => new Set<Watcher>());
    this.visited = Array.from({ length: size }, () => -1);
  }

  slotOf(watcher: Watcher): number {
    return watcher.phase % this.slots.length;
  }

  add(watcher: Watcher): void {
    const slot = this.slotOf(watcher);
    this.slots[slot]?.add(watcher);
    this.visited[slot] = -1;
  }

  delete(watcher: Watcher): void {
    this.slots[this.slotOf(watcher)]?.delete(watcher);
  }
}

/**
 * What this process knows of one concert's line, from its digests (see
 * LineDigest), and the streams that watch it.
 */
class LineWatch {
  /** The digest's version, or -1 before the first digest. */
  version = -1;
  head = 0;
  waitingCount = 0;
  averageAdmissionMs = 0;
  /** Whether admission is paused, as of the last digest. */
  paused = false;
  /** The departure count of the last digest; -1 before the first. */
  departures = -1;
  /** Departed arrival numbers above the head, ascending. */
  departed: number[] = [];
  /** Bumped whenever a digest changed what positions derive from. */
  generation = 0;
  readonly watchers = new Set<Watcher>();
  readonly byArrival = new Map<number, Set<Watcher>>();
  /** Every watcher's arrival, to find those the head passed (lazy: stale entries are skipped). */
  readonly byHead = new MinHeap();
  /** Watchers not yet near the front, by arrival, to move them near as the line moves. */
  readonly farByArrival = new MinHeap();
  /** Watchers whose token must be read exactly (it left the line, or may have). */
  readonly unsure = new Set<Watcher>();
  readonly near: Rotation;
  readonly far: Rotation;

  constructor(nearSlots: number, farSlots: number) {
    this.near = new Rotation(nearSlots);
    this.far = new Rotation(farSlots);
  }

  /** The 1-based position of a waiter who arrived `arrival`th, as of the last digest. */
  position(arrival: number): number {
    return 1 + (arrival - this.head) - lowerBound(this.departed, arrival);
  }

  /** Whether the waiter who arrived `arrival`th is known to have left the line. */
  hasLeft(arrival: number): boolean {
    if (arrival < this.head) return true;
    const i = lowerBound(this.departed, arrival);
    return this.departed[i] === arrival;
  }

  /** Takes in a digest; returns the arrivals of watchers that left since the last one. */
  apply(digest: LineDigest): void {
    const head = digest.head;
    const fresh = digest.departed.filter((seq) => seq > head).sort((a, b) => a - b);
    let departed: number[];
    if (digest.reset) {
      departed = fresh;
      // Anyone may have left unseen: check every watcher against the full set.
      for (const watcher of this.watchers) {
        if (arrivalIn(departed, watcher.arrival)) this.unsure.add(watcher);
      }
    } else {
      departed = mergeAbove(this.departed, fresh, head);
      for (const seq of fresh) {
        for (const watcher of this.byArrival.get(seq) ?? []) this.unsure.add(watcher);
      }
    }
    while ((this.byHead.peekKey() ?? Number.POSITIVE_INFINITY) < head) {
      const seq = Number(this.byHead.pop());
      for (const watcher of this.byArrival.get(seq) ?? []) this.unsure.add(watcher);
    }
    this.departed = departed;
    this.head = head;
    this.version = digest.version;
    this.waitingCount = digest.waitingCount;
    this.averageAdmissionMs = digest.averageAdmissionMs;
    this.paused = digest.paused;
    this.departures = digest.departures;
    this.generation++;
  }

  add(watcher: Watcher): void {
    this.watchers.add(watcher);
    let same = this.byArrival.get(watcher.arrival);
    if (same === undefined) {
      same = new Set();
      this.byArrival.set(watcher.arrival, same);
      this.byHead.push(watcher.arrival, String(watcher.arrival));
    }
    same.add(watcher);
    if (watcher.near) {
      this.near.add(watcher);
    } else {
      this.far.add(watcher);
      this.farByArrival.push(watcher.arrival, String(watcher.arrival));
    }
    // It may have left between its first status and now, in a change a
    // digest already brought: read it exactly on the next tick.
    if (this.departures >= 0 && this.hasLeft(watcher.arrival)) this.unsure.add(watcher);
  }

  delete(watcher: Watcher): boolean {
    if (!this.watchers.delete(watcher)) return false;
    const same = this.byArrival.get(watcher.arrival);
    same?.delete(watcher);
    if (same?.size === 0) this.byArrival.delete(watcher.arrival);
    (watcher.near ? this.near : this.far).delete(watcher);
    this.unsure.delete(watcher);
    if (this.byHead.size > 2 * this.byArrival.size + HEAP_SLACK) {
      this.byHead.rebuild([...this.byArrival.keys()].map((seq) => [seq, String(seq)] as const));
    }
    if (this.farByArrival.size > 2 * this.far.slots.length + 2 * this.watchers.size + HEAP_SLACK) {
      this.farByArrival.rebuild(
        [...this.watchers]
          .filter((w) => !w.near)
          .map((w) => [w.arrival, String(w.arrival)] as const),
      );
    }
    return true;
  }

  /** Moves the watchers that came near the front into the near rotation. */
  promoteNear(frontSize: number): void {
    for (;;) {
      const seq = this.farByArrival.peekKey();
      if (seq === undefined || (seq >= this.head && this.position(seq) > frontSize)) return;
      this.farByArrival.pop();
      for (const watcher of this.byArrival.get(seq) ?? []) {
        if (watcher.near) continue;
        this.far.delete(watcher);
        watcher.near = true;
        this.near.add(watcher);
      }
    }
  }
}

/** Stale heap entries tolerated beyond twice the live ones before a rebuild. */
const HEAP_SLACK = 1024;

/** The index of the first element of ascending `values` not below `value`. */
function lowerBound(values: readonly number[], value: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((values[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function arrivalIn(values: readonly number[], value: number): boolean {
  return values[lowerBound(values, value)] === value;
}

/** Merges ascending `fresh` into ascending `known`, keeping values above `head`, without duplicates. */
function mergeAbove(known: readonly number[], fresh: readonly number[], head: number): number[] {
  const out: number[] = [];
  let i = lowerBound(known, head + 1);
  let j = 0;
  while (i < known.length || j < fresh.length) {
    const a = known[i] ?? Number.POSITIVE_INFINITY;
    const b = fresh[j] ?? Number.POSITIVE_INFINITY;
    const next = Math.min(a, b);
    if (a <= b) i++;
    else j++;
    if (out[out.length - 1] !== next) out.push(next);
  }
  return out;
}

/**
 * Fans queue positions out to every open watch stream of this process with one
 * shared ticker, at a cost that grows with the concerts watched, not with the
 * watchers. Each tick reads one change counter per concert; for a concert whose
 * line moved it reads one {@link LineDigest} (the head of the line and the
 * departures since the last digest), from which every watcher's position is
 * derived in process. Only watchers whose token left the line (admitted,
 * evicted, gone) are read exactly, in one batched call.
 *
 * Updates are staggered by distance from the front: each tick visits one
 * slot of two rotations, so a watcher near the front (within `frontSize`)
 * sees a new position within `frontEveryMs` and anyone else within
 * `farEveryMs`, and a stream hears only of a position lower than the one it
 * was last shown. Heartbeats and touches (activity that keeps a watcher's
 * place) go out in the order they fell due, touches batched per concert.
 */
export class QueueWatchHub {
  private readonly lines = new Map<string, LineWatch>();
  /** Open streams per token id. */
  private readonly byToken = new Map<string, number>();
  private count = 0;
  /** Every stream, oldest send first (a push moves it to the end). */
  private readonly bySent = new Set<Watcher>();
  /** Every stream, oldest activity first (a touch moves it to the end). */
  private readonly bySeen = new Set<Watcher>();
  private readonly nearSlots: number;
  private readonly farSlots: number;
  private nextPhase = 0;
  /** The last rotation slot visited (slots are `now / tickMs`). */
  private lastSlot: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private stopping = false;

  constructor(
    private readonly queue: QueueService,
    private readonly store: QueueStore,
    private readonly clock: Clock,
    private readonly options: WatchHubOptions,
    private readonly logger: Logger,
  ) {
    // A change is seen at most a tick late, and its slot comes round at
    // most slots-1 ticks later: slots of (every - tick) / tick keep both
    // within `every`, with a tick to spare for timer drift.
    const slots = (everyMs: number) =>
      Math.max(1, Math.floor((everyMs - options.tickMs) / options.tickMs));
    this.nearSlots = slots(options.frontEveryMs);
    this.farSlots = slots(options.farEveryMs);
  }

  /** How many streams are open right now. */
  get size(): number {
    return this.count;
  }

  /** How many events wait for readers across all open streams (at most one per stream). */
  get buffered(): number {
    let total = 0;
    for (const watcher of this.bySent) total += watcher.buffered;
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
    for (const watcher of this.bySent) watcher.fail(shuttingDown());
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
    if (session.status.state === "lobby") {
      const drawn = yield* this.watchLobby(session, signal);
      if (drawn === undefined) return;
      session = drawn;
    }
    if (session.status.state !== "waiting") {
      yield { kind: "status", status: session.status };
      if (session.status.state === "admitted") {
        yield { kind: "admitted", expireTime: session.status.expireTime };
      }
      return;
    }
    const { principal, status } = session;
    // Counted before the first status goes out, so streams opened at once
    // cannot all slip under the limits.
    this.admit(principal.tokenId);
    const watcher = new Watcher(
      principal.tokenId,
      principal.concertId,
      session.arrival,
      this.nextPhase++,
      status.position,
      this.queue.lastSeenAt(status.expireTime),
      this.clock.now().getTime(),
      status.position <= this.options.frontSize,
    );
    watcher.paused = status.admissionPaused;
    this.add(watcher);
    try {
      yield { kind: "status", status };
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
      this.remove(watcher);
    }
  }

  /**
   * Streams a lobby session until the opening draw places it in the line:
   * its status (with the opening, for a countdown) first, then it reads the
   * token again once the opening has come (every `frontEveryMs` after it)
   * and, before that, every `heartbeatMs` (so a moved opening shows), with a
   * heartbeat when nothing changed. Returns the session once it is no
   * longer in the lobby, or undefined when the stream is over.
   */
  private async *watchLobby(
    session: Session,
    signal: AbortSignal,
  ): AsyncGenerator<WatchEvent, Session | undefined> {
    let status = session.status;
    yield { kind: "status", status };
    while (!signal.aborted && !this.stopping) {
      const now = this.clock.now().getTime();
      const opensAt = status.opensAt?.getTime() ?? now;
      const waitMs =
        opensAt > now
          ? Math.min(opensAt - now, this.options.heartbeatMs)
          : this.options.frontEveryMs;
      await delay(waitMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return undefined;
      if (this.stopping) throw shuttingDown();
      const fresh = await this.queue.refresh(session.principal, false);
      // A token gone from the store: session() throws why.
      if (fresh === null) return this.queue.session(null);
      if (fresh.status.state !== "lobby") return fresh;
      const changed =
        fresh.status.opensAt?.getTime() !== status.opensAt?.getTime() ||
        fresh.status.admissionPaused !== status.admissionPaused;
      status = fresh.status;
      yield changed ? { kind: "status", status } : { kind: "heartbeat", at: new Date(now) };
    }
    if (this.stopping) throw shuttingDown();
    return undefined;
  }

  /** One pass of the ticker; exposed for tests that drive time themselves. */
  async tick(): Promise<void> {
    if (this.ticking || this.lines.size === 0) return;
    this.ticking = true;
    try {
      const now = this.clock.now().getTime();
      const slot = Math.floor(now / this.options.tickMs);
      const from = this.lastSlot === undefined ? slot : this.lastSlot + 1;
      const concertIds = [...this.lines.keys()];
      const versions = await this.store.versions(concertIds);
      for (const [index, concertId] of concertIds.entries()) {
        const line = this.lines.get(concertId);
        if (line === undefined) continue;
        if (line.departures < 0 || line.version !== versions[index]) {
          line.apply(await this.store.lineDigest(concertId, line.departures));
          line.promoteNear(this.options.frontSize);
        }
        if (line.unsure.size > 0) await this.readExactly(line, now);
        this.visit(line, from, slot, now);
      }
      this.lastSlot = slot;
      await this.touchDue(now);
      this.heartbeatDue(now);
    } catch (error) {
      // A store hiccup delays updates by a tick; the streams stay open.
      this.logger.warn({ err: error }, "queue watch tick failed");
    } finally {
      this.ticking = false;
    }
  }

  /** Visits the rotation slots from..to (at most one full turn of each). */
  private visit(line: LineWatch, from: number, to: number, now: number): void {
    const visitSlots = (rotation: Rotation) => {
      const size = rotation.slots.length;
      for (let s = Math.max(from, to - size + 1); s <= to; s++) {
        const index = ((s % size) + size) % size;
        if (rotation.visited[index] === line.generation) continue;
        rotation.visited[index] = line.generation;
        for (const watcher of rotation.slots[index] ?? []) this.update(line, watcher, now);
      }
    };
    visitSlots(line.near);
    visitSlots(line.far);
  }

  /** Shows a watcher its derived position, if the line moved it closer. */
  private update(line: LineWatch, watcher: Watcher, now: number): void {
    if (watcher.generation === line.generation || watcher.finished) return;
    watcher.generation = line.generation;
    if (line.unsure.has(watcher) || line.hasLeft(watcher.arrival)) return;
    const position = line.position(watcher.arrival);
    // A waiter's position never grows (newcomers join behind): a higher one
    // only means this process's digest is older than what the stream showed.
    // A pause or resume is shown even when the position stays.
    const moved = position < watcher.lastPosition;
    if (!moved && watcher.paused === line.paused) return;
    if (moved) watcher.lastPosition = position;
    watcher.paused = line.paused;
    const status = this.queue.waitingStatus(watcher.concertId, {
      position: watcher.lastPosition,
      waitingCount: line.waitingCount,
      averageAdmissionMs: line.averageAdmissionMs,
      lastSeenAt: watcher.lastSeenAt,
      paused: line.paused,
    });
    this.send(watcher, { kind: "status", status }, now);
  }

  /** Reads the tokens of the line's unsure watchers exactly, in one call. */
  private async readExactly(line: LineWatch, now: number): Promise<void> {
    const watchers = [...line.unsure];
    const tokenIds = [...new Set(watchers.map((w) => w.tokenId))];
    const concertId = watchers[0]?.concertId ?? "";
    const snapshots = await this.store.snapshots(concertId, tokenIds, now, false);
    for (const watcher of watchers) {
      line.unsure.delete(watcher);
      this.deliver(watcher, snapshots.get(watcher.tokenId) ?? null, now);
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
      watcher.finished = true;
      this.send(watcher, { kind: "admitted", expireTime: status.expireTime }, now);
    } else if (status.position !== watcher.lastPosition) {
      watcher.lastPosition = status.position;
      this.send(watcher, { kind: "status", status }, now);
    }
  }

  /** Touches, per concert in one call, the tokens whose streams last counted as activity touchEveryMs ago. */
  private async touchDue(now: number): Promise<void> {
    const due = new Map<string, Watcher[]>();
    for (const watcher of this.bySeen) {
      if (now - watcher.lastSeenAt < this.options.touchEveryMs) break;
      if (watcher.finished) continue;
      let watchers = due.get(watcher.concertId);
      if (watchers === undefined) {
        watchers = [];
        due.set(watcher.concertId, watchers);
      }
      watchers.push(watcher);
    }
    for (const [concertId, watchers] of due) {
      const tokenIds = [...new Set(watchers.map((w) => w.tokenId))];
      await this.store.touchMany(concertId, tokenIds, now);
      for (const watcher of watchers) {
        watcher.lastSeenAt = now;
        this.bySeen.delete(watcher);
        this.bySeen.add(watcher);
      }
    }
  }

  /** Sends a heartbeat on the streams silent for heartbeatMs. */
  private heartbeatDue(now: number): void {
    const due: Watcher[] = [];
    for (const watcher of this.bySent) {
      if (now - watcher.lastSentAt < this.options.heartbeatMs) break;
      due.push(watcher);
    }
    for (const watcher of due) this.send(watcher, { kind: "heartbeat", at: new Date(now) }, now);
  }

  private send(watcher: Watcher, event: WatchEvent, now: number): void {
    watcher.push(event, now);
    this.bySent.delete(watcher);
    this.bySent.add(watcher);
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

  private add(watcher: Watcher): void {
    this.count += 1;
    this.byToken.set(watcher.tokenId, (this.byToken.get(watcher.tokenId) ?? 0) + 1);
    let line = this.lines.get(watcher.concertId);
    if (line === undefined) {
      line = new LineWatch(this.nearSlots, this.farSlots);
      this.lines.set(watcher.concertId, line);
    }
    line.add(watcher);
    this.bySent.add(watcher);
    this.bySeen.add(watcher);
    // bySeen is kept in activity order: a stream whose token was seen earlier
    // than the newest one goes through the due check like the others; being
    // appended, it is at worst touched a little late (the place lasts idleMs,
    // three touch intervals).
  }

  private remove(watcher: Watcher): void {
    const line = this.lines.get(watcher.concertId);
    if (!line?.delete(watcher)) return;
    this.count -= 1;
    this.bySent.delete(watcher);
    this.bySeen.delete(watcher);
    const open = (this.byToken.get(watcher.tokenId) ?? 1) - 1;
    if (open === 0) this.byToken.delete(watcher.tokenId);
    else this.byToken.set(watcher.tokenId, open);
    if (line.watchers.size === 0) this.lines.delete(watcher.concertId);
  }
}
