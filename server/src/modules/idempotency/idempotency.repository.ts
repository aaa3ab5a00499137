import { createHash } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import { type Statement, statement, TxConnection } from "../../persistence/sql.js";
import type { TakeBack } from "../../persistence/write-batcher.js";
import { DomainError } from "../../shared/domain-error.js";
import type { IdempotentOperation } from "./idempotency-key.entity.js";

/** The outcome of claiming a request id. */
export type IdempotencyClaim =
  | { readonly kind: "claimed" }
  | { readonly kind: "replay"; readonly resultId: string };

/** What identifies one logical request of a user. */
export interface IdempotentRequest {
  readonly userId: string;
  readonly requestId: string;
  readonly operation: IdempotentOperation;
  /** The request's parameters; a replay must send the same ones. */
  readonly params: readonly (string | number | bigint)[];
}

/** A stable fingerprint of a request, so reuse of a request id for another request is caught. */
export function requestHash(request: IdempotentRequest): string {
  const canonical = JSON.stringify([
    request.operation,
    ...request.params.map((value) => (typeof value === "bigint" ? `${value}n` : value)),
  ]);
  return createHash("sha256").update(canonical).digest("base64url");
}

/** The INSERT of a claim; its parameters are $1–$6, in the order of {@link claimValues}. */
const CLAIM_INSERT = `insert into idempotency_key (user_id, request_id, operation, request_hash, result_id, created_at)
   values ($1, $2, $3, $4, $5, $6)
   on conflict (user_id, request_id) do nothing
   returning 1 as claimed`;

/** Claims a request id; returns a row only when this transaction made the claim. */
const CLAIM = statement<{ claimed: number }>("idempotency_claim", CLAIM_INSERT);

/**
 * The first part of a statement that claims a request id and takes the
 * request's row locks in the same round trip: a CTE named `claim`, whose
 * parameters are $1–$6 ({@link claimValues}); the statement's own parameters
 * start at $7. Each lock of such a statement is a `materialized` CTE whose
 * WHERE includes {@link CLAIMED}, so it is evaluated after the claim (the
 * claim stays the first lock a transaction takes) and locks nothing on a
 * replay, and the statement selects `claimed` ({@link CLAIMED_COLUMN}).
 */
const CLAIM_CTE = `claim as (${CLAIM_INSERT})`;

/** True once the claim CTE of {@link CLAIM_CTE} made the claim (false on a replay). */
export const CLAIMED = "(select count(*) from claim) = 1";

/** The column that says whether the claim was made, 1 or 0. */
const CLAIMED_COLUMN = "(select count(*) from claim)::int as claimed";

/**
 * What a statement that claims and locks ({@link CLAIM_CTE}) came to: the
 * claim is new and `locked` is what its locks returned, or a replay.
 */
export type ClaimAndLock<T> =
  | { readonly kind: "claimed"; readonly locked: T }
  | { readonly kind: "replay"; readonly resultId: string };

/** What a statement starting with {@link CLAIM_CTE} returns besides its own columns. */
interface ClaimedRow {
  readonly claimed: number;
}

/**
 * Declares a statement that claims a request id and takes the request's row
 * locks in one round trip: `with` {@link CLAIM_CTE}, then `locks` (the lock
 * CTEs, each `materialized` and with {@link CLAIMED} in its WHERE), then
 * `select claimed,` and `select` (the rest of the final SELECT: the locked
 * rows' columns, and any FROM). Run it with {@link claimAndLock}.
 */
export function claimAndLockStatement<Row>(
  name: string,
  locks: string,
  select: string,
): Statement<ClaimedRow & Row> {
  return statement(name, `with ${CLAIM_CTE}, ${locks}\n   select ${CLAIMED_COLUMN}, ${select}`);
}

/**
 * Runs a statement that claims a request id and takes the request's row
 * locks ({@link CLAIM_CTE}): one round trip, with `params` as its $7 onward.
 * On a replay (one more round trip, see {@link settleClaim}), nothing was
 * locked; otherwise `locked` reads what the locks returned from the row.
 */
export async function claimAndLock<Row extends ClaimedRow, T>(
  tx: TxConnection,
  statement: Statement<Row>,
  request: IdempotentRequest,
  resultId: string,
  now: Date,
  params: readonly unknown[],
  locked: (row: Row | undefined) => T,
): Promise<ClaimAndLock<T>> {
  const row = await tx.one(statement, [...claimValues(request, resultId, now), ...params]);
  const claim = await settleClaim(tx, request, row?.claimed === 1);
  if (claim.kind === "replay") return claim;
  return { kind: "claimed", locked: locked(row) };
}

/** The parameters $1–$6 of a claim. */
function claimValues(request: IdempotentRequest, resultId: string, now: Date): unknown[] {
  return [
    request.userId,
    request.requestId,
    request.operation,
    requestHash(request),
    resultId,
    now,
  ];
}

/** The claim another request made first. */
const FIND_CLAIM = statement<{ result_id: string; request_hash: string }>(
  "idempotency_find_claim",
  "select result_id, request_hash from idempotency_key where user_id = $1 and request_id = $2",
);

