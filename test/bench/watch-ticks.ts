/**
 * The watch hub's tick, in process, against a private Redis: what one tick
 * costs the hub (CPU) and Redis (CPU) as a line moves, for a crowd of
 * watchers spread over instances. Used by `npm run bench:watch` (see
 * watch.ts); WATCH_HUB_MODULE names another module exporting QueueWatchHub
 * to measure instead (e.g. a copy of an earlier version, for a before/after).
 */
import { randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";
import { createLogger } from "../../server/src/logger.js";
import { TokenCodec, TrustUserVerifier } from "../../server/src/modules/identity/index.js";
import {
  type QueueLimits,
  type QueueRedisClient,
  QueueService,
  type QueueWatchHub,
  queueScripts,
  RedisQueueStore,
  type Session,
  type WatchHubOptions,
} from "../../server/src/modules/queue/index.js";
import { createRedisClient } from "../../server/src/redis/redis-client.js";
import { FakeClock } from "../support/fake-clock.js";
import { fmt, percentile } from "./load.js";
import type { PrivateRedis } from "./private-redis.js";

const CONCERT = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9e01";

/** One scenario of the tick benchmark. */
export interface TickScenario {
  /** Waiting fans, all watching. */
  readonly watchers: number;
  /** Server instances (hubs), each with its own Redis connection and an equal share of the watchers. */
  readonly instances: number;
  /** QUEUE_MAX_ACTIVE. */
  readonly maxActive: number;
  /** Admissions ended (paid) per tick, which moves the line by as many places. */
  readonly movePerTick: number;
  /** Ticks measured (250 ms of simulated time each). */
  readonly ticks: number;
}

/** What a scenario measured, per tick. */
export interface TickFigures {
  readonly scenario: TickScenario;
  /** Hub CPU per tick, summed over instances (ms): mean and p99 of ticks. */
  readonly hubCpuMs: number;
  readonly hubCpuP99Ms: number;
  /** Redis CPU per tick (ms), all instances together. */
  readonly redisCpuMs: number;
  /** Redis commands per tick. */
  readonly redisCommands: number;
  /** Events pushed to streams per tick. */
  readonly eventsPerTick: number;
}

interface ConcertDirectoryStub {
  concertExists(): Promise<boolean>;
  saleEnded(): Promise<boolean>;
}

type HubClass = new (...args: ConstructorParameters<typeof QueueWatchHub>) => QueueWatchHub;

async function hubClass(): Promise<HubClass> {
  const module = process.env.WATCH_HUB_MODULE;
  if (module === undefined || module === "") {
    return (await import("../../server/src/modules/queue/queue-watch-hub.js")).QueueWatchHub;
  }
  const loaded = (await import(pathToFileURL(module).href)) as { QueueWatchHub: HubClass };
  return loaded.QueueWatchHub;
}

/** Redis's own CPU (ms) and command count so far, from INFO. */
async function redisUsage(client: QueueRedisClient): Promise<{ cpuMs: number; commands: number }> {
  const info = await client.info();
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return {
    cpuMs: (field("used_cpu_user") + field("used_cpu_sys")) * 1000,
    commands: field("total_commands_processed"),
  };
}

/** Runs one scenario on a fresh database of the private Redis. */
export async function runTickScenario(
  redis: PrivateRedis,
  scenario: TickScenario,
): Promise<TickFigures> {
  const Hub = await hubClass();
  const onError = (err: unknown) => console.error("redis client error:", err);
  const url = redis.url;
  const main = await createRedisClient({ url, onError, scripts: queueScripts });
  await main.flushDb();
  const limits: QueueLimits = {
    maxActive: scenario.maxActive,
    admissionTtlMs: 3_600_000,
    idleMs: 120_000,
    graceMs: 3_600_000,
  };
  const clock = new FakeClock();
  const directory: ConcertDirectoryStub = {
    concertExists: async () => true,
    saleEnded: async () => false,
  };
  const prefix = "bench:";
  const mainStore = new RedisQueueStore(main, limits, prefix);
  const queue = new QueueService(
    mainStore,
    new TokenCodec(randomBytes(32)),
    new TrustUserVerifier(),
    directory,
    clock,
    limits,
  );

  // The line: maxActive admitted, then the watchers, issued 256 at a time.
  const total = scenario.maxActive + scenario.watchers;
  const tokenIds: string[] = new Array(total);
  const sessions: Session[] = [];
  for (let start = 0; start < total; start += 256) {
    const batch = [];
    for (let i = start; i < Math.min(total, start + 256); i++) {
      const id = randomBytes(16).toString("hex");
      batch.push(
        mainStore
          .issue({
            concertId: CONCERT,
            userId: `fan-${i}`,
            tokenId: id,
            tokenHash: id,
            now: clock.ms(),
          })
          .then((result) => {
            tokenIds[i] = result.snapshot.tokenId;
            return result.snapshot;
          }),
      );
    }
    for (const snapshot of await Promise.all(batch)) {
      if (snapshot.state === "waiting") sessions.push(queue.session(snapshot));
    }
  }
  sessions.sort((a, b) => a.status.position - b.status.position);

  const logger = createLogger("silent");
  const hubs: QueueWatchHub[] = [];
  const clients: QueueRedisClient[] = [];
  const options: WatchHubOptions & Record<string, unknown> = {
    tickMs: 250,
    heartbeatMs: 10_000,
    touchEveryMs: Math.floor(limits.idleMs / 3),
    maxPerToken: 3,
    maxStreams: scenario.watchers,
    frontSize: 2 * scenario.maxActive,
    frontEveryMs: 1000,
    farEveryMs: 5000,
  };
  for (let i = 0; i < scenario.instances; i++) {
    const client = await createRedisClient({ url, onError, scripts: queueScripts });
    clients.push(client);
    hubs.push(new Hub(queue, new RedisQueueStore(client, limits, prefix), clock, options, logger));
  }

  // Every watcher reads its stream to the end, counting events.
  // One signal per stream, as the server has: thousands of listeners on one
  // AbortSignal cost O(n) each to add (EventTarget checks for duplicates).
  const controllers: AbortController[] = [];
  let events = 0;
  const readers: Promise<void>[] = [];
  sessions.forEach((session, i) => {
    const hub = hubs[i % hubs.length] as QueueWatchHub;
    readers.push(
      (async () => {
        try {
          const controller = new AbortController();
          controllers.push(controller);
          for await (const _ of hub.watch(session, controller.signal)) events++;
        } catch {
          // stopped
        }
      })(),
    );
  });
  await new Promise((resolve) => setImmediate(resolve));

  // Warm-up: two ticks (the first reads every concert's state).
  for (let w = 0; w < 2; w++) {
    clock.advance(250);
    for (const hub of hubs) await hub.tick();
  }

  let admittedUpTo = 0;
  const hubCpu: number[] = [];
  const eventsBefore = events;
  const usageBefore = await redisUsage(main);
  for (let t = 0; t < scenario.ticks; t++) {
    // The line moves: movePerTick admitted fans pay, and as many are admitted.
    for (let m = 0; m < scenario.movePerTick; m++) {
      await mainStore.complete(CONCERT, tokenIds[admittedUpTo++] as string, clock.ms());
    }
    clock.advance(250);
    let cpu = 0;
    for (const hub of hubs) {
      const started = process.cpuUsage();
      await hub.tick();
      const used = process.cpuUsage(started);
      cpu += (used.user + used.system) / 1000;
    }
    hubCpu.push(cpu);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const usageAfter = await redisUsage(main);
  // The completes above are Redis work too; measure them alone and take them out.
  const movesBefore = await redisUsage(main);
  for (let t = 0; t < scenario.ticks; t++) {
    for (let m = 0; m < scenario.movePerTick; m++) {
      await mainStore.complete(CONCERT, tokenIds[admittedUpTo++] as string, clock.ms());
    }
  }
  const movesAfter = await redisUsage(main);
  const infoCalls = 2;

  for (const controller of controllers) controller.abort();
  for (const hub of hubs) hub.stop();
  await Promise.all(readers);
  for (const client of clients) await client.close();
  await main.flushDb();
  await main.close();

  const sorted = Float64Array.from(hubCpu).sort();
  const ticks = scenario.ticks;
  return {
    scenario,
    hubCpuMs: hubCpu.reduce((a, b) => a + b, 0) / ticks,
    hubCpuP99Ms: percentile(sorted, 99),
    redisCpuMs:
      (usageAfter.cpuMs - usageBefore.cpuMs - (movesAfter.cpuMs - movesBefore.cpuMs)) / ticks,
    redisCommands:
      (usageAfter.commands -
        usageBefore.commands -
        (movesAfter.commands - movesBefore.commands) -
        infoCalls) /
      ticks,
    eventsPerTick: (events - eventsBefore) / ticks,
  };
}

/** One printed row of a scenario's figures. */
export function tickRow(f: TickFigures): string[] {
  const s = f.scenario;
  return [
    `${fmt(s.watchers)} watchers / ${s.instances} inst.`,
    f.hubCpuMs.toFixed(2),
    f.hubCpuP99Ms.toFixed(2),
    f.redisCpuMs.toFixed(2),
    fmt(Math.round(f.redisCommands)),
    f.eventsPerTick.toFixed(0),
  ];
}
