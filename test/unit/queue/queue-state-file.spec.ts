import { cpSync, rmSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { expect } from "chai";
import {
  QueueStateFile,
  type SavedConcert,
  type SavedState,
  type SavedToken,
  type StateSource,
} from "../../../server/src/modules/queue/queue-state-file.js";

/**
 * A line kept in plain maps, which tells its file about every change like the
 * store does, and remembers every state it has been in.
 */
class FakeLine implements StateSource {
  readonly tokenMap = new Map<string, SavedToken>();
  readonly concertMap = new Map<string, SavedConcert>();
  readonly userMap = new Map<string, Map<string, string>>();
  readonly history: string[] = [];
  private seq = 0;
  private random = 7;
  /** Set once the file is made (it needs the line as its source). */
  file!: QueueStateFile;

  constructor() {
    this.record();
  }

  token(tokenId: string) {
    return this.tokenMap.get(tokenId);
  }
  concert(concertId: string) {
    return this.concertMap.get(concertId);
  }
  user(concertId: string, userId: string) {
    return this.userMap.get(concertId)?.get(userId);
  }
  tokens() {
    return this.tokenMap.values();
  }
  concerts() {
    return this.concertMap.values();
  }
  *users(): Generator<readonly [string, string, string]> {
    for (const [c, users] of this.userMap) for (const [u, t] of users) yield [c, u, t];
  }

  /** One change to one to three records, as a store call makes. */
  change(): void {
    const r = this.next();
    const ids = [...this.tokenMap.keys()];
    if (r < 0.5 || ids.length < 10) {
      this.seq++;
      const id = `tok-${this.seq}`;
      const concertId = `concert-${this.seq % 3}`;
      // As the store does: each record is announced before it changes.
      this.file.beforeToken(id);
      this.tokenMap.set(id, token(id, concertId, this.seq));
      let users = this.userMap.get(concertId);
      if (users === undefined) {
        users = new Map();
        this.userMap.set(concertId, users);
      }
      this.file.beforeUser(concertId, `user-${this.seq}`);
      users.set(`user-${this.seq}`, id);
      const concert = this.concertMap.get(concertId);
      this.file.beforeConcert(concertId);
      this.concertMap.set(concertId, {
        id: concertId,
        version: (concert?.version ?? 0) + 1,
        averageMs: undefined,
        open: true,
      });
    } else {
      const id = ids[Math.floor(this.next() * ids.length)] as string;
      const current = this.tokenMap.get(id) as SavedToken;
      this.file.beforeToken(id);
      if (r < 0.8) {
        this.tokenMap.set(id, { ...current, lastSeenAt: current.lastSeenAt + 1 });
      } else {
        this.tokenMap.delete(id);
        const userId = `user-${id.slice(4)}`;
        this.file.beforeUser(current.concertId, userId);
        this.userMap.get(current.concertId)?.delete(userId);
      }
    }
    this.record();
  }

  private record(): void {
    this.history.push(
      digest({ concerts: this.concertMap, tokens: this.tokenMap, users: this.userMap }),
    );
  }

  private next(): number {
    this.random = (this.random * 1_103_515_245 + 12_345) % 2_147_483_648;
    return this.random / 2_147_483_648;
  }
}

function token(tokenId: string, concertId: string, seq: number): SavedToken {
  return {
    tokenId,
    userId: `user-${seq}`,
    concertId,
    tokenHash: `hash-${seq}`,
    state: seq % 5 === 0 ? "admitted" : "waiting",
    issuedAt: 1_000 + seq,
    admissionExpiresAt: seq % 5 === 0 ? 90_000 : 0,
    lastSeenAt: 2_000 + seq,
    authenticates: true,
    dropAt: seq % 5 === 0 ? 99_000 : Number.POSITIVE_INFINITY,
    seq,
  };
}

/** A canonical text of a state, to compare states. */
function digest(state: SavedState): string {
  const sorted = <T>(entries: Iterable<[string, T]>) =>
    [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify({
    concerts: sorted(state.concerts),
    tokens: sorted(state.tokens).map(([id, t]) => [id, { ...t, dropAt: String(t.dropAt) }]),
    users: sorted(state.users)
      .map(([c, users]) => [c, sorted(users)] as const)
      .filter(([, users]) => users.length > 0),
  });
}

describe("QueueStateFile", () => {
  let dir: string;
  let n = 0;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-state-file-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function fresh(options = {}): { file: QueueStateFile; line: FakeLine; target: string } {
    n++;
    const folder = path.join(dir, `case-${n}`);
    const target = path.join(folder, "line.json");
    const line = new FakeLine();
    line.file = new QueueStateFile(target, line, options);
    line.file.load();
    return { file: line.file, line, target };
  }

  /**
   * A "crash": the folder as it is now. The compaction's file operations run on
   * libuv's threads while this copies, so a file listed may be renamed away
   * before it is read; a real crash sees the folder at one instant, so such a
   * torn copy is thrown away and taken again.
   */
  function copyFolder(from: string, to: string): void {
    for (;;) {
      try {
        cpSync(from, to, { recursive: true });
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
        rmSync(to, { recursive: true, force: true });
      }
    }
  }

  const load = (target: string) => digest(new QueueStateFile(target, new FakeLine()).load());

  it("restores a consistent state from a crash at any moment of a compaction", async () => {
    const { file, line, target } = fresh({ sliceRecords: 10 });
    for (let i = 0; i < 300; i++) line.change();
    await file.checkpoint();
    const committed = line.history.length - 1;
    for (let i = 0; i < 20; i++) line.change();
    await file.checkpoint();

    // While the snapshot is written slice by slice, the line keeps changing,
    // and "crashes" are taken: copies of the folder between any two turns.
    const copies: string[] = [];
    let done = false;
    const compaction = file.compact().finally(() => {
      done = true;
    });
    while (!done) {
      const copy = path.join(dir, `crash-${n}-${copies.length}`);
      copyFolder(path.dirname(target), copy);
      copies.push(path.join(copy, "line.json"));
      line.change();
      await nextTurn();
    }
    await compaction;
    expect(copies.length, "the compaction took many turns").to.be.greaterThan(20);
    const names = (folder: string) => readdir(folder).then((f) => f.sort());
    const kinds = new Set<string>();
    for (const copy of copies) {
      kinds.add((await names(path.dirname(copy))).map((f) => f.replace(/\d+/g, "N")).join(","));
      const seen = line.history.lastIndexOf(load(copy));
      // Some state the line really was in, and none older than the last checkpoint.
      expect(seen, `a state of ${copy}`).to.be.at.least(committed);
    }
    // The crashes hit every stage: before the snapshot, in the middle (temp file), after.
    expect([...kinds].some((k) => k.includes(".tmp"))).to.equal(true);
    expect([...kinds].some((k) => k.includes("line.json,"))).to.equal(true);

    // Done: one snapshot and the journal it names, which restore the last state.
    await file.checkpoint();
    expect(await names(path.dirname(target))).to.deep.equal(["line.json", "line.json.2.journal"]);
    expect(load(target)).to.equal(line.history.at(-1));
    await file.close();
  });

  it("writes a batch as of the instant it began, though the line changes while it is written", async () => {
    const { file, line, target } = fresh({ sliceRecords: 7 });
    for (let i = 0; i < 200; i++) line.change();
    await file.checkpoint();
    for (let i = 0; i < 400; i++) line.change();
    const began = line.history.length - 1;
    const batch = file.checkpoint();
    // Between every two slices, records the batch has or has not read yet change.
    let turns = 0;
    let done = false;
    void batch.finally(() => {
      done = true;
    });
    // The batch begins once the calls queued before it are done (a microtask).
    await nextTurn();
    while (!done) {
      for (let i = 0; i < 5; i++) line.change();
      turns++;
      await nextTurn();
    }
    await batch;
    expect(turns, "the batch took many turns").to.be.greaterThan(20);
    expect(load(target)).to.equal(line.history[began]);
    await file.checkpoint();
    expect(load(target)).to.equal(line.history.at(-1));
    await file.close();
  });

  it("replays journals of earlier runs and never appends to them", async () => {
    const { file, line, target } = fresh();
    for (let i = 0; i < 30; i++) line.change();
    await file.checkpoint();
    const firstJournal = await readFile(`${target}.1.journal`, "utf8");
    // A second run on the same files (the first one "crashed": never closed).
    const second = new QueueStateFile(target, line);
    expect(digest(second.load())).to.equal(line.history.at(-1));
    const gone = [...line.tokenMap.keys()][0] as string;
    second.beforeToken(gone);
    line.tokenMap.delete(gone);
    await second.checkpoint();
    await second.close();
    await file.close();

    expect((await readdir(path.dirname(target))).sort()).to.deep.equal([
      "line.json.1.journal",
      "line.json.2.journal",
    ]);
    expect(await readFile(`${target}.1.journal`, "utf8")).to.equal(firstJournal);
    const restored = new QueueStateFile(target, new FakeLine()).load();
    expect(restored.tokens.has(gone)).to.equal(false);
    expect(digest(restored)).to.equal(
      digest({ concerts: line.concertMap, tokens: line.tokenMap, users: line.userMap }),
    );
  });

  it("abandons a compaction when closed, keeping everything in the journals", async () => {
    const { file, line, target } = fresh({ sliceRecords: 5 });
    for (let i = 0; i < 200; i++) line.change();
    await file.checkpoint();
    const compaction = file.compact();
    await nextTurn();
    line.change();
    const closing = file.close();
    await compaction.then(
      () => expect.fail("the compaction went on after close()"),
      (error: Error) => expect(error.message).to.match(/closed during a compaction/),
    );
    await closing;
    const names = (await readdir(path.dirname(target))).sort();
    expect(names.filter((f) => f.endsWith(".tmp"))).to.deep.equal([]);
    expect(load(target)).to.equal(line.history.at(-1));
  });

  it("refuses a snapshot that lost its end, rather than start from part of the line", async () => {
    const { file, line, target } = fresh({ compactAfterBytes: 0 });
    for (let i = 0; i < 50; i++) line.change();
    await file.compact();
    await file.close();
    const text = await readFile(target, "utf8");
    await writeFile(target, text.slice(0, text.lastIndexOf('["end"')));
    expect(() => new QueueStateFile(target, new FakeLine()).load()).to.throw(/unreadable/);
  });
});
