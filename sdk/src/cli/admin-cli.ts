/**
 * `stagedoor-admin`, the operator command line: the operator API
 * (`AdminService`) and the catalog's listings from a terminal or a script.
 * The server comes from `--server` or `STAGEDOOR_URL`, the operator API key
 * from `STAGEDOOR_ADMIN_KEY` only (never an argument: arguments show in
 * `ps` and shell history, and the key is never printed). Every mutation
 * sends a request id (`--request-id`, or a fresh one that is printed), so
 * running it again with the same id never acts twice.
 *
 * Exit codes: 0 done; 1 the server refused (its reason is printed); 2 bad
 * usage (an unknown command or flag, a missing or malformed value, no key,
 * an unreadable file); 3 the seat map has bad rows; 4 no answer from a
 * Stagedoor server (unreachable, or something else answered).
 */

import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { durationMs, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createAdminClient, type StagedoorAdminClient, seatMapFormatOf } from "../admin.js";
import { callIdempotently } from "../call-idempotently.js";
import { errorReason, fieldViolations, isRetryable } from "../errors.js";
import {
  CreateConcertResponseSchema,
  CreatePerformanceResponseSchema,
  CreditWalletResponseSchema,
  GetSaleSettingsResponseSchema,
  ImportSeatMapResponseSchema,
  OpeningDrawState,
  RefundTicketResponseSchema,
  type SaleSettings,
  SaleSettingsSchema,
  type SaleStats,
  SaleStatsSchema,
} from "../gen/stagedoor/admin/v1/admin_service_pb.js";
import {
  CatalogService,
  type Concert,
  ConcertSchema,
} from "../gen/stagedoor/catalog/v1/catalog_service_pb.js";
import { createNodeTransport } from "../node.js";

/** What the command line exits with. */
export const EXIT = {
  ok: 0,
  refused: 1,
  usage: 2,
  badSeatMap: 3,
  unreachable: 4,
} as const;

/** Where the command line runs: its environment, its output and what stops it. */
export interface CliContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Aborted on Ctrl-C: `stats --watch` then stops and exits 0. */
  readonly signal: AbortSignal;
}

/** A mistake in the command line itself, reported with exit code 2. */
class UsageError extends Error {}

type OptionSpec = { readonly type: "string" | "boolean"; readonly short?: string };
type Values = Record<string, string | boolean | undefined>;

/** What every command reads: the server, the output format and the help flag. */
const GLOBAL_OPTIONS = {
  server: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies Record<string, OptionSpec>;

/** The id of one logical change, reused to retry it safely. */
const REQUEST_ID_OPTION = { "request-id": { type: "string" } } as const;

/** What a command is given to act. */
interface Run {
  readonly values: Values;
  readonly positionals: readonly string[];
  readonly ctx: CliContext;
  readonly baseUrl: string;
  /** The admin client; throws a usage error when STAGEDOOR_ADMIN_KEY is unset. */
  admin(): StagedoorAdminClient;
  /** The request id of a mutation: `--request-id` or a fresh one. */
  readonly requestId: string;
  /** Prints a result: `human` as text, or `json` as one line of JSON with `--json`. */
  print(human: string, json: unknown): void;
}

interface Command {
  /** The words that name it, e.g. `concerts create`. */
  readonly name: string;
  /** Its arguments and flags, for the help. */
  readonly usage: string;
  readonly summary: string;
  readonly options: Record<string, OptionSpec>;
  /** How many positional arguments it takes (the seat map's file). */
  readonly positionals?: readonly string[];
  run(run: Run): Promise<number>;
}

/** The value of a required string flag, trimmed. */
function required(values: Values, flag: string): string {
  const value = values[flag];
  if (typeof value !== "string" || value.trim() === "") {
    throw new UsageError(`--${flag} is required`);
  }
  return value.trim();
}

/** An optional string flag, trimmed, or "" when absent. */
function optional(values: Values, flag: string): string {
  const value = values[flag];
  return typeof value === "string" ? value.trim() : "";
}

/**
 * A point in time given as ISO 8601 with its offset (`2026-12-24T19:00:00+09:00`
 * or `…Z`): a time without one would depend on the operator's machine.
 */
function parseTime(value: string, flag: string): Date {
  const date = new Date(value);
  if (!/(?:Z|[+-]\d\d:?\d\d)$/i.test(value) || Number.isNaN(date.getTime())) {
    throw new UsageError(
      `--${flag} must be an ISO 8601 time with its offset, e.g. 2026-12-24T19:00:00+09:00 (got ${JSON.stringify(value)})`,
    );
  }
  return date;
}

/** A positive whole number of minor units. */
function parseAmount(value: string, flag: string): bigint {
  if (!/^[1-9]\d{0,17}$/.test(value)) {
    throw new UsageError(`--${flag} must be a positive whole number of minor units`);
  }
  return BigInt(value);
}

/** The `{...}` JSON of a message, int64 as strings (protobuf's JSON mapping). */
function json<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): unknown {
  return toJson(schema, message, { alwaysEmitImplicit: true });
}

