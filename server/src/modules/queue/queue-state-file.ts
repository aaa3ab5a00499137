import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, unlinkSync } from "node:fs";
import { type FileHandle, mkdir, open, rename, rm, unlink } from "node:fs/promises";
import path from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { z } from "zod";
import type { StoredTokenState } from "./queue-store.js";

/** A token's record as the in-process store keeps it and its file saves it. */
export interface SavedToken {
  readonly tokenId: string;
  readonly userId: string;
  readonly concertId: string;
  readonly tokenHash: string;
  readonly state: StoredTokenState;
  readonly issuedAt: number;
  /** 0 before admission. */
  readonly admissionExpiresAt: number;
  /** Meaningful while waiting. */
  readonly lastSeenAt: number;
  /** Whether the hash still authenticates (Redis: the `t:` key exists). */
  readonly authenticates: boolean;
  /** When the record is forgotten (Redis: the `s:` key's TTL); Infinity while waiting. */
  readonly dropAt: number;
  /** Arrival order: a concert's waiters stand in line by ascending `seq`. */
  readonly seq: number;
}

/** A concert's own facts (its line is made of its tokens). */
export interface SavedConcert {
  readonly id: string;
  readonly version: number;
  /** Whole ms; undefined until the first admission ends. */
  readonly averageMs: number | undefined;
  /** Whether the concert is in the admitter's list (`concerts()`). */
  readonly open: boolean;
}

/** What a file restores. */
export interface SavedState {
  /** In the order the concerts first appeared. */
  readonly concerts: Map<string, SavedConcert>;
  readonly tokens: Map<string, SavedToken>;
  /** concertId → userId → the user's current tokenId. */
  readonly users: Map<string, Map<string, string>>;
}

/** The store as its file reads it: the current records, by key or all of them. */
export interface StateSource {
  token(tokenId: string): SavedToken | undefined;
  concert(concertId: string): SavedConcert | undefined;
  user(concertId: string, userId: string): string | undefined;
  tokens(): Iterable<SavedToken>;
  concerts(): Iterable<SavedConcert>;
  users(): Iterable<readonly [concertId: string, userId: string, tokenId: string]>;
}

/** Options of {@link QueueStateFile}. */
export interface QueueStateFileOptions {
  /**
   * Journals are folded into a new snapshot once they are larger than both
   * this and the last snapshot, so the files stay within about twice the
   * line's size and a restart replays no more than it loads.
   */
  readonly compactAfterBytes?: number;
  /** Records serialised between two turns of the event loop. */
  readonly sliceRecords?: number;
}

const DEFAULT_COMPACT_AFTER_BYTES = 8 * 1024 * 1024;
/**
 * About 2–4 ms of JSON.stringify on a 2020s core: slices this small keep any
 * single turn of the event loop far under the 20 ms budget.
 */
const DEFAULT_SLICE_RECORDS = 1000;
const FORMAT = "stagedoor-memory-queue";

const STATES = [
  "lobby",
  "waiting",
  "admitted",
  "completed",
  "expired",
  "evicted",
  "left",
  "revoked",
] as const satisfies readonly StoredTokenState[];
const STATE_SET: ReadonlySet<string> = new Set(STATES);

