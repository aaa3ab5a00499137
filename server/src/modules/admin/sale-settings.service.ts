import { type Database, transaction } from "../../persistence/database.js";
import { statement, TxConnection } from "../../persistence/sql.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError, invalidField } from "../../shared/domain-error.js";
import { decodePageToken, encodePageToken } from "../../shared/page-token.js";
import { pageSize, requireRequestId, requireUuid } from "../../shared/validation.js";
import { claimRequestId, type IdempotentOperation } from "../idempotency/index.js";
import type { AdminActor } from "../identity/index.js";
import type { LineSettings, OpeningDrawRecord, QueueStore } from "../queue/index.js";
import { MAX_NOTE_LENGTH } from "./admin.service.js";
import { AuditTrail } from "./audit.js";
import { claimOwner } from "./claims.js";

/** A concert's sale settings; zero limits mean the server's defaults. */
export interface SaleSettings {
  readonly opensAt: Date | null;
  readonly maxAdmitted: number;
  readonly admissionMs: number;
  readonly holdMs: number;
  readonly paused: boolean;
}

/** Whether a concert's opening lobby has been drawn. */
export type DrawState = "none" | "pending" | "drawn";

/** The fields UpdateSaleSettings may change. */
export const SALE_SETTINGS_FIELDS = [
  "opens_at",
  "max_admitted",
  "admission_duration",
  "hold_duration",
] as const;

/** A change of sale settings: the fields named in `fields` take the given values. */
export interface SaleSettingsUpdate {
  readonly concertId: string;
  readonly requestId: string;
  readonly fields: readonly string[];
  readonly opensAt: Date | null;
  readonly maxAdmitted: number;
  /** Milliseconds; NaN for a duration that is not whole seconds. */
  readonly admissionMs: number;
  readonly holdMs: number;
}

/** A page of an opening draw's record. */
export interface OpeningDrawPage {
  readonly drawnAt: Date;
  readonly seed: string;
  readonly lobbySize: number;
  readonly order: readonly string[];
  readonly nextPageToken: string;
}

/** The limits of the settings, as config.ts bounds the server's defaults. */
const MAX_ADMITTED = 1_000_000;
const ADMISSION_MS = { min: 10_000, max: 86_400_000 };
const HOLD_MS = { min: 5_000, max: 3_600_000 };
const DRAW_PAGE = 1000;

interface SettingsRow {
  readonly opens_at_ms: number | null;
  readonly max_admitted: number;
  readonly admission_ms: number;
  readonly hold_ms: number;
  readonly paused: boolean;
  readonly pause_reason: string;
}

interface DrawRow {
  readonly drawn_at_ms: number;
  readonly seed: string;
  readonly lobby_size: number;
  readonly token_ids: string[];
}

const SETTINGS_COLUMNS = `(extract(epoch from opens_at) * 1000)::float8 as opens_at_ms,
  max_admitted, admission_ms, hold_ms, paused, pause_reason`;

const CONCERT_EXISTS = statement<{ found: number }>(
  "sale_concert_exists",
  "select 1 as found from concert where id = $1",
);

// Creates the concert's row on its first change, then locks it.
const ENSURE_SETTINGS = statement<never>(
  "sale_settings_ensure",
  `insert into sale_settings (concert_id, updated_at) values ($1, $2)
   on conflict (concert_id) do nothing`,
);

const LOCK_SETTINGS = statement<SettingsRow>(
  "sale_settings_lock",
  `select ${SETTINGS_COLUMNS} from sale_settings where concert_id = $1 for update`,
);

const READ_SETTINGS = statement<SettingsRow>(
  "sale_settings_read",
  `select ${SETTINGS_COLUMNS} from sale_settings where concert_id = $1`,
);

const ALL_SETTINGS = statement<SettingsRow & { concert_id: string }>(
  "sale_settings_all",
  `select concert_id, ${SETTINGS_COLUMNS} from sale_settings`,
);

const WRITE_SETTINGS = statement<never>(
  "sale_settings_write",
  `update sale_settings set opens_at = $2, max_admitted = $3, admission_ms = $4, hold_ms = $5,
     paused = $6, pause_reason = $7, updated_at = $8
   where concert_id = $1`,
);

