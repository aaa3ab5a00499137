import {
  type CallLimit,
  MemoryRateLimitStore,
  rateLimited,
  takeCallLimit,
} from "../ratelimit/index.js";
import { MemorySeatGate } from "./memory-seat-gate.js";
import { MinHeap } from "./min-heap.js";
import { drawOrder, newDrawSeed } from "./opening-draw.js";
import {
  QueueStateFile,
  type SavedConcert,
  type SavedState,
  type SavedToken,
  type StateSource,
} from "./queue-state-file.js";
import {
  ADMISSION_LOG,
  type Admission,
  type AdmissionBatch,
  type IssueInput,
  type IssueResult,
  type LineCounts,
  type LineDigest,
  type LineSettings,
  type LookupWithSeat,
  type OpeningDrawRecord,
  type QueueLimits,
  type QueueSnapshot,
  type QueueStore,
  type SeatRef,
  type StoredTokenState,
} from "./queue-store.js";
import { WaitingLine } from "./waiting-line.js";

/** Options of {@link MemoryQueueStore}. */
export interface MemoryQueueStoreOptions {
  /**
   * A file that keeps the line across restarts and crashes: read when the
   * store is constructed, then kept up to date by `checkpoint()` and
   * `close()` (see queue-state-file.ts; journals sit next to it).
   */
  readonly persistPath?: string;
  /** When the file's journals are folded into a new snapshot (see QueueStateFileOptions). */
  readonly compactAfterBytes?: number;
}

/** Same bound as the Redis scripts' BATCH: eviction work per call. */
const BATCH = 1000;

/** Same as the scripts' DEPARTURE_LOG: departures a digest can report incrementally. */
const DEPARTURE_LOG = 10_000;

/** Stale heap entries tolerated beyond twice the live ones before a rebuild. */
const HEAP_SLACK = 1024;

interface TokenRecord extends SavedToken {
  state: StoredTokenState;
  /** Given at the opening draw to a token issued into the lobby (0 until then). */
  seq: number;
  admissionExpiresAt: number;
  lastSeenAt: number;
  authenticates: boolean;
  dropAt: number;
}

interface ConcertLine {
  readonly id: string;
  readonly waiting: WaitingLine;
  /** Waiters by last activity (lazy). */
  readonly lastSeen: MinHeap;
  readonly admitted: Set<string>;
  /** Admitted tokens by admission expiry (lazy). */
  readonly expiries: MinHeap;
  version: number;
  /** Whole ms; undefined until the first admission ends. */
  averageMs: number | undefined;
  /** In the admitter's list (Redis: a member of the `concerts` set). */
  open: boolean;
  /** The next arrival number (Redis: `q:<c>:seq` + 1). */
  nextSeq: number;
  /** Departures from behind the head so far (Redis: `q:<c>:dn`). */
  departures: number;
  /** The seqs of the latest departures; `log[i]` is departure `logFirst + i` (Redis: `q:<c>:dl`). */
  log: number[];
  logFirst: number;
  /** Departed seqs, possibly below the head (Redis: `q:<c>:ds`, trimmed in promote). */
  departed: Set<number>;
  /** Admissions not drained yet (Redis: `q:al`); not kept in the file. */
  admissionLog: Omit<Admission, "highestBefore">[];
  /** Admissions drained or dropped from the log so far (Redis: `q:an`). */
  admissionCount: number;
  /** The highest arrival among the drained admissions (Redis: `q:ah`). */
  highestAdmitted: number;
  /** The concert's sale settings (Redis: `q:<c>:cfg`). */
  settings: LineSettings;
  /** Token ids waiting for the opening draw (Redis: `q:<c>:lobby`). */
  readonly lobby: Set<string>;
  /** The opening draw, once made (Redis: `q:<c>:draw` and `q:<c>:dorder`). */
  draw: OpeningDrawRecord | undefined;
}

/** No scheduled opening, not paused, the store's limits. */
const DEFAULT_SETTINGS: LineSettings = {
  opensAt: 0,
  paused: false,
  maxActive: 0,
  admissionTtlMs: 0,
  holdMs: 0,
};

