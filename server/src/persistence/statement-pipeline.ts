import { createRequire } from "node:module";
import pg from "pg";

/** `pg`'s own mapping of a JavaScript value to a parameter (dates, buffers, arrays, JSON), as its `Query` uses it. */
const { prepareValue } = createRequire(import.meta.url)("pg/lib/utils.js") as {
  prepareValue(value: unknown): unknown;
};

/** The parts of `pg`'s connection (the protocol writer) a {@link StatementPipeline} sends through. */
interface ProtocolConnection {
  readonly stream: { cork?(): void; uncork?(): void };
  readonly parsedStatements: Record<string, string>;
  bind(config: { portal: string; statement: string; values: unknown[] }): void;
  describe(config: { type: "P"; name: string }): void;
  execute(config: { portal: string }): void;
  sync(): void;
  sendCopyFail(message: string): void;
}

/** A field and a row as `pg`'s protocol parser hands them over. */
interface RowDescription {
  readonly fields: unknown[];
}
interface DataRow {
  readonly fields: unknown[];
}

/** `pg`'s result parser, which turns a row's fields into an object with the client's type parsers. */
interface RowParser {
  addFields(fields: unknown[]): void;
  parseRow(fields: unknown[]): unknown;
}
const RowParser = pg.Result as unknown as new (rowMode: undefined, types: unknown) => RowParser;

/** One statement of a pipeline: a prepared statement, its parameters, and who waits for its rows. */
export interface PipelinedStatement {
  readonly name: string;
  readonly text: string;
  readonly values: readonly unknown[];
  resolve(rows: unknown[]): void;
  reject(error: unknown): void;
}

/**
 * Why a statement of a pipeline did not run: an earlier statement of the
 * same round trip failed, and PostgreSQL skips everything after a failure up
 * to the round trip's end. Inside a transaction that failure has aborted the
 * transaction anyway, so the statement could not have run either way.
 */
class PipelineSkippedError extends Error {
  constructor() {
    super("not run: an earlier statement of the same round trip failed");
    this.name = "PipelineSkippedError";
  }
}

/** True when every statement is already prepared on `client`'s connection, so a pipeline can run them. */
export function preparedOn(
  client: pg.ClientBase,
  statements: readonly PipelinedStatement[],
): boolean {
  const parsed = protocolOf(client).parsedStatements;
  return statements.every((statement) => parsed[statement.name] === statement.text);
}

function protocolOf(client: pg.ClientBase): ProtocolConnection {
  return (client as unknown as { connection: ProtocolConnection }).connection;
}

/**
 * Several prepared statements sent to PostgreSQL in one write and answered
 * in one round trip (the extended protocol's pipelining: a Bind, Describe and
 * Execute per statement, then a single Sync), instead of one round trip each.
 * `pg` has no pipelining of its own, but takes any object with `submit` as a
 * query (a "submittable", as pg-cursor is): the client sends it when the
 * connection is free and routes every reply to it until ReadyForQuery.
 *
 * Only statements already prepared on the connection are pipelined (see
 * {@link preparedOn}): a Parse cannot be tracked per statement here. The
 * statements run in order. The first that fails gets its error; PostgreSQL
 * skips the rest until the Sync, and they are rejected with a
 * {@link PipelineSkippedError}.
 */
export class StatementPipeline {
  private index = 0;
  private result: RowParser | null = null;
  private rows: unknown[] = [];
  /** A row that could not be parsed fails its statement once it completes. */
  private parseError: unknown = null;
  /** The answers of the statements completed so far, in order. */
  private readonly answers: Answer[] = [];
  private done = false;

  constructor(
    private readonly statements: readonly PipelinedStatement[],
    /** The client's type parsers, so rows read as with `client.query`. */
    private readonly types: unknown,
    /** Called once the connection is done with the pipeline (its ReadyForQuery, or an error). */
    private readonly settled: () => void,
  ) {}

  /**
   * Runs the pipeline on `client`: each statement settles its own promise,
   * and `settled` is called once they all have.
   */
  static run(
    client: pg.ClientBase,
    statements: readonly PipelinedStatement[],
    settled: () => void,
  ): void {
    const types = (client as unknown as { _types: unknown })._types;
    client.query(new StatementPipeline(statements, types, settled) as unknown as pg.Submittable);
  }

  /** Called by `pg` when the connection is free: writes every message, then one Sync. */
  submit(connection: ProtocolConnection): Error | null {
    // Map every value first: one that cannot be sent must fail the pipeline
    // before any message is written, or the connection would wait for a Sync.
    const values: unknown[][] = [];
    for (const statement of this.statements) {
      try {
        values.push(statement.values.map(prepareValue));
      } catch (error) {
        // Nothing was sent: that statement gets the error, the others did not run.
        this.done = true;
        for (const other of this.statements) {
          other.reject(other === statement ? error : new PipelineSkippedError());
        }
        this.settled();
        return error instanceof Error ? error : new Error(String(error));
      }
    }
    connection.stream.cork?.();
    try {
      this.statements.forEach((statement, i) => {
        connection.bind({ portal: "", statement: statement.name, values: values[i] ?? [] });
        connection.describe({ type: "P", name: "" });
        connection.execute({ portal: "" });
      });
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
    return null;
  }

  handleRowDescription(message: RowDescription): void {
    this.result = new RowParser(undefined, this.types);
    this.result.addFields(message.fields);
  }

  handleDataRow(message: DataRow): void {
    if (this.parseError !== null || this.result === null) return;
    try {
      this.rows.push(this.result.parseRow(message.fields));
    } catch (error) {
      this.parseError = error;
    }
  }

  handleCommandComplete(): void {
    this.complete();
  }

  handleEmptyQuery(): void {
    this.complete();
  }

  /** An error reply (or a broken connection): the current statement fails, the rest were skipped. */
  handleError(error: unknown): void {
    if (this.done) return;
    this.done = true;
    this.answer();
    this.statements[this.index]?.reject(error);
    for (const skipped of this.statements.slice(this.index + 1)) {
      skipped.reject(new PipelineSkippedError());
    }
    this.settled();
  }

  handleReadyForQuery(): void {
    if (this.done) return;
    this.done = true;
    this.answer();
    // Every statement completed before the Sync's reply; anything left was not answered.
    for (const unanswered of this.statements.slice(this.index)) {
      unanswered.reject(new PipelineSkippedError());
    }
    this.settled();
  }

  handlePortalSuspended(): void {
    // Never asked for: every Execute is sent without a row limit.
  }

  handleCopyInResponse(connection: ProtocolConnection): void {
    connection.sendCopyFail("COPY is not supported in a statement pipeline");
  }

  handleCopyData(): void {
    // No COPY is ever started.
  }

  /** Keeps the current statement's answer until the round trip ends (see {@link answer}). */
  private complete(): void {
    const { rows, parseError } = this;
    this.answers.push(parseError === null ? { ok: true, rows } : { ok: false, error: parseError });
    this.index += 1;
    this.result = null;
    this.rows = [];
    this.parseError = null;
  }

  /**
   * Hands the completed statements their answers. Only once the round trip
   * has ended, so what their callers send next finds the connection free.
   */
  private answer(): void {
    this.answers.forEach((answer, i) => {
      const statement = this.statements[i];
      if (answer.ok) statement?.resolve(answer.rows);
      else statement?.reject(answer.error);
    });
  }
}

/** A completed statement's rows, or why they could not be read. */
type Answer = { ok: true; rows: unknown[] } | { ok: false; error: unknown };