const READ_DRAW = statement<DrawRow>(
  "opening_draw_read",
  `select (extract(epoch from drawn_at) * 1000)::float8 as drawn_at_ms, seed, lobby_size, token_ids
   from opening_draw where concert_id = $1`,
);

const INSERT_DRAW = statement<never>(
  "opening_draw_insert",
  `insert into opening_draw (concert_id, drawn_at, seed, lobby_size, token_ids)
   values ($1, $2, $3, $4, $5) on conflict (concert_id) do nothing`,
);

// Openings that have come and whose draw is not recorded yet.
const UNRECORDED_DRAWS = statement<{ concert_id: string }>(
  "opening_draw_unrecorded",
  `select s.concert_id from sale_settings s
   where s.opens_at <= $1
     and not exists (select 1 from opening_draw d where d.concert_id = s.concert_id)`,
);

const DEFAULTS: SettingsRow = {
  opens_at_ms: null,
  max_admitted: 0,
  admission_ms: 0,
  hold_ms: 0,
  paused: false,
  pause_reason: "",
};

function toSettings(row: SettingsRow): SaleSettings {
  return {
    opensAt: row.opens_at_ms === null ? null : new Date(row.opens_at_ms),
    maxAdmitted: row.max_admitted,
    admissionMs: row.admission_ms,
    holdMs: row.hold_ms,
    paused: row.paused,
  };
}

function toLine(row: SettingsRow): LineSettings {
  return {
    opensAt: row.opens_at_ms ?? 0,
    paused: row.paused,
    maxActive: row.max_admitted,
    admissionTtlMs: row.admission_ms,
    holdMs: row.hold_ms,
  };
}

const auditJson = (row: SettingsRow) => ({
  opens_at: row.opens_at_ms === null ? null : new Date(row.opens_at_ms).toISOString(),
  max_admitted: row.max_admitted,
  admission_ms: row.admission_ms,
  hold_ms: row.hold_ms,
  paused: row.paused,
  pause_reason: row.pause_reason,
});

function concertNotFound(concertId: string): DomainError {
  return new DomainError("not_found", "CONCERT_NOT_FOUND", "no concert has that id", {
    metadata: { concert_id: concertId },
  });
}

function saleAlreadyOpened(concertId: string): DomainError {
  return new DomainError(
    "failed_precondition",
    "SALE_ALREADY_OPENED",
    "the concert's opening lobby has been drawn; opens_at can no longer change",
    { metadata: { concert_id: concertId } },
  );
}

function checkDuration(ms: number, field: string, range: { min: number; max: number }): number {
  if (ms === 0) return 0;
  if (!Number.isSafeInteger(ms) || ms % 1000 !== 0) {
    throw invalidField(field, "must be whole seconds");
  }
  if (ms < range.min || ms > range.max) {
    throw invalidField(
      field,
      `must be 0 (the default) or ${range.min / 1000} to ${range.max / 1000} seconds`,
    );
  }
  return ms;
}

/**
 * A concert's sale settings: the scheduled opening, the admission limits
 * and the emergency brake. Each change is one transaction that claims the
 * request id, locks the concert's settings row, writes it, appends its audit
 * record and sets the copy the queue store enforces (configure), which
 * every server instance shares (Redis) and which refuses to move an opening
 * once its lobby has been drawn, so that refusal rolls the change back.
 * Startup copies every row into the store again (mirrorAll).
 */
export class SaleSettingsService {
  constructor(
    private readonly db: Database,
    private readonly store: QueueStore,
    private readonly clock: Clock,
  ) {}

