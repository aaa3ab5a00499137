import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { WriteBatchFigures } from "../persistence/write-batcher.js";
import type { QueueEvents } from "../shared/queue-events.js";
import type { SaleEvents } from "../shared/sale-events.js";

/** How long calls take, in seconds: a fast read to a slow payment under load. */
const CALL_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** How long users waited in line before admission, in seconds: a free slot to a long rush. */
const WAIT_SECONDS_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];

/** How long one read of the lines' counts serves scrapes (several scrapers, one read). */
const LINE_COUNTS_CACHE_MS = 1_000;

/** One open line's counts, read at scrape time. */
export interface LineCountsSample {
  readonly concertId: string;
  readonly waiting: number;
  readonly admitted: number;
}

/** A health probe read at scrape time: resolves when the dependency answers. */
export type Probe = () => Promise<unknown>;

/** The database pool's counts, read at scrape time (undefined when unknown). */
export interface PoolCounts {
  readonly used: number;
  readonly free: number;
  readonly pending: number;
}

/** What the metrics read from the running server at scrape time. */
export interface MetricsSources {
  readonly database?: Probe;
  readonly redis?: Probe;
  readonly pool?: () => PoolCounts | undefined;
  /** Every open line's counts (bounded by the concerts on sale). */
  readonly lines?: () => Promise<readonly LineCountsSample[]>;
  /** Group commit of holds, recharges and payments (persistence/write-batcher.ts), added up. */
  readonly writes?: () => WriteBatchFigures;
}

/**
 * The server's Prometheus metrics on a registry of their own (never the
 * global default one, so tests can build many servers in one process).
 * Labels are bounded: a method is a served RPC's full name or a REST route,
 * every other path is one `unknown` (see `logCall`); no user, token or id is
 * ever a label.
 */
export interface Metrics {
  readonly registry: Registry;
  /** Records one finished call: its method, its final code, and how long it took. */
  observeCall(method: string, code: string, seconds: number): void;
  /** Counts holds by outcome, sales and refunds with their amounts. */
  readonly saleEvents: SaleEvents;
  /** Counts admissions per concert, out-of-order ones, and observes their waits. */
  readonly queueEvents: QueueEvents;
  /** Tells the metrics where to read health and pool figures at scrape time. */
  watch(sources: MetricsSources): void;
  /** The scrape body, in Prometheus text format. */
  render(): Promise<string>;
  readonly contentType: string;
}

/**
 * Builds the metrics of one server: calls by method and code with a latency
 * histogram, process and event-loop metrics (prom-client's defaults, whose
 * event-loop lag comes from `monitorEventLoopDelay`), database and Redis
 * health read when scraped, and the waiting room's figures per concert (the
 * `concert` label takes concert ids only, as many as have had an open line).
 * `now` times the lines' cache only (tests pass a fake clock).
 */
