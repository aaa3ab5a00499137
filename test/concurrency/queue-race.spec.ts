import { randomBytes, randomInt, randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { QueueTokenState, type StagedoorClient } from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor, type Protocol } from "../support/clients.js";
import { deleteKeys, reportRedisSkipped, testRedisUrl, uniqueKeyPrefix } from "../support/redis.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import {
  describeError,
  expectRefusal,
  must,
  NO_USER_RATE_LIMITS,
  partition,
  RACE_PROTOCOLS,
  RaceDb,
  requestId,
  type SeatRow,
  uniqueUser,
} from "./race-support.js";

const MAX_ACTIVE = 5;

/** One or more servers sharing one waiting room. */
interface Cluster {
  readonly servers: readonly TestServer[];
  /** One per server, in the same order. */
  readonly dbs: readonly RaceDb[];
  /** The demo concert of the first server; every server knows it. */
  readonly concertId: string;
}

/** A concert with no seats, known to every server, so a test gets a line of its own. */
async function newConcert(cluster: Cluster): Promise<string> {
  const id = randomUUID();
  await insertConcert(cluster.dbs, id);
  return id;
}

/** Inserts a bare concert row, which is all the queue needs to accept tokens for it. */
async function insertConcert(dbs: readonly RaceDb[], id: string): Promise<void> {
  for (const db of dbs) {
    await db.query(
      `insert into concert (id, title, venue, created_at)
       values ($1, 'Race line', 'Nowhere', now()) on conflict (id) do nothing`,
      [id],
    );
  }
}

/** Issues a token through one of the servers and returns its response. */
function issue(cluster: Cluster, protocol: Protocol, i: number, concertId: string, userId: string) {
  const server = must(cluster.servers[i % cluster.servers.length], "server");
  return clientFor(protocol, server.url).queue.issueQueueToken({ concertId, userId });
}

/** The waiting-room races, run against whichever servers share one line. */
function queueRaces(
  name: string,
  startCluster: () => Promise<Cluster>,
  stopCluster: () => Promise<void>,
) {
  describe(name, () => {
    let cluster: Cluster;

    before(async () => {
      cluster = await startCluster();
    });
    afterEach(async () => {
      for (const db of cluster.dbs) await db.expectInvariants(new Date());
    });
    after(async () => {
      await stopCluster();
    });

    for (const protocol of RACE_PROTOCOLS) {
      it(`50 concurrent issues for one user with a free slot over ${protocol}: one token, one slot`, async () => {
        const concertId = await newConcert(cluster);
        const userId = uniqueUser("issue-free");

        const results = await Promise.allSettled(
          Array.from({ length: 50 }, (_, i) => issue(cluster, protocol, i, concertId, userId)),
        );

        const { fulfilled, rejected } = partition(results);
        expect(rejected.map(describeError), "failed issues").to.deep.equal([]);
        expect(new Set(fulfilled.map((res) => res.token)).size, "distinct tokens").to.equal(1);
        for (const res of fulfilled) {
          expect(res.status?.state).to.equal(QueueTokenState.ADMITTED);
          expect(res.status?.position).to.equal(0n);
        }
        // The user takes exactly one of the slots: MAX_ACTIVE - 1 others are
        // admitted at once, and the next one has to wait, first in line.
        for (let i = 1; i < MAX_ACTIVE; i++) {
          const other = await issue(
            cluster,
            protocol,
            i,
            concertId,
            uniqueUser("issue-free-other"),
          );
          expect(other.status?.state, `other user ${i}`).to.equal(QueueTokenState.ADMITTED);
        }
        const late = await issue(cluster, protocol, 0, concertId, uniqueUser("issue-free-late"));
        expect(late.status?.state).to.equal(QueueTokenState.WAITING);
        expect(late.status?.position).to.equal(1n);
        expect(late.status?.waitingCount).to.equal(1n);
      });

      it(`50 concurrent issues for one user behind a full line over ${protocol}: one token, one place`, async () => {
        const concertId = await newConcert(cluster);
        for (let i = 0; i < MAX_ACTIVE; i++) {
          const filler = await issue(cluster, protocol, i, concertId, uniqueUser("issue-filler"));
          expect(filler.status?.state).to.equal(QueueTokenState.ADMITTED);
        }
        const userId = uniqueUser("issue-wait");

        const results = await Promise.allSettled(
          Array.from({ length: 50 }, (_, i) => issue(cluster, protocol, i, concertId, userId)),
        );

        const { fulfilled, rejected } = partition(results);
        expect(rejected.map(describeError), "failed issues").to.deep.equal([]);
        const tokens = new Set(fulfilled.map((res) => res.token));
        expect(tokens.size, "distinct tokens").to.equal(1);
        for (const res of fulfilled) {
          expect(res.status?.state).to.equal(QueueTokenState.WAITING);
          expect(res.status?.position).to.equal(1n);
          expect(res.status?.waitingCount).to.equal(1n);
        }
        const next = await issue(cluster, protocol, 1, concertId, uniqueUser("issue-next"));
        expect(next.status?.position, "the next user's place").to.equal(2n);
        expect(next.status?.waitingCount).to.equal(2n);
        const [token] = [...tokens];
        for (const server of cluster.servers) {
          const { status } = await clientFor(protocol, server.url, token).queue.getQueueStatus({});
          expect(status?.position).to.equal(1n);
          expect(status?.waitingCount).to.equal(2n);
        }
      });
    }

    it(`40 users, limit ${MAX_ACTIVE}: never more admitted than the limit, admitted in FIFO order`, async () => {
      await admissionRace(cluster, "grpc");
    });
  });
}

