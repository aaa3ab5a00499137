/**
 * Live watch streams against a real server process (started as `npm start`
 * runs it, on a throwaway database and a private Redis): WATCH_STREAMS
 * (10,000) streams over HTTP/2 (gRPC, h2c) and then over HTTP/1.1 (Connect),
 * while the line moves. Reports the server's memory per open stream (RSS),
 * its CPU per 250 ms tick with the line still and moving (everything the
 * process does: admitter, hub, pushes), and how long after a move each
 * stream saw its new place (p50/p99). Used by `npm run bench:watch`.
 */
import { setMaxListeners } from "node:events";
import { readFileSync } from "node:fs";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { QueueService } from "@stagedoor/sdk";
import { createTestDatabase } from "../support/postgres.js";
import { demoGrade, seedCatalog } from "./bench-catalog.js";
import { CpuMeter } from "./cpu-meter.js";
import { ConnectionPool, jsonBody, percentile, runPhase } from "./load.js";
import type { PrivateRedis } from "./private-redis.js";
import { type Cleanup, startStagedoor } from "./processes.js";

const QUEUE_PATH = "/stagedoor.queue.v1.QueueService";

/** One protocol's figures. */
export interface StreamFigures {
  readonly protocol: string;
  readonly streams: number;
  /** Server RSS per open stream (KiB). */
  readonly rssPerStreamKiB: number;
  /** Server CPU per 250 ms tick (ms): the line still, and moving. */
  readonly idleTickCpuMs: number;
  readonly movingTickCpuMs: number;
  /** From a move to each stream's new position (ms). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Streams that saw every move (of all streams still waiting). */
  readonly updated: number;
}