/**
 * The in-process queue store for the embedded default (no Redis). Every
 * method runs synchronously to completion inside one call, which gives the
 * same atomicity as the Redis store's Lua scripts within one process, and
 * each rule mirrors the scripts step by step so both pass one contract suite.
 * It composes a {@link WaitingLine} per concert (positions in O(log n)),
 * {@link MinHeap}s for the time orders, and, with `persistPath`, a
 * {@link QueueStateFile}.
 *
 * With `persistPath` the line survives restarts and crashes: the constructor
 * loads the file, and every record is announced to it before it changes
 * (`changing(token)`, `beforeConcert`, `beforeUser`: call them BEFORE the
 * first change, never after), so `checkpoint()` (every few seconds) appends
 * only what changed since the last one (nothing when nothing did) and
 * `close()` the last changes. The files (mode 0600)
 * hold token ids and hashes only, never raw tokens. Only one process may use
 * a file.
 */
export class MemoryQueueStore implements QueueStore {
  /** The seat-state gate, in process like the line (it is never checkpointed). */
  readonly seats = new MemorySeatGate();
  private readonly limits: QueueLimits;
  private readonly file: QueueStateFile | undefined;
  private readonly tokens = new Map<string, TokenRecord>();
  /** Rate-limit buckets of the calls this store authenticates (keyed by concert). */
  private readonly buckets = new MemoryRateLimitStore();
  /** tokenHash → tokenId while the token authenticates. */
  private readonly hashes = new Map<string, string>();
  /** concertId → userId → the user's current tokenId. */
  private readonly users = new Map<string, Map<string, string>>();
  /** Insertion order = the order concerts got their first token. */
  private readonly lines = new Map<string, ConcertLine>();
  /** Tokens by dropAt (lazy), so forgotten records do not pile up. */
  private readonly drops = new MinHeap();
  /** Concerts whose waiting set shrank during the current call. */
  private readonly dirty = new Set<ConcertLine>();
  /** What the file reads: the current records. */
  private readonly source: StateSource;

  constructor(limits: QueueLimits, options: MemoryQueueStoreOptions = {}) {
    this.limits = limits;
    this.source = {
      token: (tokenId) => this.tokens.get(tokenId),
      concert: (concertId) => {
        const line = this.lines.get(concertId);
        return line === undefined ? undefined : savedConcert(line);
      },
      user: (concertId, userId) => this.users.get(concertId)?.get(userId),
      tokens: () => this.tokens.values(),
      concerts: () => [...this.lines.values()].map(savedConcert),
      users: () => this.userEntries(),
    };
    if (options.persistPath !== undefined) {
      const file = new QueueStateFile(options.persistPath, this.source, {
        compactAfterBytes: options.compactAfterBytes,
      });
      // Restored before the file is attached: restoring changes nothing to write.
      this.restore(file.load());
      this.file = file;
    }
  }

  async issue(input: IssueInput): Promise<IssueResult> {
    const { concertId, userId, tokenId, tokenHash, now } = input;
    if (input.limit !== undefined) this.takeLimitNow(concertId, input.limit, userId, now);
    this.sweep(now);
    const existing = this.lines.get(concertId);
    if (existing !== undefined) this.drawIfDue(existing, now);
    const oldId = this.users.get(concertId)?.get(userId);
    const old = oldId === undefined ? undefined : this.token(oldId, now);
    if (old !== undefined) {
      this.refresh(old, now);
      if (old.state === "waiting" || old.state === "admitted" || old.state === "lobby") {
        this.touch(old, now);
        this.promoteLine(concertId, now);
        this.flushDirty();
        return { created: false, snapshot: this.snapshot(old) };
      }
    }
    if (this.token(tokenId, now) !== undefined || this.hashes.has(tokenHash)) {
      this.flushDirty();
      throw new Error("stagedoor queue: token id or token hash already in use");
    }
    if (old !== undefined && old.state !== "left" && old.state !== "revoked") {
      this.revoke(old, now);
    }
    const line = this.lineFor(concertId);
    if (!line.open) {
      this.file?.beforeConcert(concertId);
      line.open = true;
    }
    this.file?.beforeToken(tokenId);
    const inLobby = lobbyOpen(line, now);
    const token: TokenRecord = {
      tokenId,
      userId,
      concertId,
      tokenHash,
      state: inLobby ? "lobby" : "waiting",
      issuedAt: now,
      admissionExpiresAt: 0,
      lastSeenAt: now,
      authenticates: true,
      dropAt: Number.POSITIVE_INFINITY,
      seq: inLobby ? 0 : line.nextSeq++,
    };
    this.tokens.set(tokenId, token);
    this.hashes.set(tokenHash, tokenId);
    this.file?.beforeUser(concertId, userId);
    this.usersOf(concertId).set(userId, tokenId);
    // The line moves first; a newcomer who then finds it empty and a place
    // free is admitted at once, as the next promotion would admit them,
    // without joining the line and leaving it again (nobody's position moves).
    // (A lobby is open only before its opening, so no draw is due here.)
    this.promoteLine(concertId, now);
    if (inLobby) {
      line.lobby.add(tokenId);
    } else if (line.waiting.size === 0 && this.placesFree(line) > 0) {
      this.admit(line, token, now);
    } else {
      line.waiting.push(tokenId);
      this.pushLastSeen(line, token);
    }
    this.flushDirty();
    return { created: true, snapshot: this.snapshot(token) };
  }