/** One racer of the admission race. */
interface Racer {
  readonly userId: string;
  /** 0 for users admitted at issue, else the place they were given (issue order). */
  readonly rank: number;
  /** The racer's clients, one per server. */
  readonly clients: readonly StagedoorClient[];
  readonly seat: SeatRow;
  action: "leave" | "pay" | undefined;
  /** Set synchronously right before the call that frees the slot is sent. */
  freeing: boolean;
  /** The freeing call has returned. */
  done: boolean;
  lastPosition: bigint;
}

/**
 * 40 users join a line with room for MAX_ACTIVE, then each, once seen
 * admitted, either leaves or holds and pays (both free the slot) after a
 * random delay, while the admitters run. A sampler reads every user's status
 * one after another, in reverse issue order, until everyone is through, and
 * checks two things that hold however the reads interleave with the changes:
 * - the users read ADMITTED in one pass whose freeing call has not been sent
 *   by the end of that pass were all admitted at that moment: at most the limit;
 * - a user read WAITING after a later-issued user was seen admitted (or past
 *   admission) is a FIFO violation.
 */
async function admissionRace(cluster: Cluster, protocol: Protocol): Promise<void> {
  const { servers, concertId } = cluster;
  const seats = (await must(cluster.dbs[0], "first db").seats()).filter((s) => s.dateIndex > 0);
  const users = Array.from({ length: 40 }, (_, i) => uniqueUser(`line-${i}`));

  const results = await Promise.allSettled(
    users.map((userId, i) => issue(cluster, protocol, i, concertId, userId)),
  );
  const { fulfilled, rejected } = partition(results);
  expect(rejected.map(describeError), "failed issues").to.deep.equal([]);
  const statuses = fulfilled.map((res) => must(res.status, "status"));
  expect(statuses.filter((s) => s.state === QueueTokenState.ADMITTED)).to.have.length(MAX_ACTIVE);
  const places = statuses
    .filter((s) => s.state === QueueTokenState.WAITING)
    .map((s) => Number(s.position))
    .sort((a, b) => a - b);
  expect(places, "one distinct place per waiting user").to.deep.equal(
    Array.from({ length: users.length - MAX_ACTIVE }, (_, i) => i + 1),
  );

  const racers: Racer[] = fulfilled.map((res, i) => ({
    userId: must(users[i], "user"),
    rank: Number(res.status?.position ?? 0n),
    clients: servers.map((server) => clientFor(protocol, server.url, res.token)),
    seat: must(seats[i], `seat ${i}`),
    action: undefined,
    freeing: false,
    done: false,
    lastPosition: res.status?.position ?? 0n,
  }));
  // Reading later-issued users first makes FIFO violations visible within a pass.
  const readOrder = [...racers].sort((a, b) => b.rank - a.rank);
  const actors: Promise<void>[] = [];
  let reads = 0;
  let furthestAdmittedRank = -1;

  /** Once seen admitted: a random pause, then leave, or hold and pay. */
  async function act(racer: Racer): Promise<void> {
    await delay(randomInt(0, 25));
    const any = must(racer.clients[randomInt(racer.clients.length)], "client");
    if (racer.action === "leave") {
      racer.freeing = true;
      await any.queue.leaveQueue({});
    } else {
      // Seats and money live in the first server's database.
      const own = must(racer.clients[0], "client");
      await own.wallet.rechargeWallet({ amount: racer.seat.price, requestId: requestId() });
      const { reservation } = await own.reservation.holdSeat({
        seatId: racer.seat.id,
        requestId: requestId(),
      });
      racer.freeing = true;
      await own.payment.createPayment({
        reservationId: must(reservation, "hold").id,
        amount: racer.seat.price,
        requestId: requestId(),
      });
    }
    racer.done = true;
  }

  /** One pass over every racer still in play; returns how many were surely admitted together. */
  async function pass(startActors: boolean): Promise<number> {
    const admitted: Racer[] = [];
    for (const racer of readOrder) {
      if (racer.done) continue;
      const client = must(racer.clients[reads++ % racer.clients.length], "client");
      let state: QueueTokenState;
      let position = 0n;
      try {
        const { status } = await client.queue.getQueueStatus({});
        state = must(status, "status").state;
        position = must(status, "status").position;
      } catch (error) {
        // Only a user who left may find their token refused.
        expect(racer.action === "leave" && racer.freeing, `${racer.userId} refused`).to.equal(true);
        expectRefusal(error, Code.Unauthenticated, ["TOKEN_INVALID"]);
        continue;
      }
      const who = `${racer.userId} (rank ${racer.rank})`;
      if (state === QueueTokenState.WAITING) {
        expect(racer.freeing, `${who} waiting after admission`).to.equal(false);
        expect(
          racer.rank,
          `FIFO: ${who} still waits after rank ${furthestAdmittedRank} was admitted`,
        ).to.be.above(furthestAdmittedRank);
        expect(position >= 1n && position <= racer.lastPosition, `${who} position ${position}`).to
          .be.true;
        racer.lastPosition = position;
        continue;
      }
      furthestAdmittedRank = Math.max(furthestAdmittedRank, racer.rank);
      if (state === QueueTokenState.COMPLETED) {
        expect(racer.action === "pay" && racer.freeing, `${who} completed`).to.equal(true);
        continue;
      }
      expect(state, who).to.equal(QueueTokenState.ADMITTED);
      admitted.push(racer);
      if (startActors && racer.action === undefined) {
        racer.action = randomInt(2) === 0 ? "leave" : "pay";
        actors.push(act(racer));
      }
    }
    return admitted.filter((racer) => !racer.freeing).length;
  }

  // A first pass before anyone acts: exactly the limit is admitted.
  expect(await pass(false), "admitted before anyone leaves").to.equal(MAX_ACTIVE);
  const deadline = Date.now() + 30_000;
  let passes = 0;
  while (racers.some((racer) => !racer.done)) {
    if (Date.now() > deadline) {
      const stuck = racers.filter((racer) => !racer.done).map((racer) => racer.rank);
      expect.fail(`the line stalled after ${passes} passes; ranks still in play: ${stuck}`);
    }
    const together = await pass(true);
    expect(together, `admitted at once in pass ${passes}`).to.be.at.most(MAX_ACTIVE);
    passes++;
  }
  const settled = await Promise.allSettled(actors);
  expect(partition(settled).rejected.map(describeError), "failed leaves/payments").to.deep.equal(
    [],
  );

  // Everyone is through: payers are COMPLETED, leavers are refused.
  for (const racer of racers) {
    const reading = await must(racer.clients.at(-1), "client")
      .queue.getQueueStatus({})
      .then(
        ({ status }) => QueueTokenState[must(status, "status").state],
        (error: unknown) => expectRefusal(error, Code.Unauthenticated, ["TOKEN_INVALID"]),
      );
    expect(reading, racer.userId).to.equal(racer.action === "pay" ? "COMPLETED" : "TOKEN_INVALID");
  }
  const payers = racers.filter((racer) => racer.action === "pay");
  const [{ paid }] = await must(cluster.dbs[0], "first db").query<{ paid: number }>(
    "select count(*)::int as paid from payment where user_id = any($1::text[])",
    [payers.map((racer) => racer.userId)],
  );
  expect(paid, "payments of the payers").to.equal(payers.length);
}