  /** Changes the named fields; a retry with the same request id changes nothing again. */
  async update(actor: AdminActor, input: SaleSettingsUpdate): Promise<SaleSettings> {
    const concertId = requireUuid(input.concertId, "concert_id");
    const requestId = requireRequestId(input.requestId);
    const fields = new Set(input.fields);
    if (fields.size === 0) throw invalidField("update_mask", "must name at least one field");
    for (const field of fields) {
      if (!(SALE_SETTINGS_FIELDS as readonly string[]).includes(field)) {
        throw invalidField("update_mask", `cannot change ${field}`);
      }
    }
    const opensAt = input.opensAt;
    if (opensAt !== null && Number.isNaN(opensAt.getTime())) {
      throw invalidField("settings.opens_at", "is not a valid time");
    }
    const max = input.maxAdmitted;
    if (!Number.isSafeInteger(max) || max < 0 || max > MAX_ADMITTED) {
      throw invalidField("settings.max_admitted", `must be 0 (the default) to ${MAX_ADMITTED}`);
    }
    const admissionMs = checkDuration(
      input.admissionMs,
      "settings.admission_duration",
      ADMISSION_MS,
    );
    const holdMs = checkDuration(input.holdMs, "settings.hold_duration", HOLD_MS);
    return this.change(
      actor,
      concertId,
      requestId,
      "update_sale_settings",
      [[...fields].sort().join(","), opensAt?.getTime() ?? 0, max, admissionMs, holdMs],
      "UpdateSaleSettings",
      (row) => ({
        ...row,
        opens_at_ms: fields.has("opens_at") ? (opensAt?.getTime() ?? null) : row.opens_at_ms,
        max_admitted: fields.has("max_admitted") ? max : row.max_admitted,
        admission_ms: fields.has("admission_duration") ? admissionMs : row.admission_ms,
        hold_ms: fields.has("hold_duration") ? holdMs : row.hold_ms,
      }),
    );
  }

  /** The emergency brake: nobody new is admitted until {@link resume}. */
  async pause(
    actor: AdminActor,
    input: { concertId: string; requestId: string; reason: string },
  ): Promise<SaleSettings> {
    const concertId = requireUuid(input.concertId, "concert_id");
    const requestId = requireRequestId(input.requestId);
    if (!input.reason.isWellFormed()) throw invalidField("reason", "must be valid Unicode");
    if ([...input.reason].length > MAX_NOTE_LENGTH) {
      throw invalidField("reason", `must be at most ${MAX_NOTE_LENGTH} characters`);
    }
    return this.change(
      actor,
      concertId,
      requestId,
      "pause_admission",
      [concertId, input.reason],
      "PauseAdmission",
      (row) => ({ ...row, paused: true, pause_reason: input.reason }),
    );
  }

  /** Lets admission continue, in the same order. */
  async resume(
    actor: AdminActor,
    input: { concertId: string; requestId: string },
  ): Promise<SaleSettings> {
    const concertId = requireUuid(input.concertId, "concert_id");
    const requestId = requireRequestId(input.requestId);
    return this.change(
      actor,
      concertId,
      requestId,
      "resume_admission",
      [concertId],
      "ResumeAdmission",
      (row) => ({ ...row, paused: false, pause_reason: "" }),
    );
  }