  async lookup(
    concertId: string,
    tokenHash: string,
    now: number,
    touch: boolean,
    limit?: CallLimit,
  ): Promise<QueueSnapshot | null> {
    this.sweep(now);
    const tokenId = this.hashes.get(tokenHash);
    const token = tokenId === undefined ? undefined : this.token(tokenId, now);
    if (token === undefined || !token.authenticates || token.concertId !== concertId) return null;
    this.refresh(token, now);
    if (touch) this.touch(token, now);
    this.flushDirty();
    const snapshot = this.snapshot(token);
    if (limit !== undefined) this.takeLimitNow(concertId, limit, token.userId, now);
    return snapshot;
  }

  /** Takes a call's rate-limit buckets (kept per concert or scope, like the Redis store's), or throws. */
  async takeLimit(scope: string, limit: CallLimit, userId: string, now: number): Promise<void> {
    this.takeLimitNow(scope, limit, userId, now);
  }

  /** {@link takeLimit}, at once (the buckets are in process). */
  private takeLimitNow(scope: string, limit: CallLimit, userId: string, now: number): void {
    const refusal = takeCallLimit(this.buckets, scope, limit, userId, now);
    if (refusal !== undefined) throw rateLimited(limit.action, refusal);
  }

  async lookupWithSeat(
    concertId: string,
    tokenHash: string,
    now: number,
    touch: boolean,
    seat: SeatRef,
    limit?: CallLimit,
  ): Promise<LookupWithSeat> {
    const snapshot = await this.lookup(concertId, tokenHash, now, touch, limit);
    return {
      snapshot,
      seat: this.seats.entry({ concertId, dateId: seat.dateId }, seat.seatId),
    };
  }

  async snapshots(
    concertId: string,
    tokenIds: readonly string[],
    now: number,
    touch: boolean,
  ): Promise<Map<string, QueueSnapshot | null>> {
    this.sweep(now);
    const found = new Map<string, TokenRecord>();
    for (const tokenId of tokenIds) {
      const token = this.token(tokenId, now);
      if (token === undefined || token.concertId !== concertId) continue;
      this.refresh(token, now);
      if (touch) this.touch(token, now);
      found.set(tokenId, token);
    }
    this.flushDirty();
    // As in the script: snapshots are taken after every token was refreshed.
    const result = new Map<string, QueueSnapshot | null>();
    for (const tokenId of tokenIds) {
      const token = found.get(tokenId);
      result.set(tokenId, token === undefined ? null : this.snapshot(token));
    }
    return result;
  }

  /** The script's `line-digest`. */
  async lineDigest(concertId: string, after: number): Promise<LineDigest> {
    const line = this.lines.get(concertId);
    if (line === undefined) {
      return {
        version: 0,
        head: 1,
        waitingCount: 0,
        averageAdmissionMs: this.limits.admissionTtlMs,
        departures: 0,
        reset: true,
        departed: [],
        paused: false,
      };
    }
    const head = this.head(line);
    const n = line.departures;
    // The log keeps at most DEPARTURE_LOG entries in Redis: the same cover here.
    const covered =
      after >= 0 && after <= n && n - after <= DEPARTURE_LOG && line.logFirst <= after + 1;
    const departed = covered
      ? line.log.slice(after + 1 - line.logFirst)
      : [...line.departed].filter((seq) => seq > head).sort((a, b) => a - b);
    return {
      version: line.version,
      head,
      waitingCount: line.waiting.size,
      averageAdmissionMs: line.averageMs ?? this.limits.admissionTtlMs,
      departures: n,
      reset: !covered,
      departed,
      paused: line.settings.paused,
    };
  }

