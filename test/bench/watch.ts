/**
 * `npm run bench:watch`: what watching the line costs.
 *
 * Ticks (in process, private redis-server): WATCH_SIZES watchers (default
 * 10,000 and 200,000) spread over WATCH_INSTANCES hubs (default 1 and 20),
 * each with its own Redis connection, while the line moves WATCH_MOVE places
 * per 250 ms tick (QUEUE_MAX_ACTIVE = WATCH_MAX_ACTIVE): hub CPU per tick
 * (all instances together), Redis CPU and commands per tick, events pushed.
 *
 * Streams (see watch-streams.ts): WATCH_STREAMS (10,000) live streams on one
 * server process, over HTTP/2 and over HTTP/1.1, while the line moves. Run
 * only one part with WATCH_PARTS=ticks or WATCH_PARTS=streams.
 *
 * A benchmark, not a test: it prints figures and asserts nothing.
 */
import { stopSharedPostgres } from "../support/postgres.js";
import { fmt, formatTable } from "./load.js";
import { startPrivateRedis } from "./private-redis.js";
import { Cleanup } from "./processes.js";
import { runStreams, type StreamFigures } from "./watch-streams.js";
import { runTickScenario, type TickFigures, tickRow } from "./watch-ticks.js";

const list = (value: string | undefined, fallback: number[]) =>
  value === undefined || value === "" ? fallback : value.split(",").map(Number);

const SIZES = list(process.env.WATCH_SIZES, [10_000, 200_000]);
const INSTANCES = list(process.env.WATCH_INSTANCES, [1, 20]);
const MAX_ACTIVE = Number(process.env.WATCH_MAX_ACTIVE ?? 1000);
const MOVE = Number(process.env.WATCH_MOVE ?? 25);
const TICKS = Number(process.env.WATCH_TICKS ?? 60);
const STREAMS = Number(process.env.WATCH_STREAMS ?? 10_000);
const PARTS = (process.env.WATCH_PARTS ?? "ticks,streams").split(",");

async function main(): Promise<void> {
  const cleanup = new Cleanup();
  cleanup.onSignals();
  try {
    const redis = await startPrivateRedis(cleanup);
    if (PARTS.includes("streams")) {
      const streams = await runStreams(
        redis,
        { streams: STREAMS, maxActive: 100, moves: 3, leaves: 10 },
        cleanup,
        (line) => console.error(line),
      );
      console.log(
        `\nLive streams on one server process (QUEUE_MAX_ACTIVE 100; 3 moves of 10 places, 6 s apart)`,
      );
      console.log(formatTable(STREAM_HEADER, streams.map(streamRow)));
    }
    if (!PARTS.includes("ticks")) return;
    const rows: TickFigures[] = [];
    for (const watchers of SIZES) {
      for (const instances of INSTANCES) {
        const figures = await runTickScenario(redis, {
          watchers,
          instances,
          maxActive: MAX_ACTIVE,
          movePerTick: MOVE,
          ticks: TICKS,
        });
        rows.push(figures);
        console.log(formatTable(HEADER, [tickRow(figures)]));
      }
    }
    console.log(
      `\nWatch ticks: line moving ${MOVE} places per 250 ms tick, QUEUE_MAX_ACTIVE ${MAX_ACTIVE}, ${TICKS} ticks each`,
    );
    console.log(formatTable(HEADER, rows.map(tickRow)));
  } finally {
    await cleanup.run();
    await stopSharedPostgres();
  }
}

const STREAM_HEADER = [
  "protocol",
  "streams",
  "RSS KiB/stream",
  "server CPU ms/tick, still",
  "moving",
  "update p50 ms",
  "p99",
  "max",
  "updates seen",
];

function streamRow(f: StreamFigures): string[] {
  return [
    f.protocol,
    fmt(f.streams),
    f.rssPerStreamKiB.toFixed(1),
    f.idleTickCpuMs.toFixed(2),
    f.movingTickCpuMs.toFixed(2),
    fmt(f.p50Ms),
    fmt(f.p99Ms),
    fmt(f.maxMs),
    fmt(f.updated),
  ];
}

const HEADER = [
  "scenario",
  "hub CPU ms/tick",
  "p99",
  "Redis CPU ms/tick",
  "Redis cmds/tick",
  "events/tick",
];

await main();