  /** A concert's settings and whether its opening has been drawn. */
  async get(concertIdInput: string): Promise<{ settings: SaleSettings; drawState: DrawState }> {
    const concertId = requireUuid(concertIdInput, "concert_id");
    const row = await transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      if (!(await tx.one(CONCERT_EXISTS, [concertId]))) throw concertNotFound(concertId);
      return (await tx.one(READ_SETTINGS, [concertId])) ?? DEFAULTS;
    });
    const drawn = (await this.findDraw(concertId)) !== null;
    const drawState: DrawState = drawn ? "drawn" : row.opens_at_ms !== null ? "pending" : "none";
    return { settings: toSettings(row), drawState };
  }

  /** A page of the record of a concert's opening draw. */
  async openingDraw(input: {
    concertId: string;
    pageSize: number;
    pageToken: string;
  }): Promise<OpeningDrawPage> {
    const concertId = requireUuid(input.concertId, "concert_id");
    const size = pageSize(input.pageSize, DRAW_PAGE, DRAW_PAGE);
    const offset = decodePageToken(input.pageToken, { o: "number" })?.o ?? 0;
    const draw = await this.findDraw(concertId);
    if (draw === null) {
      const exists = await transaction(this.db, async (em) =>
        (await TxConnection.of(em)).one(CONCERT_EXISTS, [concertId]),
      );
      if (!exists) throw concertNotFound(concertId);
      throw new DomainError(
        "not_found",
        "OPENING_DRAW_NOT_FOUND",
        "the concert's opening has not been drawn",
        { metadata: { concert_id: concertId } },
      );
    }
    const order = draw.tokenIds.slice(offset, offset + size);
    const next = offset + size < draw.tokenIds.length;
    return {
      drawnAt: new Date(draw.drawnAt),
      seed: draw.seed,
      lobbySize: draw.tokenIds.length,
      order,
      nextPageToken: next ? encodePageToken({ o: offset + size }) : "",
    };
  }

  /**
   * Copies every concert's settings into the queue store (at startup, so a
   * store that lost them, or a new Redis, enforces them again). Returns the
   * concerts whose opening the store refused to move because its lobby was
   * drawn already (the store's record wins).
   */
  async mirrorAll(): Promise<string[]> {
    const rows = await transaction(this.db, async (em) =>
      (await TxConnection.of(em)).all(ALL_SETTINGS, []),
    );
    const refused: string[] = [];
    for (const row of rows) {
      if (!(await this.store.configure(row.concert_id, toLine(row)))) refused.push(row.concert_id);
    }
    return refused;
  }

  /**
   * Persists the draws the store made for openings that have come (a job,
   * on every instance: the table's key keeps one record per concert).
   * Returns how many it recorded.
   */
  async recordDraws(): Promise<number> {
    const now = this.clock.now();
    const due = await transaction(this.db, async (em) =>
      (await TxConnection.of(em)).all(UNRECORDED_DRAWS, [now]),
    );
    let recorded = 0;
    for (const { concert_id } of due) {
      if ((await this.findDraw(concert_id)) !== null) recorded++;
    }
    return recorded;
  }

  /** The draw's record from PostgreSQL, else from the store (then persisted); null if none. */
  private async findDraw(concertId: string): Promise<OpeningDrawRecord | null> {
    const row = await transaction(this.db, async (em) =>
      (await TxConnection.of(em)).one(READ_DRAW, [concertId]),
    );
    if (row !== undefined) {
      return { drawnAt: row.drawn_at_ms, seed: row.seed, tokenIds: row.token_ids };
    }
    const draw = await this.store.openingDraw(concertId);
    if (draw === null) return null;
    await transaction(this.db, async (em) =>
      (await TxConnection.of(em)).all(INSERT_DRAW, [
        concertId,
        new Date(draw.drawnAt),
        draw.seed,
        draw.tokenIds.length,
        draw.tokenIds,
      ]),
    );
    return draw;
  }

  private async change(
    actor: AdminActor,
    concertId: string,
    requestId: string,
    operation: IdempotentOperation,
    params: readonly (string | number)[],
    action: string,
    apply: (row: SettingsRow) => SettingsRow,
  ): Promise<SaleSettings> {
    const now = this.clock.now();
    return transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      const claim = await claimRequestId(
        tx,
        { userId: claimOwner(actor), requestId, operation, params: [concertId, ...params] },
        concertId,
        now,
      );
      if (!(await tx.one(CONCERT_EXISTS, [concertId]))) throw concertNotFound(concertId);
      await tx.all(ENSURE_SETTINGS, [concertId, now]);
      const before = (await tx.one(LOCK_SETTINGS, [concertId])) ?? DEFAULTS;
      if (claim.kind === "replay") return toSettings(before);
      const after = apply(before);
      await tx.all(WRITE_SETTINGS, [
        concertId,
        after.opens_at_ms === null ? null : new Date(after.opens_at_ms),
        after.max_admitted,
        after.admission_ms,
        after.hold_ms,
        after.paused,
        after.pause_reason,
        now,
      ]);
      await AuditTrail.append(tx, {
        actor,
        action,
        target: `concert/${concertId}`,
        before: auditJson(before),
        after: auditJson(after),
        requestId,
        at: now,
      });
      // Last, so a refusal (or a store failure) rolls the change back.
      let configured: boolean;
      try {
        configured = await this.store.configure(concertId, toLine(after));
      } catch (error) {
        throw new DomainError(
          "unavailable",
          "QUEUE_UNAVAILABLE",
          "the waiting room is unavailable; nothing was changed, retry shortly",
          { retryAfterMs: 1000, cause: error },
        );
      }
      if (!configured) throw saleAlreadyOpened(concertId);
      return toSettings(after);
    });
  }
}
