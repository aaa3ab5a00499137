/**
 * `npm run bench:prune`: the request-id pruner against a large backlog while
 * writes go on. On a throwaway database (createTestDatabase: TEST_DATABASE_URL
 * or the embedded cluster), creates PRUNE_ROWS (1,000,000) claims past the
 * retention window, then runs pruneRequestIds (the job's own function, its
 * default batch size) while PRUNE_WRITERS (4) writers keep claiming new
 * request ids through claimRequestId, each claim in its own transaction as a
 * hold, recharge or payment makes it. Prints the prune rate, how long its
 * batches took, and the writers' claim latency before and during the prune:
 * if the prune blocked writes, the p99 during it would show it.
 *
 * A benchmark, not a test: it prints figures and asserts only that every
 * due row went and every new claim stayed.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { REQUEST_ID_RETENTION_MS } from "../../server/src/jobs/background-jobs.js";
import { entities } from "../../server/src/modules/entities.js";
import {
  claimRequestId,
  PRUNE_BATCH,
  pruneRequestIds,
} from "../../server/src/modules/idempotency/index.js";
import { transaction } from "../../server/src/persistence/database.js";
import { migrateUp, openOrm } from "../../server/src/persistence/orm.js";
import { TxConnection } from "../../server/src/persistence/sql.js";
import { createTestDatabase, stopSharedPostgres } from "../support/postgres.js";
import { fmt, formatTable, percentile } from "./load.js";

const ROWS = Number(process.env.PRUNE_ROWS ?? 1_000_000);
const WRITERS = Number(process.env.PRUNE_WRITERS ?? 4);
const BATCH = Number(process.env.PRUNE_BATCH_SIZE ?? PRUNE_BATCH);
/** How long the writers are measured alone, before the prune. */
const BASELINE_MS = Number(process.env.PRUNE_BASELINE_MS ?? 5_000);

interface Latencies {
  readonly ms: number[];
  errors: number;
}

async function main(): Promise<void> {
  const database = await createTestDatabase();
  const orm = await openOrm({ url: database.url, entities, poolMax: WRITERS + 2 });
  const sql = new pg.Pool({ connectionString: database.url, max: 2 });
  try {
    await migrateUp(orm, database.url);
    const now = Date.now();
    const cutoff = new Date(now - REQUEST_ID_RETENTION_MS);

    let started = performance.now();
    // Spread over a day before the cut-off, in chunks so no single insert is huge.
    for (let from = 0; from < ROWS; from += 200_000) {
      const to = Math.min(ROWS, from + 200_000);
      await sql.query(
        `insert into idempotency_key (user_id, request_id, operation, request_hash, result_id, created_at)
         select 'user-' || (n % 50000), 'old-' || n, 'pay', 'h', gen_random_uuid(),
                $1::timestamptz - (n % 86400000) * interval '1 ms'
           from generate_series($2::int, $3::int) n`,
        [cutoff, from + 1, to],
      );
    }
    await sql.query("vacuum analyze idempotency_key");
    console.log(
      `created ${fmt(ROWS)} due claims in ${fmt((performance.now() - started) / 1000, 1)} s`,
    );

    // Writers: each claims fresh ids one after another until told to stop.
    let phase: Latencies = { ms: [], errors: 0 };
    let stop = false;
    let ids = 0;
    const writer = async (w: number) => {
      while (!stop) {
        const id = ids++;
        const begin = performance.now();
        try {
          await transaction(orm.em, async (em) =>
            claimRequestId(
              await TxConnection.of(em),
              {
                userId: `writer-${w}`,
                requestId: `new-${id}`,
                operation: "recharge",
                params: [id],
              },
              randomUUID(),
              new Date(),
            ),
          );
          phase.ms.push(performance.now() - begin);
        } catch (error) {
          phase.errors++;
          if (phase.errors === 1) console.error("a claim failed:", error);
        }
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));

    await sleep(BASELINE_MS);
    const baseline = phase;
    phase = { ms: [], errors: 0 };

    const batches: number[] = [];
    let batchStart = performance.now();
    started = performance.now();
    const deleted = await pruneRequestIds(orm.em.fork(), cutoff, {
      batchSize: BATCH,
      shouldStop: () => {
        const end = performance.now();
        batches.push(end - batchStart);
        batchStart = end;
        return false;
      },
    });
    const pruneMs = performance.now() - started;
    const during = phase;
    stop = true;
    await Promise.all(writers);

    const [left] = (
      await sql.query<{ due: number; fresh: number }>(
        `select count(*) filter (where created_at < $1)::int as due,
                count(*) filter (where created_at >= $1)::int as fresh
           from idempotency_key`,
        [cutoff],
      )
    ).rows;
    const claimed = baseline.ms.length + during.ms.length;

    console.log(
      `\npruned ${fmt(deleted)} claims in ${fmt(pruneMs / 1000, 2)} s: ` +
        `${fmt(deleted / (pruneMs / 1000))} claims/s, ${fmt(batches.length)} batches of ${fmt(BATCH)}`,
    );
    const sortedBatches = [...batches].sort((a, b) => a - b);
    console.log(
      `batch time: p50 ${fmt(percentile(sortedBatches, 50), 1)} ms, ` +
        `p99 ${fmt(percentile(sortedBatches, 99), 1)} ms, max ${fmt(sortedBatches.at(-1) ?? 0, 1)} ms`,
    );
    const row = (name: string, l: Latencies, ms: number) => {
      const sorted = [...l.ms].sort((a, b) => a - b);
      return [
        name,
        fmt(sorted.length),
        fmt(sorted.length / (ms / 1000)),
        fmt(percentile(sorted, 50), 2),
        fmt(percentile(sorted, 99), 2),
        fmt(sorted.at(-1) ?? 0, 2),
        fmt(l.errors),
      ];
    };
    console.log(
      `\n${WRITERS} writers claiming request ids (each claim its own transaction):\n${formatTable(
        ["phase", "claims", "claims/s", "p50 ms", "p99 ms", "max ms", "errors"],
        [row("alone", baseline, BASELINE_MS), row("during the prune", during, pruneMs)],
      )}`,
    );
    console.log(
      `\nleft: ${fmt(left?.due ?? -1)} due, ${fmt(left?.fresh ?? -1)} new (claimed ${fmt(claimed)})`,
    );
    if (left?.due !== 0 || left?.fresh !== claimed || baseline.errors + during.errors > 0) {
      process.exitCode = 1;
      console.error("FAILED: the prune left due rows, lost new claims or broke a claim");
    }
  } finally {
    await sql.end();
    await orm.close();
    await database.drop();
    await stopSharedPostgres();
  }
}

await main();