  /** The script's `touch-many`. */
  async touchMany(concertId: string, tokenIds: readonly string[], now: number): Promise<number> {
    this.sweep(now);
    let touched = 0;
    for (const tokenId of tokenIds) {
      const token = this.tokens.get(tokenId);
      if (token === undefined || token.concertId !== concertId || token.state !== "waiting") {
        continue;
      }
      if (token.lastSeenAt < now - this.limits.idleMs || token.lastSeenAt >= now) continue;
      this.touch(token, now);
      touched++;
    }
    return touched;
  }

  async leave(concertId: string, tokenId: string, now: number): Promise<void> {
    this.sweep(now);
    const token = this.token(tokenId, now);
    if (token === undefined || token.concertId !== concertId) return;
    this.refresh(token, now);
    if (token.state === "left" || token.state === "revoked") {
      this.flushDirty();
      return;
    }
    const line = this.lineFor(token.concertId);
    if (token.state === "waiting") {
      this.leaveLine(line, token);
      this.dirty.add(line);
    } else if (token.state === "lobby") {
      line.lobby.delete(tokenId);
    } else if (token.state === "admitted" && line.admitted.delete(tokenId)) {
      this.fold(line, now - (token.admissionExpiresAt - this.ttlOf(line)));
    }
    this.changing(token).state = "left";
    this.unauthenticate(token);
    const users = this.users.get(token.concertId);
    if (users?.get(token.userId) === tokenId) {
      this.file?.beforeUser(token.concertId, token.userId);
      users.delete(token.userId);
    }
    this.setDrop(token, now + this.limits.graceMs);
    this.promoteLine(token.concertId, now);
    this.flushDirty();
  }

  async complete(concertId: string, tokenId: string, now: number): Promise<void> {
    this.sweep(now);
    const token = this.token(tokenId, now);
    if (token === undefined || token.concertId !== concertId) return;
    this.refresh(token, now);
    if (token.state !== "admitted") {
      this.flushDirty();
      return;
    }
    const line = this.lineFor(token.concertId);
    if (line.admitted.delete(tokenId)) {
      this.fold(line, now - (token.admissionExpiresAt - this.ttlOf(line)));
    }
    this.changing(token).state = "completed";
    this.promoteLine(token.concertId, now);
    this.flushDirty();
  }

  async promote(concertId: string, now: number): Promise<number> {
    this.sweep(now);
    const admitted = this.promoteLine(concertId, now);
    this.flushDirty();
    return admitted;
  }

  /**
   * Closes a concert's line once its sale has ended; the script's `retire`:
   * evicts up to a batch of waiters from the front and, once nobody waits,
   * takes the concert out of `concerts()`. Admissions run their course.
   */
  async retire(concertId: string, now: number): Promise<boolean> {
    this.sweep(now);
    const line = this.lines.get(concertId);
    if (line === undefined || !line.open) return true;
    for (const tokenId of line.lobby) {
      const token = this.tokens.get(tokenId);
      if (token !== undefined) this.evict(token, now);
    }
    line.lobby.clear();
    for (let evicted = 0; evicted < BATCH; evicted++) {
      const tokenId = line.waiting.popFront();
      if (tokenId === undefined) break;
      this.dirty.add(line);
      const token = this.tokens.get(tokenId);
      if (token !== undefined) this.evict(token, now);
    }
    this.flushDirty();
    if (line.waiting.size > 0) return false;
    this.file?.beforeConcert(concertId);
    line.open = false;
    // Nothing waits any more: the idle order has nothing left to find, and
    // no departure lies ahead of anyone.
    line.lastSeen.rebuild([]);
    line.log = [];
    line.logFirst = line.departures + 1;
    line.departed.clear();
    return true;
  }

  async concerts(): Promise<string[]> {
    const open: string[] = [];
    for (const [concertId, line] of this.lines) if (line.open) open.push(concertId);
    return open;
  }

  async versions(concertIds: readonly string[]): Promise<number[]> {
    return concertIds.map((concertId) => this.lines.get(concertId)?.version ?? 0);
  }

