import pg from "pg";
import { fmt, formatTable } from "./load.js";

/** One statement's figures over a phase, as pg_stat_statements kept them. */
export interface StatementFigures {
  readonly calls: number;
  /** Mean execution time per call, µs (wall time in the executor: lock waits and time off the CPU included). */
  readonly execUs: number;
  /** Mean planning time per plan made, µs; `plans` says how many calls were planned at all. */
  readonly planUs: number;
  readonly plans: number;
  /** The statement's text, whitespace collapsed, cut to a table cell. */
  readonly text: string;
}

/** What a round's PostgreSQL did per statement in each phase that was watched. */
export type PhaseStatements = ReadonlyMap<string, readonly StatementFigures[]>;

/** How many statements a phase lists, by total time. */
const TOP = 8;

/**
 * Each statement's figures in each phase of a round, read from
 * `pg_stat_statements` on the round's own database: reset before the phase,
 * read after it, outside the measured window. Only when the server loads the
 * module (`shared_preload_libraries = 'pg_stat_statements'`, and
 * `pg_stat_statements.track_planning = on` for the planning column);
 * otherwise {@link open} says why and the rush runs without it. Resetting
 * needs a superuser or a role granted `pg_stat_statements_reset`.
 */
export class StatementWatch {
  readonly phases = new Map<string, readonly StatementFigures[]>();

  private constructor(private readonly client: pg.Client) {}

  /** A watch on `databaseUrl`'s database, or the reason there cannot be one. */
  static async open(databaseUrl: string): Promise<StatementWatch | string> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const loaded = await client.query<{ libraries: string }>(
        "select current_setting('shared_preload_libraries') as libraries",
      );
      if (!/\bpg_stat_statements\b/.test(loaded.rows[0]?.libraries ?? "")) {
        await client.end();
        return "PostgreSQL does not load pg_stat_statements (shared_preload_libraries)";
      }
      await client.query("create extension if not exists pg_stat_statements");
      return new StatementWatch(client);
    } catch (error) {
      await client.end().catch(() => undefined);
      return `pg_stat_statements could not be used: ${(error as Error).message}`;
    }
  }

  /** Forgets this database's figures so far (every user's), just before a phase. */
  async before(): Promise<void> {
    await this.client.query(
      `select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)`,
    );
  }

  /** Keeps the top statements of this database since {@link before}, by total time, as `phase`'s. */
  async after(phase: string): Promise<void> {
    const result = await this.client.query<{
      calls: string;
      exec_ms: number;
      plan_ms: number;
      plans: string;
      query: string;
    }>(
      `select calls, total_exec_time as exec_ms, total_plan_time as plan_ms, plans, query
         from pg_stat_statements
        where dbid = (select oid from pg_database where datname = current_database())
          and query not like '%pg_stat_statements%'
        order by total_exec_time + total_plan_time desc
        limit $1`,
      [TOP],
    );
    this.phases.set(
      phase,
      result.rows.map((row) => {
        const calls = Number(row.calls);
        const plans = Number(row.plans);
        return {
          calls,
          execUs: calls > 0 ? (row.exec_ms * 1000) / calls : 0,
          planUs: plans > 0 ? (row.plan_ms * 1000) / plans : 0,
          plans,
          text: row.query.replace(/\s+/g, " ").trim().slice(0, 72),
        };
      }),
    );
  }

  async close(): Promise<void> {
    await this.client.end();
  }
}

/** The watched phases' statements as one table per phase. */
export function formatStatements(phases: PhaseStatements): string {
  const parts: string[] = [];
  for (const [phase, statements] of phases) {
    parts.push(
      `${phase}:`,
      formatTable(
        ["calls", "exec µs", "plans", "plan µs", "statement"],
        statements.map((s) => [
          fmt(s.calls),
          fmt(s.execUs),
          fmt(s.plans),
          s.plans > 0 ? fmt(s.planUs) : "-",
          s.text,
        ]),
      ),
    );
  }
  return parts.join("\n");
}