/** Options of {@link runStreams}. */
export interface StreamOptions {
  readonly streams: number;
  readonly maxActive: number;
  /** Moves measured per protocol, each `leaves` admitted fans leaving at once. */
  readonly moves: number;
  readonly leaves: number;
}

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the stream benchmark over HTTP/2 and HTTP/1.1 on one server. */
export async function runStreams(
  redis: PrivateRedis,
  options: StreamOptions,
  cleanup: Cleanup,
  log: (line: string) => void,
): Promise<StreamFigures[]> {
  const database = await createTestDatabase();
  cleanup.defer("drop the streams database", () => database.drop());
  const server = await startStagedoor({
    databaseUrl: database.url,
    redis: { url: redis.url, keyPrefix: "streams:" },
    maxActive: options.maxActive,
    poolMax: undefined,
    cleanup,
    env: {
      WATCH_STREAMS_MAX: String(options.streams + 100),
      HTTP2_MAX_CONCURRENT_STREAMS: "1000",
      QUEUE_IDLE_SECONDS: "3600",
    },
  });
  const catalog = await seedCatalog(database.url, {
    dates: 1,
    seatsPerDate: 10,
    gradeOf: demoGrade,
  });
  const pool = new ConnectionPool(server.target, server.pid);
  const base = `http://127.0.0.1:${server.target.port}`;

  // maxActive admitted fans (they leave to move the line), then the watchers.
  log(`issuing ${options.streams + options.maxActive} tokens…`);
  const tokens: string[] = [];
  const issue = await runPhase(
    "tokens",
    pool,
    options.streams + options.maxActive,
    64,
    async (i, call) => {
      const reply = await call(
        server.target.post(`${QUEUE_PATH}/IssueQueueToken`, {
          concertId: catalog.concertId,
          userId: `fan-${i}`,
        }),
      );
      tokens[i] = String(jsonBody(reply).token ?? "");
    },
  );
  if (issue.errors > 0) throw new Error(`${issue.errors} token requests failed`);
  pool.close();
  // Issued concurrently: the admitted ones are whoever came first.
  const admitted: string[] = [];
  const waiting: string[] = [];
  const probe = createClient(
    QueueService,
    createConnectTransport({ baseUrl: base, httpVersion: "1.1" }),
  );
  for (let start = 0; start < tokens.length; start += 256) {
    const states = await Promise.all(
      tokens
        .slice(start, start + 256)
        .map((token) =>
          probe.getQueueStatus({}, { headers: { authorization: `Bearer ${token}` } }),
        ),
    );
    states.forEach((reply, i) => {
      const token = tokens[start + i] as string;
      if (reply.status?.position === 0n) admitted.push(token);
      else waiting.push(token);
    });
  }

  const figures: StreamFigures[] = [];
  const meter = new CpuMeter(server.pid);
  for (const protocol of ["HTTP/2 (gRPC)", "HTTP/1.1 (Connect)"] as const) {
    const h2 = protocol.startsWith("HTTP/2");
    // HTTP/2: one session per 1,000 streams (the server's per-session limit);
    // HTTP/1.1: one connection per stream.
    const clients: Client<typeof QueueService>[] = [];
    const perClient = h2 ? 1000 : waiting.length;
    for (let i = 0; i < waiting.length; i += perClient) {
      clients.push(
        createClient(
          QueueService,
          h2
            ? createGrpcTransport({ baseUrl: base })
            : createConnectTransport({ baseUrl: base, httpVersion: "1.1" }),
        ),
      );
    }
    await sleep(1000);
    const rssBefore = rssKiB(server.pid);
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    const lastPosition = new Map<number, bigint>();
    const latencies: number[] = [];
    let moveAt = 0;
    let opened = 0;
    let failed = 0;
    const read = async (token: string, i: number) => {
      const client = clients[Math.floor(i / perClient)] as Client<typeof QueueService>;
      try {
        for await (const message of client.watchQueueStatus(
          {},
          { headers: { authorization: `Bearer ${token}` }, signal: controller.signal },
        )) {
          if (message.event.case === "admitted") admitted.push(token);
          if (message.event.case !== "status") continue;
          const position = message.event.value.position;
          const last = lastPosition.get(i);
          lastPosition.set(i, position);
          if (last === undefined) opened++;
          else if (position < last && moveAt > 0) latencies.push(performance.now() - moveAt);
        }
      } catch {
        // Refused, or cancelled at the end of the phase.
        if (!controller.signal.aborted) failed++;
      }
    };
    log(`${protocol}: opening ${waiting.length} streams…`);
    // 500 at a time, as a crowd arrives, not 10,000 authentications at once.
    const readers: Promise<void>[] = [];
    for (let start = 0; start < waiting.length; start += 500) {
      const end = Math.min(waiting.length, start + 500);
      for (let i = start; i < end; i++) readers.push(read(waiting[i] as string, i));
      while (opened + failed < end) await sleep(100);
    }
    if (failed > 0) log(`${protocol}: ${failed} streams failed to open`);
    await sleep(2000);
    const rssAfter = rssKiB(server.pid);

    // The line stands still for 5 s.
    let cpu = meter.sample();
    await sleep(5000);
    const idleTickCpuMs = (meter.sample().server - cpu.server) / 1000 / 20;

    // Moves: `leaves` admitted fans leave; the admitter fills their slots
    // and every waiter moves up as many places.
    cpu = meter.sample();
    const moveStarted = performance.now();
    for (let m = 0; m < options.moves; m++) {
      const leaving = admitted.splice(0, options.leaves);
      moveAt = performance.now();
      await Promise.all(
        leaving.map((token) =>
          probe.leaveQueue({}, { headers: { authorization: `Bearer ${token}` } }),
        ),
      );
      // Every stream's update is due within 5 s; the newly admitted leave next.
      await sleep(6000);
    }
    const movingMs = performance.now() - moveStarted;
    const movingTickCpuMs = (meter.sample().server - cpu.server) / 1000 / (movingMs / 250);
    controller.abort();
    await Promise.all(readers);
    const sorted = Float64Array.from(latencies).sort();
    figures.push({
      protocol,
      streams: opened,
      rssPerStreamKiB: (rssAfter - rssBefore) / waiting.length,
      idleTickCpuMs,
      movingTickCpuMs,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted[sorted.length - 1] ?? 0,
      updated: latencies.length,
    });
    await sleep(3000);
  }
  return figures;
}
