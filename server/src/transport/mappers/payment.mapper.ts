import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type PaymentSchema, PaymentState } from "@stagedoor/sdk";
import type { Payment } from "../../modules/payments/index.js";

/** Maps a payment to its API message. */
export function toPayment(payment: Payment): MessageInitShape<typeof PaymentSchema> {
  return {
    id: payment.id,
    userId: payment.userId,
    reservationId: payment.reservationId,
    amount: payment.amount,
    state: PaymentState.COMPLETED,
    createTime: timestampFromDate(payment.createdAt),
  };
}
