import { expect } from "chai";
import type { CommandParser, RedisArgument } from "redis";
import { lineBase } from "../../../server/src/modules/queue/redis-keys.js";
import { queueScripts } from "../../../server/src/modules/queue/redis-queue-scripts.js";
import {
  RedisSeatGate,
  type SeatGateRedis,
} from "../../../server/src/modules/queue/redis-seat-gate.js";

/** What a script call sends: its declared keys and its arguments. */
class RecordingParser {
  readonly keys: string[] = [];
  readonly args: string[] = [];
  push(...values: RedisArgument[]) {
    this.args.push(...values.map(String));
  }
  pushKey(key: RedisArgument) {
    this.keys.push(String(key));
  }
}

/** Redis Cluster's hash tag of a key: the text between its first `{` and the next `}`. */
function hashTag(key: string): string | undefined {
  const open = key.indexOf("{");
  const close = key.indexOf("}", open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : undefined;
}

const PREFIX = "sd:";
const CONTEXT = {
  prefix: PREFIX,
  limits: { maxActive: 1, admissionTtlMs: 1, idleMs: 1, graceMs: 1 },
};
const CONCERT = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9e01";
const DATE = { concertId: CONCERT, dateId: "date-1" };
const CHANGE = { seatId: "s", seatVersion: 1, state: "held", heldUntil: 1, owner: "u" } as const;

// Every call of every script, with the concert it is about.
const calls: [string, (parser: CommandParser) => void][] = [
  [
    "queueIssue",
    (p) =>
      queueScripts.queueIssue.parseCommand(
        p,
        CONTEXT,
        {
          concertId: CONCERT,
          userId: "u",
          tokenId: "t",
          tokenHash: "h",
          now: 1,
        },
        "seed",
      ),
  ],
  ["queueLookup", (p) => queueScripts.queueLookup.parseCommand(p, CONTEXT, CONCERT, "h", 1, true)],
  [
    "queueLookupPeek",
    (p) =>
      queueScripts.queueLookupPeek.parseCommand(p, CONTEXT, CONCERT, "h", 1, true, {
        dateId: "date-1",
        seatId: "s",
      }),
  ],
  [
    "queueSnapshots",
    (p) => queueScripts.queueSnapshots.parseCommand(p, CONTEXT, CONCERT, ["a", "b"], 1, true),
  ],
  ["queueLeave", (p) => queueScripts.queueLeave.parseCommand(p, CONTEXT, CONCERT, "t", 1)],
  ["queueComplete", (p) => queueScripts.queueComplete.parseCommand(p, CONTEXT, CONCERT, "t", 1)],
  ["queuePromote", (p) => queueScripts.queuePromote.parseCommand(p, CONTEXT, CONCERT, 1, "seed")],
  [
    "queueConfigure",
    (p) =>
      queueScripts.queueConfigure.parseCommand(p, CONTEXT, CONCERT, {
        opensAt: 0,
        paused: false,
        maxActive: 0,
        admissionTtlMs: 0,
        holdMs: 0,
      }),
  ],
  ["queueOpeningDraw", (p) => queueScripts.queueOpeningDraw.parseCommand(p, CONTEXT, CONCERT)],
  ["queueRetire", (p) => queueScripts.queueRetire.parseCommand(p, CONTEXT, CONCERT, 1)],
  [
    "seatGateRecord",
    (p) => queueScripts.seatGateRecord.parseCommand(p, { prefix: PREFIX }, DATE, CHANGE, "e"),
  ],
  [
    "seatGateInvalidate",
    (p) => queueScripts.seatGateInvalidate.parseCommand(p, { prefix: PREFIX }, DATE, "s", 1),
  ],
  [
    "seatGateChanges",
    (p) =>
      queueScripts.seatGateChanges.parseCommand(p, { prefix: PREFIX }, [
        { ...DATE, afterVersion: 0 },
        { ...DATE, dateId: "date-2", afterVersion: 3 },
      ]),
  ],
];

describe("Redis key slots (what lets the waiting room run on Redis Cluster)", () => {
  for (const [name, call] of calls) {
    it(`${name} declares keys that all carry the concert's hash tag (one slot)`, () => {
      const parser = new RecordingParser();
      call(parser as unknown as CommandParser);
      expect(parser.keys.length, "declares at least one key (routes it)").to.be.greaterThan(0);
      for (const key of parser.keys) expect(hashTag(key), key).to.equal(CONCERT);
      // The queue scripts build their other keys inside Lua from the line's
      // base (ARGV[1]), which carries the same tag.
      if (name.startsWith("queue")) expect(parser.args[0]).to.equal(lineBase(PREFIX, CONCERT));
    });
  }

  it("the seat gate reads several concerts' logs with one script per concert, in the order asked", async () => {
    const sent: string[][] = [];
    const client = {
      async seatGateChanges(_context: unknown, queries: readonly { concertId: string }[]) {
        sent.push(queries.map((q) => q.concertId));
        return queries.map((q) => ({ epoch: q.concertId, version: 0, changes: [] }));
      },
      // The gate sends through a view with a shared deadline (shared-deadline.ts).
      withCommandOptions() {
        return client;
      },
    } as unknown as SeatGateRedis;
    const gate = new RedisSeatGate(client, PREFIX);
    const answers = await gate.changesSince([
      { concertId: "a", dateId: "1", afterVersion: 0 },
      { concertId: "b", dateId: "2", afterVersion: 0 },
      { concertId: "a", dateId: "3", afterVersion: 0 },
    ]);
    expect(sent).to.deep.equal([["a", "a"], ["b"]]);
    expect(answers.map((answer) => answer.epoch)).to.deep.equal(["a", "b", "a"]);
  });
});
