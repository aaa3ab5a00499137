import { statement, type TxConnection } from "../../persistence/sql.js";
import { newId } from "../../shared/ids.js";
import type { AdminActor } from "../identity/index.js";

/** A JSON value of the audit trail (money as decimal strings: JSON has no bigint). */
export type AuditJson =
  | string
  | number
  | boolean
  | null
  | readonly AuditJson[]
  | { readonly [key: string]: AuditJson };

/** One admin change, as the audit trail records it. */
export interface AuditRecord {
  readonly actor: AdminActor;
  /** The RPC's name, e.g. `RefundTicket`. */
  readonly action: string;
  /** What was changed, as `kind/id`, e.g. `reservation/<uuid>`. */
  readonly target: string;
  /** The target's state before the change; null when it did not exist. */
  readonly before: AuditJson;
  readonly after: AuditJson;
  readonly requestId: string;
  readonly at: Date;
}

const APPEND = statement<never>(
  "admin_audit_append",
  `insert into admin_audit (id, actor, action, target, before, after, request_id, created_at)
   values ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8)`,
);

/**
 * The append-only audit trail of admin changes. Written inside the change's
 * own transaction, on its connection, so a change and its record commit or
 * roll back together; the table's trigger refuses every UPDATE and DELETE.
 */
export const AuditTrail = {
  /** Appends one record (one round trip). */
  async append(tx: TxConnection, record: AuditRecord): Promise<void> {
    await tx.all(APPEND, [
      newId(),
      record.actor.name,
      record.action,
      record.target,
      JSON.stringify(record.before),
      JSON.stringify(record.after),
      record.requestId,
      record.at,
    ]);
  },
};