  /** What the Redis store reads with ZCARD and ZCOUNT. */
  async lineCounts(concertIds: readonly string[], now: number): Promise<LineCounts[]> {
    return concertIds.map((concertId) => {
      const line = this.lines.get(concertId);
      if (line === undefined) return { waiting: 0, admitted: 0 };
      let admitted = 0;
      for (const tokenId of line.admitted) {
        if ((this.tokens.get(tokenId)?.admissionExpiresAt ?? 0) > now) admitted++;
      }
      return { waiting: line.waiting.size, admitted };
    });
  }

  /** The script's `drain-admissions`: the order check's high-water mark is kept here. */
  async drainAdmissions(concertId: string): Promise<AdmissionBatch> {
    const line = this.lines.get(concertId);
    if (line === undefined) return { total: 0, admissions: [] };
    const admissions = line.admissionLog.map((logged) => {
      const admission = { ...logged, highestBefore: line.highestAdmitted };
      line.highestAdmitted = Math.max(line.highestAdmitted, logged.arrival);
      return admission;
    });
    line.admissionLog = [];
    line.admissionCount += admissions.length;
    return { total: line.admissionCount, admissions };
  }

  /** Writes the last changes (see {@link checkpoint}) and closes the file. */
  async close(): Promise<void> {
    await this.buckets.close();
    await this.file?.close();
  }

  /**
   * Appends what changed since the last checkpoint to the file, and nothing
   * when nothing did; now and then folds the journal into a new snapshot,
   * in slices. Called on an interval, so a crash (not just a clean restart)
   * loses at most one interval of the line.
   */
  async checkpoint(): Promise<void> {
    await this.file?.checkpoint();
  }

  /** The scripts' `configure`: refuses to move the opening once the lobby is drawn. */
  async configure(concertId: string, settings: LineSettings): Promise<boolean> {
    const line = this.lineFor(concertId);
    if (line.draw !== undefined && settings.opensAt !== line.settings.opensAt) return false;
    line.settings = { ...settings };
    return true;
  }

  async openingDraw(concertId: string): Promise<OpeningDrawRecord | null> {
    return this.lines.get(concertId)?.draw ?? null;
  }

  /**
   * The opening draw, if it is due (the prelude's `drawIfDue`): the lobby,
   * shuffled from a fresh seed (opening-draw.ts), joins the line in that
   * order, ahead of everyone who arrives later. One synchronous step, so it
   * happens exactly once.
   */
  private drawIfDue(line: ConcertLine, now: number): void {
    if (!drawDue(line, now)) return;
    const seed = newDrawSeed();
    const order = drawOrder(seed, [...line.lobby]);
    for (const tokenId of order) {
      const token = this.tokens.get(tokenId);
      if (token === undefined) continue;
      this.changing(token).state = "waiting";
      token.seq = line.nextSeq++;
      token.lastSeenAt = now;
      line.waiting.push(tokenId);
      this.pushLastSeen(line, token);
    }
    line.lobby.clear();
    line.draw = { drawnAt: now, seed, tokenIds: order };
    this.dirty.add(line);
  }

  /** How long an admission lasts in this line. */
  private ttlOf(line: ConcertLine): number {
    return line.settings.admissionTtlMs || this.limits.admissionTtlMs;
  }

  /** One promotion step; the script's `promote`. */
  private promoteLine(concertId: string, now: number): number {
    const line = this.lines.get(concertId);
    if (line === undefined) return 0;
    this.drawIfDue(line, now);
    const { idleMs } = this.limits;
    const admissionTtlMs = this.ttlOf(line);

    while ((line.expiries.peekKey() ?? Number.POSITIVE_INFINITY) <= now) {
      const tokenId = line.expiries.pop();
      if (tokenId === undefined || !line.admitted.delete(tokenId)) continue;
      this.fold(line, admissionTtlMs);
      const token = this.tokens.get(tokenId);
      if (token?.state === "admitted") this.changing(token).state = "expired";
    }

    const cutoff = now - idleMs;
    for (let evicted = 0; evicted < BATCH; ) {
      const key = line.lastSeen.peekKey();
      if (key === undefined || key >= cutoff) break;
      const tokenId = line.lastSeen.pop();
      const token = tokenId === undefined ? undefined : this.tokens.get(tokenId);
      if (token === undefined || !isCurrentWaiter(line, token, key)) continue;
      this.evict(token, now);
      evicted++;
    }

    let admitted = 0;
    let skipped = 0;
    let free = this.placesFree(line);
    while (free > 0 && skipped < BATCH) {
      const tokenId = line.waiting.popFront();
      if (tokenId === undefined) break;
      this.dirty.add(line);
      const token = this.tokens.get(tokenId);
      if (token === undefined) {
        skipped++;
      } else if (token.lastSeenAt < cutoff) {
        this.evict(token, now);
        skipped++;
      } else {
        this.admit(line, token, now);
        admitted++;
        free--;
      }
    }
    if (line.expiries.size > 2 * line.admitted.size + HEAP_SLACK) {
      line.expiries.rebuild(this.admittedEntries(line));
    }
    // The script trims q:<c>:ds below the head on every promote; the set is
    // trimmed here once it grows, which reads the same.
    if (line.departed.size > line.waiting.size + HEAP_SLACK) {
      const head = this.head(line);
      for (const seq of line.departed) if (seq < head) line.departed.delete(seq);
    }
    return admitted;
  }