// One server on the in-process store.
{
  const started: { server?: TestServer; db?: RaceDb } = {};
  queueRaces(
    "concurrency: waiting room (in-process store)",
    async () => {
      const server = await startTestServer({
        env: { QUEUE_MAX_ACTIVE: String(MAX_ACTIVE), ...NO_USER_RATE_LIMITS },
      });
      started.server = server;
      const db = new RaceDb(server.databaseUrl);
      started.db = db;
      return { servers: [server], dbs: [db], concertId: server.concertId };
    },
    async () => {
      await started.db?.close();
      await started.server?.stop();
    },
  );
}

// Two servers sharing one Redis line: the limit and the order are global.
if (testRedisUrl) {
  const redisUrl = testRedisUrl;
  const prefix = uniqueKeyPrefix();
  const started: { servers: TestServer[]; dbs: RaceDb[] } = { servers: [], dbs: [] };
  queueRaces(
    "concurrency: waiting room (Redis store, two servers)",
    async () => {
      const env = {
        QUEUE_MAX_ACTIVE: String(MAX_ACTIVE),
        REDIS_KEY_PREFIX: prefix,
        // Both must derive the same token from a token id to hand it back.
        TOKEN_SECRET: randomBytes(32).toString("hex"),
        ...NO_USER_RATE_LIMITS,
      };
      for (let i = 0; i < 2; i++) {
        const server = await startTestServer({ queue: "redis", env });
        started.servers.push(server);
        started.dbs.push(new RaceDb(server.databaseUrl));
      }
      const [first] = started.servers;
      const concertId = must(first, "first server").concertId;
      // The second server's database only needs the concert row to accept tokens for it.
      await insertConcert(started.dbs, concertId);
      return { servers: started.servers, dbs: started.dbs, concertId };
    },
    async () => {
      for (const db of started.dbs) await db.close();
      for (const server of started.servers) await server.stop();
      await deleteKeys(redisUrl, prefix);
    },
  );
} else {
  reportRedisSkipped("concurrency: waiting room (Redis store, two servers)");
}