/**
 * Claims a request id inside the caller's transaction, before any other row
 * is locked, so every idempotent mutation takes its locks in the same order.
 * One round trip when the id is new (the common case), two for a replay.
 *
 * The INSERT is the lock: a concurrent request with the same id waits on the
 * unique index until this transaction ends. If it commits, the waiter sees the
 * claim and replays the result; if it rolls back (the request failed), the
 * waiter claims the id itself and runs the request again. A replay whose
 * parameters differ from the first request is refused.
 */
export async function claimRequestId(
  tx: TxConnection,
  request: IdempotentRequest,
  resultId: string,
  now: Date,
): Promise<IdempotencyClaim> {
  const inserted = await tx.one(CLAIM, claimValues(request, resultId, now));
  return settleClaim(tx, request, inserted !== undefined);
}

/**
 * What a claim came to, once its INSERT ran (alone, or as the {@link
 * CLAIM_CTE} of a statement that also locks): claimed, or a replay of the
 * first request's result, read by a new statement (one more round trip).
 */
async function settleClaim(
  tx: TxConnection,
  request: IdempotentRequest,
  claimed: boolean,
): Promise<IdempotencyClaim> {
  if (claimed) return { kind: "claimed" };

  // A new statement takes a new snapshot, so it sees the claim that the
  // INSERT above waited for. (This is why the two cannot be one statement.)
  const existing = await tx.one(FIND_CLAIM, [request.userId, request.requestId]);
  if (existing === undefined) {
    // The claim was pruned between the two statements; only a client reusing
    // an id after the retention window can hit this.
    throw new DomainError(
      "aborted",
      "CONCURRENT_UPDATE",
      "the request id changed hands concurrently; retry",
      {
        retryAfterMs: 100,
      },
    );
  }
  if (existing.request_hash !== requestHash(request)) {
    throw new DomainError(
      "invalid_argument",
      "REQUEST_ID_REUSED",
      "request_id was already used for a different request",
      {
        violations: [
          { field: "request_id", description: "was already used for a different request" },
        ],
      },
    );
  }
  return { kind: "replay", resultId: existing.result_id };
}

/** Deletes a claim, only if it is the one `result_id` made ({@link releaseClaim}). */
const RELEASE_CLAIM = statement<never>(
  "idempotency_release_claim",
  "delete from idempotency_key where user_id = $1 and request_id = $2 and result_id = $3",
);

/**
 * Takes back a claim this transaction made for a request that was then
 * refused, so the transaction can commit other work (group commit, see
 * `WriteBatcher`): the request id is free again, as if the request had been
 * rolled back. One round trip. Only the claim whose result is `resultId`
 * goes, so a request refused because its id was already claimed
 * (`REQUEST_ID_REUSED`) leaves that earlier claim alone. A concurrent
 * request with the same id waits on the unique index until this transaction
 * ends, then claims the id itself.
 */
export async function releaseClaim(
  tx: TxConnection,
  request: IdempotentRequest,
  resultId: string,
): Promise<void> {
  await tx.all(RELEASE_CLAIM, [request.userId, request.requestId, resultId]);
}

/**
 * The take-back of a group-commit write whose refusals all come before it
 * writes anything but its claim: {@link releaseClaim} in the batch's
 * transaction (see `WriteBatcher.run`).
 */
export function claimTakeBack(request: IdempotentRequest, resultId: string): TakeBack {
  return async (em) => releaseClaim(await TxConnection.of(em), request, resultId);
}

/** How many claims one prune batch deletes by default (one short transaction each). */
export const PRUNE_BATCH = 2000;

/**
 * Deletes up to `limit` claims older than `before`, oldest first, as one
 * statement (so one short transaction of its own): the created_at index finds
 * them, `FOR UPDATE SKIP LOCKED` passes over rows another pruner (another
 * instance) is deleting instead of waiting for it, and the delete goes
 * straight to the locked rows by ctid (a TID scan). New claims are never
 * waited on: they are not due, and an INSERT takes no lock a prune needs.
 */
const PRUNE_BATCH_SQL = `with deleted as (
     delete from idempotency_key
      where ctid = any(array(
        select ctid from idempotency_key
         where created_at < ?
         order by created_at
         limit ?
         for update skip locked))
     returning 1
   )
   select count(*)::int as count from deleted`;

/** Options of {@link pruneRequestIds}. */
export interface PruneOptions {
  /** Claims per batch (each batch is its own transaction). */
  readonly batchSize?: number;
  /** Checked between batches: a true answer ends the run early (shutdown). */
  readonly shouldStop?: () => boolean;
}

/**
 * Deletes every claim older than `before`, one batch after another until a
 * batch comes back short (nothing is due, or what is left is being deleted
 * by another instance right now), so the table stays as large as the
 * retention window however many claims a day brings. Each batch is its own
 * autocommitted statement, so no lock is held between batches and writers
 * never wait for the run as a whole. Replays stay possible for the whole
 * retention window: only claims created before `before` go. Returns how many
 * claims were deleted.
 */
export async function pruneRequestIds(
  em: EntityManager,
  before: Date,
  options: PruneOptions = {},
): Promise<number> {
  const batchSize = options.batchSize ?? PRUNE_BATCH;
  let total = 0;
  for (;;) {
    const rows = await em.execute<{ count: number }[]>(PRUNE_BATCH_SQL, [before, batchSize]);
    const deleted = Number(rows[0]?.count ?? 0);
    total += deleted;
    if (deleted < batchSize || options.shouldStop?.() === true) return total;
  }
}