  /** Places free for admissions (none while paused: waiters keep their place). */
  private placesFree(line: ConcertLine): number {
    if (line.settings.paused) return 0;
    return (line.settings.maxActive || this.limits.maxActive) - line.admitted.size;
  }

  /** Admits a token (from the line, or a newcomer) until now + the line's TTL, its record kept a grace longer; the script's `admit`. */
  private admit(line: ConcertLine, token: TokenRecord, now: number): void {
    const admissionTtlMs = this.ttlOf(line);
    this.changing(token).state = "admitted";
    token.admissionExpiresAt = now + admissionTtlMs;
    line.admitted.add(token.tokenId);
    line.expiries.push(token.admissionExpiresAt, token.tokenId);
    this.setDrop(token, now + admissionTtlMs + this.limits.graceMs);
    logAdmission(line, token, now);
  }

  /** Removes a waiter from behind the head, logging the departure; the script's `leaveLine`. */
  private leaveLine(line: ConcertLine, token: TokenRecord): boolean {
    if (!line.waiting.remove(token.tokenId)) return false;
    line.departures++;
    line.log.push(token.seq);
    if (line.log.length > 2 * DEPARTURE_LOG) {
      const drop = line.log.length - DEPARTURE_LOG;
      line.log.splice(0, drop);
      line.logFirst += drop;
    }
    line.departed.add(token.seq);
    return true;
  }

  /** The first waiter's seq, or the next seq when nobody waits. */
  private head(line: ConcertLine): number {
    const first = line.waiting.first();
    return first === undefined ? line.nextSeq : (this.tokens.get(first)?.seq ?? line.nextSeq);
  }

  /** Applies the time rules to one token as of now; the script's `refresh`. */
  private refresh(token: TokenRecord, now: number): void {
    if (token.state === "waiting") {
      if (token.lastSeenAt < now - this.limits.idleMs) this.evict(token, now);
    } else if (
      token.admissionExpiresAt <= now &&
      (token.state === "admitted" || token.state === "completed")
    ) {
      const line = this.lineFor(token.concertId);
      if (token.state === "admitted" && line.admitted.delete(token.tokenId)) {
        this.fold(line, this.ttlOf(line));
      }
      this.changing(token).state = "expired";
    }
  }

  private touch(token: TokenRecord, now: number): void {
    if (token.state !== "waiting" || now <= token.lastSeenAt) return;
    this.changing(token).lastSeenAt = now;
    this.pushLastSeen(this.lineFor(token.concertId), token);
  }

  private evict(token: TokenRecord, now: number): void {
    const line = this.lineFor(token.concertId);
    this.leaveLine(line, token);
    this.changing(token).state = "evicted";
    this.setDrop(token, now + this.limits.graceMs);
    this.dirty.add(line);
  }

  private revoke(token: TokenRecord, now: number): void {
    const line = this.lineFor(token.concertId);
    if (this.leaveLine(line, token)) this.dirty.add(line);
    line.admitted.delete(token.tokenId);
    this.changing(token).state = "revoked";
    this.unauthenticate(token);
    this.setDrop(token, now + this.limits.graceMs);
  }

  private fold(line: ConcertLine, ms: number): void {
    const sample = Math.max(0, ms);
    const mixed = line.averageMs === undefined ? sample : 0.8 * line.averageMs + 0.2 * sample;
    this.file?.beforeConcert(line.id);
    line.averageMs = Math.floor(mixed + 0.5);
  }

