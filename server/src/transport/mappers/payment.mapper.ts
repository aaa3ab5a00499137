import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type PaymentSchema, PaymentState } from "@stagedoor/sdk";
import type { Payment, PaymentStatus } from "../../modules/payments/index.js";

const STATES: Record<PaymentStatus, PaymentState> = {
  COMPLETED: PaymentState.COMPLETED,
  REFUNDED: PaymentState.REFUNDED,
};

/** Maps a payment to its API message. */
export function toPayment(payment: Payment): MessageInitShape<typeof PaymentSchema> {
  return {
    id: payment.id,
    userId: payment.userId,
    reservationId: payment.reservationId,
    amount: payment.amount,
    state: STATES[payment.status],
    createTime: timestampFromDate(payment.createdAt),
    refundTime: payment.refundedAt ? timestampFromDate(payment.refundedAt) : undefined,
  };
}