export function createMetrics(now: () => number = Date.now): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const calls = new Counter({
    name: "stagedoor_calls_total",
    help: "Finished calls (RPC by full method name, REST by route) by final code.",
    labelNames: ["method", "code"] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: "stagedoor_call_duration_seconds",
    help: "How long calls took until answered, by method and final code.",
    labelNames: ["method", "code"] as const,
    buckets: CALL_SECONDS_BUCKETS,
    registers: [registry],
  });
  const holds = new Counter({
    name: "stagedoor_holds_total",
    help: "Seat hold attempts by outcome: held (a new hold), repeated (the caller's own hold again), refused (the seat was not available).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  const sales = new Counter({
    name: "stagedoor_sales_total",
    help: "Tickets paid for.",
    registers: [registry],
  });
  const revenue = new Counter({
    name: "stagedoor_sales_amount_total",
    help: "What paid tickets cost, in minor units.",
    registers: [registry],
  });
  const refunds = new Counter({
    name: "stagedoor_refunds_total",
    help: "Tickets refunded by an operator.",
    registers: [registry],
  });
  const refunded = new Counter({
    name: "stagedoor_refunds_amount_total",
    help: "What refunded tickets cost, in minor units.",
    registers: [registry],
  });
  for (const outcome of ["held", "repeated", "refused"]) holds.inc({ outcome }, 0);
  const admissions = new Counter({
    name: "stagedoor_queue_admissions_total",
    help: "Users admitted from a concert's waiting line (rate() of it is the admission rate).",
    labelNames: ["concert"] as const,
    registers: [registry],
  });
  const outOfOrder = new Counter({
    name: "stagedoor_queue_admitted_out_of_order_total",
    help: "Admissions of a user after someone who joined the concert's line later (must stay 0).",
    labelNames: ["concert"] as const,
    registers: [registry],
  });
  const waits = new Histogram({
    name: "stagedoor_queue_wait_seconds",
    help: "How long admitted users waited in line, from joining to admission.",
    buckets: WAIT_SECONDS_BUCKETS,
    registers: [registry],
  });
  let sources: MetricsSources = {};
  const up = async (probe: Probe | undefined): Promise<number> => {
    if (probe === undefined) return 1;
    try {
      await probe();
      return 1;
    } catch {
      return 0;
    }
  };
  new Gauge({
    name: "stagedoor_database_up",
    help: "1 when PostgreSQL answered a query at scrape time, else 0.",
    registers: [registry],
    async collect() {
      this.set(await up(sources.database));
    },
  });
  new Gauge({
    name: "stagedoor_redis_up",
    help: "1 when the waiting room's store answered a ping at scrape time, else 0 (1 for the in-process store).",
    registers: [registry],
    async collect() {
      this.set(await up(sources.redis));
    },
  });
  new Gauge({
    name: "stagedoor_db_pool_connections",
    help: "Connections of the PostgreSQL pool by state (used, free) and requests waiting for one (pending).",
    labelNames: ["state"] as const,
    registers: [registry],
    collect() {
      const counts = sources.pool?.();
      if (counts === undefined) return;
      this.set({ state: "used" }, counts.used);
      this.set({ state: "free" }, counts.free);
      this.set({ state: "pending" }, counts.pending);
    },
  });
  new Gauge({
    name: "stagedoor_db_write_batching",
    help: "Group commit of holds and of recharges and payments: their transactions open now (open, at most DB_WRITE_LANES for each of the two) and writes waiting for one (waiting).",
    labelNames: ["state"] as const,
    registers: [registry],
    collect() {
      const figures = sources.writes?.();
      if (figures === undefined) return;
      this.set({ state: "open" }, figures.open);
      this.set({ state: "waiting" }, figures.waiting);
    },
  });
  for (const [name, help, figure] of WRITE_COUNTERS) {
    writeCounter(registry, name, help, () => sources.writes?.()[figure]);
  }
  let linesRead: { at: number; lines: Promise<readonly LineCountsSample[]> } | undefined;
  const readLines = (): Promise<readonly LineCountsSample[]> => {
    const read = sources.lines;
    if (read === undefined) return Promise.resolve([]);
    const at = now();
    if (linesRead === undefined || at - linesRead.at >= LINE_COUNTS_CACHE_MS) {
      const lines = read();
      linesRead = { at, lines };
      // A failed read is not kept: the next scrape tries again.
      lines.catch(() => {
        if (linesRead?.lines === lines) linesRead = undefined;
      });
    }
    return linesRead.lines;
  };
  const lineGauge = (name: string, help: string, pick: (line: LineCountsSample) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["concert"] as const,
      registers: [registry],
      async collect() {
        const lines = await readLines().catch(() => undefined);
        // The store is down (stagedoor_redis_up says so): no figures rather than stale ones.
        this.reset();
        for (const line of lines ?? []) this.set({ concert: line.concertId }, pick(line));
      },
    });
  lineGauge(
    "stagedoor_queue_waiting",
    "Users waiting in a concert's line, read from the waiting room at scrape time.",
    (line) => line.waiting,
  );
  lineGauge(
    "stagedoor_queue_admitted",
    "Users admitted to a concert's line whose admission has not ended, read at scrape time.",
    (line) => line.admitted,
  );
  return {
    registry,
    queueEvents: {
      admitted(concert, waitMs, late) {
        admissions.inc({ concert });
        if (late) outOfOrder.inc({ concert });
        else outOfOrder.inc({ concert }, 0);
        waits.observe(waitMs / 1000);
      },
    },
    saleEvents: {
      hold: (outcome) => holds.inc({ outcome }),
      sold(amount) {
        sales.inc();
        revenue.inc(Number(amount));
      },
      refunded(amount) {
        refunds.inc();
        refunded.inc(Number(amount));
      },
    },
    contentType: registry.contentType,
    observeCall(method, code, seconds) {
      const labels = { method, code };
      calls.inc(labels);
      durations.observe(labels, seconds);
    },
    watch(next) {
      sources = next;
    },
    render: () => registry.metrics(),
  };
}

/** The group-commit counters: name, help, and the figure each one reports. */
const WRITE_COUNTERS: readonly (readonly [string, string, keyof WriteBatchFigures])[] = [
  [
    "stagedoor_db_writes_total",
    "Holds, recharges and payments run in group commit, refused ones included.",
    "writes",
  ],
  [
    "stagedoor_db_write_transactions_total",
    "Transactions holds, recharges and payments ran in; writes ÷ transactions is their mean batch.",
    "transactions",
  ],
  [
    "stagedoor_db_writes_refused_total",
    "Holds, recharges and payments refused as SERVER_BUSY after waiting too long for a transaction.",
    "refused",
  ],
  [
    "stagedoor_db_write_batches_undone_total",
    "Group-commit batches rolled back because one of their writes failed with an error; their other writes ran again.",
    "undone",
  ],
  [
    "stagedoor_db_writes_taken_back_total",
    "Refused holds, recharges and payments that took back their request-id claim inside a group-commit batch, which then committed the others.",
    "takenBack",
  ],
];

/**
 * A counter that follows a running total kept elsewhere (read at scrape
 * time): each scrape adds what the total grew by since the last one.
 */
function writeCounter(
  registry: Registry,
  name: string,
  help: string,
  read: () => number | undefined,
): void {
  let counted = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const total = read();
      if (total === undefined || total <= counted) return;
      this.inc(total - counted);
      counted = total;
    },
  });
}