  private flushDirty(): void {
    for (const line of this.dirty) {
      this.file?.beforeConcert(line.id);
      line.version++;
    }
    this.dirty.clear();
  }

  /**
   * The token, announced to the file as about to change: call it before the
   * first change of a record in a call (see QueueStateFile.beforeToken).
   */
  private changing(token: TokenRecord): TokenRecord {
    this.file?.beforeToken(token.tokenId);
    return token;
  }

  private snapshot(token: TokenRecord): QueueSnapshot {
    const line = this.lineFor(token.concertId);
    const waiting = token.state === "waiting";
    return {
      tokenId: token.tokenId,
      userId: token.userId,
      concertId: token.concertId,
      state: token.state,
      position: waiting ? line.waiting.rank(token.tokenId) : 0,
      waitingCount: line.waiting.size,
      lastSeenAt: waiting ? token.lastSeenAt : 0,
      admissionExpiresAt: token.admissionExpiresAt,
      averageAdmissionMs: line.averageMs ?? this.limits.admissionTtlMs,
      arrival: waiting ? token.seq : 0,
      opensAt: lobbyPending(line) ? line.settings.opensAt : 0,
      paused: line.settings.paused,
      holdMs: line.settings.holdMs,
    };
  }

  /** The record, unless its grace period is over (then it is forgotten now). */
  private token(tokenId: string, now: number): TokenRecord | undefined {
    const token = this.tokens.get(tokenId);
    if (token !== undefined && token.dropAt <= now) {
      this.forget(token);
      return undefined;
    }
    return token;
  }

  /** Forgets records whose grace period is over, as Redis TTLs would. */
  private sweep(now: number): void {
    while ((this.drops.peekKey() ?? Number.POSITIVE_INFINITY) <= now) {
      const tokenId = this.drops.pop();
      const token = tokenId === undefined ? undefined : this.tokens.get(tokenId);
      if (token !== undefined && token.dropAt <= now) this.forget(token);
    }
  }

  private forget(token: TokenRecord): void {
    this.file?.beforeToken(token.tokenId);
    this.tokens.delete(token.tokenId);
    this.unauthenticate(token);
    const users = this.users.get(token.concertId);
    if (users?.get(token.userId) === token.tokenId) {
      this.file?.beforeUser(token.concertId, token.userId);
      users.delete(token.userId);
    }
  }

  private unauthenticate(token: TokenRecord): void {
    this.changing(token).authenticates = false;
    if (this.hashes.get(token.tokenHash) === token.tokenId) this.hashes.delete(token.tokenHash);
  }

  private setDrop(token: TokenRecord, dropAt: number): void {
    this.changing(token).dropAt = dropAt;
    this.drops.push(dropAt, token.tokenId);
    if (this.drops.size > 2 * this.tokens.size + HEAP_SLACK) {
      this.drops.rebuild(
        [...this.tokens.values()]
          .filter((t) => Number.isFinite(t.dropAt))
          .map((t) => [t.dropAt, t.tokenId] as const),
      );
    }
  }

  private pushLastSeen(line: ConcertLine, token: TokenRecord): void {
    line.lastSeen.push(token.lastSeenAt, token.tokenId);
    if (line.lastSeen.size > 2 * line.waiting.size + HEAP_SLACK) {
      line.lastSeen.rebuild(this.waitingEntries(line));
    }
  }

  private *waitingEntries(line: ConcertLine): Generator<readonly [number, string]> {
    for (const tokenId of line.waiting.inOrder()) {
      const token = this.tokens.get(tokenId);
      if (token !== undefined) yield [token.lastSeenAt, tokenId];
    }
  }

  private *admittedEntries(line: ConcertLine): Generator<readonly [number, string]> {
    for (const tokenId of line.admitted) {
      yield [this.tokens.get(tokenId)?.admissionExpiresAt ?? 0, tokenId];
    }
  }

  private *userEntries(): Generator<readonly [string, string, string]> {
    for (const [concertId, users] of this.users) {
      for (const [userId, tokenId] of users) yield [concertId, userId, tokenId];
    }
  }