/*
 * The line on disk is a snapshot plus journals (justification of the design):
 *
 * - `<file>` is a snapshot: a header line `{"format","version":2,"journal":k}`,
 *   one JSON record per line, and an end line `["end", count]`. It is
 *   replaced atomically (temp file, fsync, rename, fsync of the folder).
 * - `<file>.<n>.journal` (n ≥ k) are append-only journals of batches. A batch
 *   is the current records of everything that changed since the previous
 *   batch (`["t", …]` a token, `["-t", id]` a forgotten token, `["c", …]` a
 *   concert, `["u", c, u, tid]` / `["-u", c, u]` a user's current token),
 *   then a commit line `["k", n, count]`, then an fsync. Records are whole
 *   upserts, so replaying them is idempotent and the last one wins.
 *
 * Restoring reads the snapshot and replays the journals numbered k and up in
 * order, each up to its last complete commit: a crash in the middle of a
 * batch (torn line, missing commit) loses that batch and nothing else, so
 * the line comes back as of the last committed batch, a state it really was
 * in, never a mix.
 *
 * A checkpoint with nothing changed writes nothing. A batch costs what
 * changed, not the size of the line, and is still one instant although it
 * is read and serialised in slices of `sliceRecords` between turns of the
 * event loop: the store announces each record before it changes it, and a
 * record the batch has not read yet is copied as it was first (copy on
 * write; see `beforeToken`). The snapshot (compaction) is written the
 * same way, in slices, while the store keeps serving: it is fuzzy (records
 * are read at different instants), which the journal makes exact. Before
 * the first slice, batches switch to a fresh journal k+1; after the last,
 * one more batch captures everything that changed meanwhile; only then is
 * the snapshot renamed into place naming journal k+1. Snapshot + journal k+1
 * therefore replays every record to its value at that batch or later, and a
 * crash before the rename still finds the old snapshot and journals k, k+1.
 *
 * Why not serialise the whole line on a worker thread instead: the worker
 * would need the line first, and copying 200,000 records across threads
 * (structured clone) blocks the main thread about as long as stringifying
 * them did, unless the worker keeps a mirror fed with changes, which is this
 * journal with extra moving parts. Here nothing ever serialises the whole
 * line in one go, and the event loop stays free within each slice.
 */
export class QueueStateFile {
  private readonly dir: string;
  private readonly compactAfterBytes: number;
  private readonly sliceRecords: number;
  /** The journal number the current snapshot names (0: no snapshot yet). */
  private snapshotJournal = 0;
  private snapshotBytes = 0;
  /** Journals on disk that belong to the current snapshot, ascending. */
  private journals: { n: number; bytes: number }[] = [];
  /** The journal this process appends to, once it has written a batch. */
  private journal: { n: number; handle: FileHandle; bytes: number; batches: number } | undefined;
  /** The number of the next journal this process opens. */
  private nextJournal = 1;
  private readonly tokens: Changes;
  private readonly concerts: Changes;
  /** Keyed `${concertId}\u0000${userId}`. */
  private readonly users: Changes;
  /** Batches and compactions run one after another, never interleaved. */
  private tail: Promise<void> = Promise.resolve();
  private closing = false;
  private readonly source: StateSource;

  constructor(
    readonly file: string,
    source: StateSource,
    options: QueueStateFileOptions = {},
  ) {
    this.tokens = new Changes((tokenId) => {
      const token = source.token(tokenId);
      return token === undefined ? ["-t", tokenId] : encodeToken(token);
    });
    this.concerts = new Changes((concertId) => {
      const concert = source.concert(concertId);
      return concert === undefined ? undefined : encodeConcert(concert);
    });
    this.users = new Changes((key) => {
      const cut = key.indexOf("\u0000");
      const [concertId, userId] = [key.slice(0, cut), key.slice(cut + 1)];
      const tokenId = source.user(concertId, userId);
      return tokenId === undefined ? ["-u", concertId, userId] : ["u", concertId, userId, tokenId];
    });
    this.source = source;
    this.dir = path.dirname(file);
    this.compactAfterBytes = options.compactAfterBytes ?? DEFAULT_COMPACT_AFTER_BYTES;
    this.sliceRecords = Math.max(1, options.sliceRecords ?? DEFAULT_SLICE_RECORDS);
  }