function iso(date: Date | undefined): string {
  return date ? date.toISOString() : "-";
}

/** A duration in words: `1h 05m`, `4m 10s`, `12s`. */
function humanDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m ${String(s).padStart(2, "0")}s`;
  return `${s}s`;
}

/** A sale's figures as a few lines of text. */
function statsText(concertId: string, stats: SaleStats): string {
  const eta = stats.estimatedTimeToSellOut
    ? `sells out in about ${humanDuration(durationMs(stats.estimatedTimeToSellOut))}`
    : "no sell-out estimate";
  return [
    `concert ${concertId} at ${iso(stats.readTime ? timestampDate(stats.readTime) : undefined)}`,
    `  seats    total ${stats.totalSeats}, available ${stats.availableSeats}, held ${stats.heldSeats}, sold ${stats.soldSeats}`,
    `  revenue  ${stats.revenue} (refunded: ${stats.refundedTickets} tickets, ${stats.refundedAmount})`,
    `  rate     ${stats.soldLastFiveMinutes} sold in the last 5 minutes (${stats.salesPerMinute.toFixed(1)}/min), ${eta}`,
  ].join("\n");
}

/** A sale's settings in one line. */
function saleText(concertId: string, settings: SaleSettings | undefined): string {
  const opensAt = settings?.opensAt
    ? `opens at ${timestampDate(settings.opensAt).toISOString()}`
    : "no scheduled opening";
  const admitted = settings?.maxAdmitted
    ? `at most ${settings.maxAdmitted} admitted`
    : "default admission limit";
  return `sale of concert ${concertId}: ${opensAt}, ${admitted}, admission ${settings?.paused ? "PAUSED" : "running"}`;
}

/** `sale open`, `sale pause` and `sale resume`: one call each, printing the settings after it. */
function saleCommand(
  action: "open" | "pause" | "resume",
  usage: string,
  summary: string,
  options: Record<string, OptionSpec>,
  /** Reads the flags once, and returns the call that each attempt makes with the same request id. */
  prepare: (
    admin: StagedoorAdminClient,
    concertId: string,
    run: Run,
  ) => (requestId: string) => Promise<{ settings?: SaleSettings }>,
): Command {
  return {
    name: `sale ${action}`,
    usage: `--concert ID ${usage}[--request-id ID]`,
    summary,
    options: { concert: { type: "string" }, ...options, ...REQUEST_ID_OPTION },
    async run(run) {
      const concertId = required(run.values, "concert");
      const admin = run.admin();
      const { settings } = await callIdempotently(prepare(admin, concertId, run), {
        requestId: run.requestId,
      });
      run.print(`${saleText(concertId, settings)}\nrequest id: ${run.requestId}`, {
        requestId: run.requestId,
        settings: settings ? json(SaleSettingsSchema, settings) : null,
      });
      return EXIT.ok;
    },
  };
}

const COMMANDS: readonly Command[] = [
  {
    name: "concerts create",
    usage: "--title TITLE --venue VENUE --time-zone ZONE [--request-id ID]",
    summary: "Adds a concert (listed to fans at once).",
    options: {
      title: { type: "string" },
      venue: { type: "string" },
      "time-zone": { type: "string" },
      ...REQUEST_ID_OPTION,
    },
    async run(run) {
      const admin = run.admin();
      const request = {
        title: required(run.values, "title"),
        venue: required(run.values, "venue"),
        timeZone: required(run.values, "time-zone"),
      };
      const response = await callIdempotently(
        (requestId) => admin.createConcert({ ...request, requestId }),
        { requestId: run.requestId },
      );
      const concert = response.concert;
      run.print(
        `created concert ${concert?.id} "${concert?.title}" at ${concert?.venue} (${concert?.timeZone})\nrequest id: ${run.requestId}`,
        { requestId: run.requestId, ...(json(CreateConcertResponseSchema, response) as object) },
      );
      return EXIT.ok;
    },
  },
  {
    name: "concerts list",
    usage: "",
    summary: "Lists every concert (the catalog, as fans see it; needs no key).",
    options: {},
    async run(run) {
      const catalog = createClient(
        CatalogService,
        createNodeTransport({ baseUrl: run.baseUrl, defaultTimeoutMs: 15_000 }),
      );
      const concerts: Concert[] = [];
      let pageToken = "";
      do {
        const page = await catalog.listConcerts({ pageSize: 100, pageToken });
        concerts.push(...page.concerts);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      run.print(
        concerts.length === 0
          ? "no concerts"
          : concerts.map((c) => `${c.id}  ${c.title}  (${c.venue}, ${c.timeZone})`).join("\n"),
        { concerts: concerts.map((c) => json(ConcertSchema, c)) },
      );
      return EXIT.ok;
    },
  },
  {
    name: "performances create",
    usage: "--concert ID --starts-at TIME [--sales-close-at TIME] [--request-id ID]",
    summary: "Adds a performance (a date) to a concert; times are ISO 8601 with an offset.",
    options: {
      concert: { type: "string" },
      "starts-at": { type: "string" },
      "sales-close-at": { type: "string" },
      ...REQUEST_ID_OPTION,
    },
    async run(run) {
      const concertId = required(run.values, "concert");
      const startsAt = parseTime(required(run.values, "starts-at"), "starts-at");
      const closeAt = optional(run.values, "sales-close-at");
      const salesClose = closeAt === "" ? undefined : parseTime(closeAt, "sales-close-at");
      const admin = run.admin();
      const response = await callIdempotently(
        (requestId) =>
          admin.createPerformance({
            concertId,
            startTime: timestampFromDate(startsAt),
            ...(salesClose ? { salesCloseTime: timestampFromDate(salesClose) } : {}),
            requestId,
          }),
        { requestId: run.requestId },
      );
      const performance = response.performance;
      run.print(
        `created performance ${performance?.id} on ${performance?.date} (starts ${iso(
          performance?.startTime ? timestampDate(performance.startTime) : undefined,
        )}); import its seat map next\nrequest id: ${run.requestId}`,
        {
          requestId: run.requestId,
          ...(json(CreatePerformanceResponseSchema, response) as object),
        },
      );
      return EXIT.ok;
    },
  },
  {
    name: "seatmap import",
    usage: "FILE --performance ID [--dry-run] [--request-id ID]",
    summary:
      "Imports a performance's seat map from a .csv or .json file; --dry-run only checks every row.",
    options: {
      performance: { type: "string" },
      "dry-run": { type: "boolean" },
      ...REQUEST_ID_OPTION,
    },
    positionals: ["FILE"],
    async run(run) {
      const file = run.positionals[0] ?? "";
      const format = seatMapFormatOf(file);
      if (format === undefined) {
        throw new UsageError(`${file}: the seat map must be a .csv or .json file`);
      }
      const concertDateId = required(run.values, "performance");
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (error) {
        throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
      }
      const admin = run.admin();
      const validateOnly = run.values["dry-run"] === true;
      let response: Awaited<ReturnType<StagedoorAdminClient["importSeatMap"]>>;
      try {
        response = await callIdempotently(
          (requestId) =>
            admin.importSeatMap({ concertDateId, format, text, validateOnly, requestId }),
          { requestId: run.requestId },
        );
      } catch (error) {
        // A real import with bad rows is refused as a whole; its violations name the lines.
        const bad = fieldViolations(error).filter((v) => v.field === "text");
        if (errorReason(error) === "INVALID_ARGUMENT" && bad.length > 0) {
          run.print(
            [
              `${file}: ${bad.length} bad row(s); nothing was imported`,
              ...bad.map((v) => `  ${v.description}`),
            ].join("\n"),
            { applied: false, problems: bad.map((v) => v.description) },
          );
          return EXIT.badSeatMap;
        }
        throw error;
      }
      const lines = response.problems.map(
        (p) => `  line ${p.line}${p.field ? ` (${p.field})` : ""}: ${p.description}`,
      );
      const summary = response.applied
        ? `imported ${response.seatCount} seats into performance ${concertDateId}\nrequest id: ${run.requestId}`
        : response.problems.length === 0
          ? `${file}: ${response.seatCount} seats, no problems (dry run: nothing was written)`
          : `${file}: ${response.problems.length} bad row(s) (dry run: nothing was written)`;
      run.print([summary, ...lines].join("\n"), {
        ...(response.applied ? { requestId: run.requestId } : {}),
        ...(json(ImportSeatMapResponseSchema, response) as object),
      });
      return response.problems.length > 0 ? EXIT.badSeatMap : EXIT.ok;
    },
  },
  saleCommand(
    "open",
    "[--at TIME] ",
    "Opens the sale now, or schedules it --at a time (fans who come earlier wait in a lobby and are drawn in random order then).",
    { at: { type: "string" } },
    (admin, concertId, run) => {
      const at = optional(run.values, "at");
      // Now, read once: a retry sends the same time with the same request id.
      const opensAt = timestampFromDate(at === "" ? new Date() : parseTime(at, "at"));
      return (requestId) =>
        admin.updateSaleSettings({
          concertId,
          settings: { opensAt },
          updateMask: { paths: ["opens_at"] },
          requestId,
        });
    },
  ),
  saleCommand(
    "pause",
    "[--reason TEXT] ",
    "Pauses admission (the emergency brake): nobody new is admitted, the line keeps its order.",
    { reason: { type: "string" } },
    (admin, concertId, run) => {
      const reason = optional(run.values, "reason");
      return (requestId) => admin.pauseAdmission({ concertId, reason, requestId });
    },
  ),
  saleCommand(
    "resume",
    "",
    "Resumes admission after a pause, in the same order.",
    {},
    (admin, concertId) => (requestId) => admin.resumeAdmission({ concertId, requestId }),
  ),
  {
    name: "sale status",
    usage: "--concert ID",
    summary:
      "Shows a concert's sale settings: its opening, admission limit, and whether it is paused.",
    options: { concert: { type: "string" } },
    async run(run) {
      const concertId = required(run.values, "concert");
      const response = await run.admin().getSaleSettings({ concertId });
      const draw = OpeningDrawState[response.drawState] ?? "UNSPECIFIED";
      run.print(
        `${saleText(concertId, response.settings)}; opening draw ${draw}`,
        json(GetSaleSettingsResponseSchema, response),
      );
      return EXIT.ok;
    },
  },
  {
    name: "stats",
    usage: "--concert ID [--watch [--interval SECONDS]]",
    summary:
      "Shows a concert's sale figures; --watch reads them again every few seconds until Ctrl-C.",
    options: {
      concert: { type: "string" },
      watch: { type: "boolean" },
      interval: { type: "string" },
    },
    async run(run) {
      const concertId = required(run.values, "concert");
      const interval = optional(run.values, "interval");
      if (interval !== "" && run.values.watch !== true) {
        throw new UsageError("--interval goes with --watch");
      }
      const seconds = interval === "" ? 5 : Number(interval);
      if (!Number.isFinite(seconds) || seconds < 1 || seconds > 3600) {
        throw new UsageError("--interval must be a number of seconds from 1 to 3600");
      }
      const admin = run.admin();
      const show = async () => {
        const { stats } = await admin.getSaleStats({ concertId }, { signal: run.ctx.signal });
        if (!stats) throw new Error("the server sent no figures");
        run.print(statsText(concertId, stats), json(SaleStatsSchema, stats));
      };
      await show();
      if (run.values.watch !== true) return EXIT.ok;
      while (!run.ctx.signal.aborted) {
        try {
          await sleep(seconds * 1000, undefined, { signal: run.ctx.signal });
          await show();
        } catch (error) {
          if (run.ctx.signal.aborted) break;
          // A passing failure (a restart, a busy server) only skips one reading.
          if (!isRetryable(error)) throw error;
          run.ctx.stderr(`stats: no figures this time (${describe(error)}); trying again`);
        }
      }
      return EXIT.ok;
    },
  },
  {
    name: "refund",
    usage: "--reservation ID --reason TEXT [--request-id ID]",
    summary:
      "Refunds a confirmed ticket into the buyer's wallet; the seat is back on sale at once.",
    options: {
      reservation: { type: "string" },
      reason: { type: "string" },
      ...REQUEST_ID_OPTION,
    },
    async run(run) {
      const reservationId = required(run.values, "reservation");
      const note = required(run.values, "reason");
      const admin = run.admin();
      const response = await callIdempotently(
        (requestId) => admin.refundTicket({ reservationId, note, requestId }),
        { requestId: run.requestId },
      );
      run.print(
        `refunded ${response.payment?.amount} to ${response.wallet?.userId} (reservation ${reservationId}, payment ${response.payment?.id}); balance now ${response.wallet?.balance}\nrequest id: ${run.requestId}`,
        { requestId: run.requestId, ...(json(RefundTicketResponseSchema, response) as object) },
      );
      return EXIT.ok;
    },
  },
  {
    name: "credit",
    usage: "--user ID --amount MINOR_UNITS --reason TEXT [--request-id ID]",
    summary: "Credits a user's wallet (a support gesture), creating it if needed.",
    options: {
      user: { type: "string" },
      amount: { type: "string" },
      reason: { type: "string" },
      ...REQUEST_ID_OPTION,
    },
    async run(run) {
      const userId = required(run.values, "user");
      const amount = parseAmount(required(run.values, "amount"), "amount");
      const note = required(run.values, "reason");
      const admin = run.admin();
      const response = await callIdempotently(
        (requestId) => admin.creditWallet({ userId, amount, note, requestId }),
        { requestId: run.requestId },
      );
      run.print(
        `credited ${amount} to ${userId}; balance now ${response.wallet?.balance}\nrequest id: ${run.requestId}`,
        { requestId: run.requestId, ...(json(CreditWalletResponseSchema, response) as object) },
      );
      return EXIT.ok;
    },
  },
];

/** The whole help, or one command's. */
function helpText(command?: Command): string {
  if (command) {
    return [
      `usage: stagedoor-admin ${command.name} ${command.usage}`.trimEnd(),
      "",
      command.summary,
      "",
      "Common flags: --server URL (or STAGEDOOR_URL), --json. The key is read from STAGEDOOR_ADMIN_KEY.",
    ].join("\n");
  }
  return [
    "usage: stagedoor-admin COMMAND [flags]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(20)} ${c.summary}`),
    "",
    "Common flags:",
    "  --server URL   the Stagedoor server (default: $STAGEDOOR_URL)",
    "  --json         print results as JSON (one line per result)",
    "  --help         this help, or a command's with `COMMAND --help`",
    "",
    "The operator API key is read from STAGEDOOR_ADMIN_KEY, never from the command line.",
    "Exit codes: 0 done, 1 refused by the server, 2 bad usage, 3 bad seat map rows, 4 no answer.",
  ].join("\n");
}

