import { defineEntity, p } from "@mikro-orm/core";

/** Which mutation a request id was used for. */
export type IdempotentOperation =
  | "hold"
  | "release"
  | "recharge"
  | "pay"
  | "refund"
  | "credit"
  | "create_concert"
  | "update_concert"
  | "create_performance"
  | "import_seat_map"
  | "update_sale_settings"
  | "pause_admission"
  | "resume_admission";

/**
 * A client's `request_id`, claimed by the first request that used it. The
 * result id is chosen before the work starts, so a replay can load the first
 * result without the claim ever being updated.
 */
export class IdempotencyKey {
  constructor(
    readonly userId: string,
    readonly requestId: string,
    readonly operation: IdempotentOperation,
    readonly requestHash: string,
    readonly resultId: string,
    readonly createdAt: Date,
  ) {}
}

/** The table mapping of {@link IdempotencyKey}. */
export const IdempotencyKeySchema = defineEntity({
  class: IdempotencyKey,
  tableName: "idempotency_key",
  properties: {
    userId: p.text().primary(),
    requestId: p.text().primary(),
    operation: p.text(),
    requestHash: p.text(),
    resultId: p.uuid(),
    createdAt: p.datetime(),
  },
});