  /**
   * Reads the snapshot and replays its journals (synchronously: the store
   * needs its line before it serves). Deletes what a crash left behind:
   * temp files and journals older than the snapshot.
   */
  load(): SavedState {
    const state: SavedState = { concerts: new Map(), tokens: new Map(), users: new Map() };
    let text: string | undefined;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new Error(`cannot read the saved queue at ${this.file}`, { cause: err });
      }
    }
    if (text !== undefined) {
      try {
        this.snapshotJournal = readSnapshot(text, state);
      } catch (err) {
        // Starting empty would silently drop everyone's place in line.
        throw new Error(`the saved queue at ${this.file} is unreadable; fix or remove it`, {
          cause: err,
        });
      }
      this.snapshotBytes = Buffer.byteLength(text);
    }
    const base = path.basename(this.file);
    let names: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    const found: number[] = [];
    for (const name of names) {
      if (!name.startsWith(`${base}.`)) continue;
      const rest = name.slice(base.length + 1);
      const journal = /^(\d+)\.journal$/.exec(rest);
      if (journal) {
        found.push(Number(journal[1]));
      } else if (rest.endsWith(".tmp")) {
        unlinkSync(path.join(this.dir, name));
      }
    }
    found.sort((a, b) => a - b);
    for (const n of found) {
      const file = this.journalFile(n);
      if (n < this.snapshotJournal) {
        unlinkSync(file);
        continue;
      }
      const journalText = readFileSync(file, "utf8");
      replayJournal(journalText, state);
      this.journals.push({ n, bytes: Buffer.byteLength(journalText) });
    }
    this.nextJournal = Math.max(this.snapshotJournal, found.at(-1) ?? 0) + 1;
    return state;
  }

  /*
   * The store calls these BEFORE it changes a record (or creates or forgets
   * it): a batch being written reads the records it holds slice by slice, and
   * a record it has not read yet is copied first, as it was when the batch
   * began (copy on write), so the batch stays one instant.
   */

  beforeToken(tokenId: string): void {
    this.tokens.before(tokenId);
  }

  beforeConcert(concertId: string): void {
    this.concerts.before(concertId);
  }

  beforeUser(concertId: string, userId: string): void {
    this.users.before(`${concertId}\u0000${userId}`);
  }

  /** Whether anything changed since the last batch began. */
  get changed(): boolean {
    return (
      this.tokens.pending.size > 0 || this.concerts.pending.size > 0 || this.users.pending.size > 0
    );
  }

  /**
   * Appends what changed since the last batch (nothing if nothing did), then
   * compacts if the journals have grown past their bound.
   */
  checkpoint(): Promise<void> {
    return this.serially(async () => {
      await this.appendBatch();
      if (!this.closing && this.compactionDue()) await this.writeSnapshot();
    });
  }

  /** Writes a new snapshot now (after a batch of what changed). */
  compact(): Promise<void> {
    return this.serially(async () => {
      await this.appendBatch();
      await this.writeSnapshot();
    });
  }

  /**
   * Appends the last changes and closes the journal. A compaction in
   * progress is abandoned (the journals keep everything), so shutdown never
   * waits for one.
   */
  close(): Promise<void> {
    this.closing = true;
    return this.serially(async () => {
      try {
        await this.appendBatch();
      } finally {
        await this.closeJournal();
      }
    });
  }

  private serially(task: () => Promise<void>): Promise<void> {
    const run = this.tail.then(task);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private compactionDue(): boolean {
    const bytes = this.journals.reduce((sum, journal) => sum + journal.bytes, 0);
    return bytes > Math.max(this.compactAfterBytes, this.snapshotBytes);
  }

  /**
   * One batch: the records of everything that changed, as of the instant it
   * begins (see the hooks above), read and written in slices.
   */
  private async appendBatch(): Promise<void> {
    if (!this.changed) return;
    const kinds = [this.concerts, this.users, this.tokens];
    for (const changes of kinds) changes.begin();
    let journal: NonNullable<typeof this.journal> | undefined;
    let bytes = 0;
    let count = 0;
    try {
      journal = await this.openJournal();
      let slice: unknown[][] = [];
      for (const changes of kinds) {
        for (const key of changes.capturing) {
          const record = changes.take(key);
          if (record !== undefined) slice.push(record);
          if (slice.length >= this.sliceRecords) {
            bytes += await append(journal.handle, slice);
            count += slice.length;
            slice = [];
            await nextTurn();
          }
        }
      }
      count += slice.length;
      slice.push(["k", journal.batches + 1, count]);
      bytes += await append(journal.handle, slice);
      await journal.handle.datasync();
      journal.batches++;
      journal.bytes += bytes;
      const listed = this.journals.find((j) => j.n === journal?.n);
      if (listed) listed.bytes = journal.bytes;
      for (const changes of kinds) changes.end(true);
    } catch (error) {
      // Whatever part of the batch reached the file has no commit line, so
      // replays ignore it; it is also cut off, or else this journal is left
      // for a fresh one. The records are written again with the next batch.
      for (const changes of kinds) changes.end(false);
      if (journal !== undefined) {
        const { handle } = journal;
        const cut = await handle.truncate(journal.bytes).then(
          () => true,
          () => false,
        );
        if (!cut) await this.closeJournal();
      }
      throw error;
    }
  }

  private async openJournal(): Promise<NonNullable<typeof this.journal>> {
    if (this.journal !== undefined) return this.journal;
    const n = this.nextJournal++;
    await mkdir(this.dir, { recursive: true });
    const handle = await open(this.journalFile(n), "a", 0o600);
    try {
      await handle.chmod(0o600);
      await syncFolder(this.dir);
    } catch (error) {
      await handle.close();
      throw error;
    }
    this.journal = { n, handle, bytes: 0, batches: 0 };
    this.journals.push({ n, bytes: 0 });
    return this.journal;
  }

  private async closeJournal(): Promise<void> {
    const journal = this.journal;
    this.journal = undefined;
    await journal?.handle.close().catch(() => undefined);
  }

  /** The compaction (see the comment above the class). */
  private async writeSnapshot(): Promise<void> {
    const source = this.source;
    // From here on, batches go to a fresh journal that the new snapshot names.
    await this.closeJournal();
    const n = this.nextJournal;
    await mkdir(this.dir, { recursive: true });
    const temp = `${this.file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
    const handle = await open(temp, "wx", 0o600);
    let bytes = 0;
    try {
      await handle.chmod(0o600);
      bytes += await append(handle, [{ format: FORMAT, version: 2, journal: n }]);
      let count = 0;
      let slice: unknown[][] = [];
      const flush = async () => {
        bytes += await append(handle, slice);
        count += slice.length;
        slice = [];
        await nextTurn();
        if (this.closing) throw new Error("the queue store closed during a compaction");
      };
      for (const concert of source.concerts()) slice.push(encodeConcert(concert));
      for (const [concertId, userId, tokenId] of source.users()) {
        slice.push(["u", concertId, userId, tokenId]);
        if (slice.length >= this.sliceRecords) await flush();
      }
      for (const token of source.tokens()) {
        slice.push(encodeToken(token));
        if (slice.length >= this.sliceRecords) await flush();
      }
      count += slice.length;
      slice.push(["end", count]);
      bytes += await append(handle, slice);
      await handle.sync();
    } catch (error) {
      await handle.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw error;
    }
    await handle.close();
    try {
      // Everything that changed while the slices were written, as of one
      // instant, into journal n: snapshot + journal n is that instant.
      await this.appendBatch();
      await rename(temp, this.file);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    await syncFolder(this.dir);
    const old = this.journals.filter((journal) => journal.n < n);
    this.journals = this.journals.filter((journal) => journal.n >= n);
    this.snapshotJournal = n;
    this.snapshotBytes = bytes;
    // Not needed by the new snapshot; a crash before this only leaves files the next start deletes.
    await Promise.all(old.map((journal) => unlink(this.journalFile(journal.n)).catch(() => {})));
  }

  private journalFile(n: number): string {
    return `${this.file}.${n}.journal`;
  }
}

/**
 * The keys of one kind of record that changed, and during a batch the ones
 * it has yet to read, with copies of those changed since it began.
 */
class Changes {
  /** Changed since the current batch began (or the last one, between batches). */
  pending = new Set<string>();
  /** The batch's keys not read yet; empty between batches. */
  capturing = new Set<string>();
  /** Records of `capturing` keys as they were when the batch began. */
  private readonly frozen = new Map<string, unknown[] | undefined>();
  /** Keys the batch has read, to be written again if it fails. */
  private taken: string[] = [];

  /** `encode(key)`: the current record, undefined when there is none to write. */
  constructor(private readonly encode: (key: string) => unknown[] | undefined) {}

  before(key: string): void {
    if (this.capturing.has(key) && !this.frozen.has(key)) this.frozen.set(key, this.encode(key));
    this.pending.add(key);
  }

  begin(): void {
    this.capturing = this.pending;
    this.pending = new Set();
  }

  take(key: string): unknown[] | undefined {
    const record = this.frozen.has(key) ? this.frozen.get(key) : this.encode(key);
    this.capturing.delete(key);
    this.taken.push(key);
    return record;
  }

  end(written: boolean): void {
    if (!written) {
      for (const key of this.taken) this.pending.add(key);
      for (const key of this.capturing) this.pending.add(key);
    }
    this.capturing = new Set();
    this.frozen.clear();
    this.taken = [];
  }
}

/** Appends records, one JSON line each; returns the bytes written. */
async function append(handle: FileHandle, records: readonly unknown[]): Promise<number> {
  if (records.length === 0) return 0;
  let text = "";
  for (const record of records) text += `${JSON.stringify(record)}\n`;
  await handle.appendFile(text, "utf8");
  return Buffer.byteLength(text);
}

/** Makes a rename or a new file in `dir` durable (best effort where folders cannot be opened). */
async function syncFolder(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch {
    // Not every platform lets a folder be opened or synced; the data itself is.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

function encodeToken(t: SavedToken): unknown[] {
  return [
    "t",
    t.tokenId,
    t.userId,
    t.concertId,
    t.tokenHash,
    t.state,
    t.issuedAt,
    t.admissionExpiresAt,
    t.lastSeenAt,
    t.authenticates ? 1 : 0,
    Number.isFinite(t.dropAt) ? t.dropAt : null,
    t.seq,
  ];
}

function encodeConcert(c: SavedConcert): unknown[] {
  return ["c", c.id, c.version, c.averageMs ?? null, c.open ? 1 : 0];
}

const isString = (v: unknown): v is string => typeof v === "string";
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Applies one record to `state`; false when it is not a valid record. */
function applyRecord(record: unknown, state: SavedState): boolean {
  if (!Array.isArray(record)) return false;
  const [kind, a, b, c, d] = record as unknown[];
  switch (kind) {
    case "t": {
      const r = record as unknown[];
      if (
        r.length !== 12 ||
        !isString(r[1]) ||
        !isString(r[2]) ||
        !isString(r[3]) ||
        !isString(r[4]) ||
        !isString(r[5]) ||
        !STATE_SET.has(r[5]) ||
        !isNumber(r[6]) ||
        !isNumber(r[7]) ||
        !isNumber(r[8]) ||
        (r[9] !== 0 && r[9] !== 1) ||
        !(r[10] === null || isNumber(r[10])) ||
        !isNumber(r[11])
      ) {
        return false;
      }
      state.tokens.set(r[1], {
        tokenId: r[1],
        userId: r[2],
        concertId: r[3],
        tokenHash: r[4],
        state: r[5] as StoredTokenState,
        issuedAt: r[6],
        admissionExpiresAt: r[7],
        lastSeenAt: r[8],
        authenticates: r[9] === 1,
        dropAt: r[10] === null ? Number.POSITIVE_INFINITY : r[10],
        seq: r[11],
      });
      return true;
    }
    case "-t":
      if (record.length !== 2 || !isString(a)) return false;
      state.tokens.delete(a);
      return true;
    case "c":
      if (
        record.length !== 5 ||
        !isString(a) ||
        !Number.isInteger(b) ||
        !(c === null || isNumber(c)) ||
        (d !== 0 && d !== 1)
      ) {
        return false;
      }
      state.concerts.set(a, {
        id: a,
        version: b as number,
        averageMs: c ?? undefined,
        open: d === 1,
      });
      return true;
    case "u": {
      if (record.length !== 4 || !isString(a) || !isString(b) || !isString(c)) return false;
      let users = state.users.get(a);
      if (users === undefined) {
        users = new Map();
        state.users.set(a, users);
      }
      users.set(b, c);
      return true;
    }
    case "-u":
      if (record.length !== 3 || !isString(a) || !isString(b)) return false;
      state.users.get(a)?.delete(b);
      return true;
    default:
      return false;
  }
}

/** Reads a snapshot (version 2, or the whole-JSON version 1) into `state`; returns its journal number. */
function readSnapshot(text: string, state: SavedState): number {
  const firstEnd = text.indexOf("\n");
  const header: unknown = JSON.parse(firstEnd < 0 ? text : text.slice(0, firstEnd));
  const parsedHeader = headerSchema.safeParse(header);
  if (!parsedHeader.success) {
    readVersion1(persistedV1Schema.parse(header), state);
    return 0;
  }
  let count = 0;
  let offset = firstEnd + 1;
  for (;;) {
    const end = text.indexOf("\n", offset);
    if (end < 0) throw new Error("the snapshot ends before its end line");
    const record: unknown = JSON.parse(text.slice(offset, end));
    offset = end + 1;
    if (Array.isArray(record) && record[0] === "end") {
      if (record[1] !== count) throw new Error("the snapshot's record count does not match");
      return parsedHeader.data.journal;
    }
    if (!applyRecord(record, state)) throw new Error(`invalid record at byte ${offset}`);
    count++;
  }
}

/**
 * Replays a journal's committed batches into `state`. It stops at the first
 * line that is incomplete or invalid, or a batch without its commit: what a
 * crash in the middle of an append leaves at the end of the file.
 */
function replayJournal(text: string, state: SavedState): void {
  let batch: unknown[] = [];
  let offset = 0;
  for (;;) {
    const end = text.indexOf("\n", offset);
    if (end < 0) return;
    let record: unknown;
    try {
      record = JSON.parse(text.slice(offset, end));
    } catch {
      return;
    }
    offset = end + 1;
    if (Array.isArray(record) && record[0] === "k") {
      if (record[2] !== batch.length) return;
      // Checked first, so a batch applies whole or not at all.
      const scratch: SavedState = { concerts: new Map(), tokens: new Map(), users: new Map() };
      if (!batch.every((r) => applyRecord(r, scratch))) return;
      for (const r of batch) applyRecord(r, state);
      batch = [];
    } else {
      batch.push(record);
    }
  }
}

const headerSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(2),
  journal: z.number().int().nonnegative(),
});

/** The format before journals: the whole line as one JSON document. */
const persistedV1Schema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(1),
  concerts: z.array(
    z.object({
      id: z.string(),
      version: z.number().int(),
      averageMs: z.number().nullable(),
      waiting: z.array(z.string()),
    }),
  ),
  tokens: z.array(
    z.object({
      tokenId: z.string(),
      userId: z.string(),
      concertId: z.string(),
      tokenHash: z.string(),
      state: z.enum(STATES),
      issuedAt: z.number(),
      admissionExpiresAt: z.number(),
      lastSeenAt: z.number(),
      authenticates: z.boolean(),
      dropAt: z.number().nullable(),
    }),
  ),
  /** [concertId, userId, tokenId] */
  users: z.array(z.tuple([z.string(), z.string(), z.string()])),
});

function readVersion1(saved: z.infer<typeof persistedV1Schema>, state: SavedState): void {
  // Version 1 kept each line as an ordered list; arrival numbers follow it.
  const seqs = new Map<string, number>();
  for (const concert of saved.concerts) {
    state.concerts.set(concert.id, {
      id: concert.id,
      version: concert.version,
      averageMs: concert.averageMs ?? undefined,
      open: true,
    });
    for (const tokenId of concert.waiting) seqs.set(tokenId, seqs.size + 1);
  }
  for (const token of saved.tokens) {
    state.tokens.set(token.tokenId, {
      ...token,
      dropAt: token.dropAt ?? Number.POSITIVE_INFINITY,
      seq: seqs.get(token.tokenId) ?? 0,
    });
  }
  for (const [concertId, userId, tokenId] of saved.users) {
    let users = state.users.get(concertId);
    if (users === undefined) {
      users = new Map();
      state.users.set(concertId, users);
    }
    users.set(userId, tokenId);
  }
}