  private lineFor(concertId: string): ConcertLine {
    let line = this.lines.get(concertId);
    if (line === undefined) {
      line = {
        id: concertId,
        waiting: new WaitingLine(),
        lastSeen: new MinHeap(),
        admitted: new Set(),
        expiries: new MinHeap(),
        version: 0,
        averageMs: undefined,
        open: true,
        nextSeq: 1,
        departures: 0,
        log: [],
        logFirst: 1,
        departed: new Set(),
        admissionLog: [],
        admissionCount: 0,
        highestAdmitted: 0,
        settings: DEFAULT_SETTINGS,
        lobby: new Set(),
        draw: undefined,
      };
      this.file?.beforeConcert(concertId);
      this.lines.set(concertId, line);
    }
    return line;
  }

  private usersOf(concertId: string): Map<string, string> {
    let users = this.users.get(concertId);
    if (users === undefined) {
      users = new Map();
      this.users.set(concertId, users);
    }
    return users;
  }

  /** Rebuilds the indexes from what the file restored. */
  private restore(saved: SavedState): void {
    for (const concert of saved.concerts.values()) {
      const line = this.lineFor(concert.id);
      line.version = concert.version;
      line.averageMs = concert.averageMs;
      line.open = concert.open;
    }
    const waiting: TokenRecord[] = [];
    for (const record of saved.tokens.values()) {
      const token: TokenRecord = { ...record };
      this.tokens.set(token.tokenId, token);
      const tokenLine = this.lineFor(token.concertId);
      tokenLine.nextSeq = Math.max(tokenLine.nextSeq, token.seq + 1);
      if (token.authenticates) this.hashes.set(token.tokenHash, token.tokenId);
      if (Number.isFinite(token.dropAt)) this.drops.push(token.dropAt, token.tokenId);
      if (token.state === "waiting") {
        waiting.push(token);
      } else if (token.state === "lobby") {
        // The settings come back from PostgreSQL at startup (mirrorAll).
        this.lineFor(token.concertId).lobby.add(token.tokenId);
      } else if (token.state === "admitted") {
        const line = this.lineFor(token.concertId);
        line.admitted.add(token.tokenId);
        line.expiries.push(token.admissionExpiresAt, token.tokenId);
      }
    }
    waiting.sort((a, b) => a.seq - b.seq);
    for (const token of waiting) this.lineFor(token.concertId).waiting.push(token.tokenId);
    for (const line of this.lines.values()) {
      line.lastSeen.rebuild(this.waitingEntries(line));
      // Every seq between the head and the next one that nobody holds has
      // departed (or was never given in this line, by files of an older
      // version that numbered arrivals across concerts): both count alike.
      const held = new Set<number>();
      for (const tokenId of line.waiting.inOrder()) held.add(this.tokens.get(tokenId)?.seq ?? 0);
      for (let seq = this.head(line) + 1; seq < line.nextSeq; seq++) {
        if (!held.has(seq)) line.departed.add(seq);
      }
    }
    for (const [concertId, users] of saved.users) {
      for (const [userId, tokenId] of users) this.usersOf(concertId).set(userId, tokenId);
    }
  }
}

function savedConcert(line: ConcertLine): SavedConcert {
  return { id: line.id, version: line.version, averageMs: line.averageMs, open: line.open };
}

/** Records one admission for the drain; the prelude's `logAdmission`. */
function logAdmission(line: ConcertLine, token: TokenRecord, now: number): void {
  line.admissionLog.push({ arrival: token.seq, joinedAt: token.issuedAt, admittedAt: now });
  if (line.admissionLog.length > ADMISSION_LOG) {
    line.admissionLog.shift();
    line.admissionCount++;
  }
}

/** Whether a lastSeen heap entry still describes a waiter in this line. */
function isCurrentWaiter(line: ConcertLine, token: TokenRecord, lastSeenAt: number): boolean {
  return (
    token.state === "waiting" && token.lastSeenAt === lastSeenAt && line.waiting.has(token.tokenId)
  );
}

/** Whether an opening is scheduled and its lobby not drawn yet. */
function lobbyPending(line: ConcertLine): boolean {
  return line.settings.opensAt > 0 && line.draw === undefined;
}

/** Whether a token issued now goes to the lobby. */
function lobbyOpen(line: ConcertLine, now: number): boolean {
  return lobbyPending(line) && now < line.settings.opensAt;
}

/**
 * Whether the lobby is to be drawn now: the opening has come, or it was
 * cleared while fans waited in the lobby.
 */
function drawDue(line: ConcertLine, now: number): boolean {
  if (line.draw !== undefined) return false;
  if (line.settings.opensAt > 0) return now >= line.settings.opensAt;
  return line.lobby.size > 0;
}