/** A failure in one line: the server's code and reason, or what went wrong locally. */
function describe(error: unknown): string {
  const connect = ConnectError.from(error);
  const reason = errorReason(error);
  return reason
    ? `${Code[connect.code]} ${reason}: ${connect.rawMessage}`
    : `${Code[connect.code]}: ${connect.rawMessage}`;
}

/** Finds the command the first words name; the rest are its arguments. */
function findCommand(args: readonly string[]): { command?: Command; rest: string[] } {
  for (const command of COMMANDS) {
    const words = command.name.split(" ");
    if (words.every((word, i) => args[i] === word)) {
      return { command, rest: args.slice(words.length) };
    }
  }
  return { rest: [...args] };
}

/**
 * Runs the command line `args` (without the node and script paths) and
 * resolves with its exit code. It never throws: every failure is printed.
 */
export async function runAdminCli(args: readonly string[], ctx: CliContext): Promise<number> {
  const { command, rest } = findCommand(args);
  let asJson = args.includes("--json");
  const fail = (code: number, message: string, detail: Record<string, unknown> = {}) => {
    if (asJson) ctx.stderr(JSON.stringify({ error: { message, ...detail } }));
    else ctx.stderr(`stagedoor-admin: ${message}`);
    return code;
  };
  try {
    if (command === undefined) {
      if (args.length === 0 || args[0] === "help" || args[0] === "--help" || args[0] === "-h") {
        ctx.stdout(helpText());
        return EXIT.ok;
      }
      throw new UsageError(
        `unknown command ${JSON.stringify(args.filter((a) => !a.startsWith("-")).join(" "))}; see stagedoor-admin --help`,
      );
    }
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({
        args: rest,
        options: { ...GLOBAL_OPTIONS, ...command.options },
        allowPositionals: true,
        strict: true,
      });
    } catch (error) {
      throw new UsageError(
        `${(error as Error).message}; see stagedoor-admin ${command.name} --help`,
      );
    }
    const values = parsed.values as Values;
    asJson = values.json === true;
    if (values.help === true) {
      ctx.stdout(helpText(command));
      return EXIT.ok;
    }
    const expected = command.positionals ?? [];
    if (parsed.positionals.length !== expected.length) {
      throw new UsageError(
        expected.length === 0
          ? `unexpected argument ${JSON.stringify(parsed.positionals[0])}`
          : `${command.name} needs ${expected.join(" ")}`,
      );
    }
    const server = optional(values, "server") || (ctx.env.STAGEDOOR_URL ?? "").trim();
    if (server === "") throw new UsageError("no server: pass --server URL or set STAGEDOOR_URL");
    let baseUrl: URL;
    try {
      baseUrl = new URL(server);
    } catch {
      throw new UsageError(`the server ${JSON.stringify(server)} is not a URL`);
    }
    if (baseUrl.protocol !== "http:" && baseUrl.protocol !== "https:") {
      throw new UsageError("the server URL must start with http:// or https://");
    }
    const requestId = optional(values, "request-id") || `cli-${globalThis.crypto.randomUUID()}`;
    if (requestId.length > 128) throw new UsageError("--request-id is at most 128 characters");
    const apiKey = (ctx.env.STAGEDOOR_ADMIN_KEY ?? "").trim();
    return await command.run({
      values,
      positionals: parsed.positionals,
      ctx,
      baseUrl: baseUrl.href.replace(/\/$/, ""),
      requestId,
      admin() {
        if (apiKey === "") {
          throw new UsageError("set STAGEDOOR_ADMIN_KEY to the operator API key");
        }
        return createAdminClient({
          transport: (options) => createNodeTransport({ ...options, defaultTimeoutMs: 15_000 }),
          baseUrl: baseUrl.href.replace(/\/$/, ""),
          apiKey,
        });
      },
      print(human, value) {
        ctx.stdout(asJson ? JSON.stringify(value) : human);
      },
    });
  } catch (error) {
    if (error instanceof UsageError) return fail(EXIT.usage, error.message);
    const connect = ConnectError.from(error);
    const reason = errorReason(error);
    if (reason === undefined) {
      return fail(EXIT.unreachable, `no answer from a Stagedoor server: ${describe(error)}`, {
        code: Code[connect.code],
      });
    }
    const violations = fieldViolations(error);
    const lines = [describe(error), ...violations.map((v) => `  ${v.field}: ${v.description}`)];
    return fail(EXIT.refused, lines.join("\n"), {
      code: Code[connect.code],
      reason,
      detail: connect.rawMessage,
      fieldViolations: violations,
    });
  }
}
