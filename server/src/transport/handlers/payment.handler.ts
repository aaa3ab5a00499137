import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  CreatePaymentRequest,
  GetPaymentRequest,
  PaymentService as PaymentApi,
} from "@stagedoor/sdk";
import type { PaymentsService } from "../../modules/payments/index.js";
import { principalOf, readerOf } from "../context.js";
import { toPayment } from "../mappers/payment.mapper.js";
import { toReservation } from "../mappers/reservation.mapper.js";

/** Payments over Connect, gRPC and gRPC-Web. */
export class PaymentHandler implements ServiceImpl<typeof PaymentApi> {
  constructor(private readonly payments: PaymentsService) {}

  async createPayment(req: CreatePaymentRequest, ctx: HandlerContext) {
    const { payment, reservation } = await this.payments.pay(principalOf(ctx.values), {
      reservationId: req.reservationId,
      amount: req.amount,
      requestId: req.requestId,
    });
    return {
      payment: toPayment(payment),
      reservation: toReservation(reservation),
    };
  }

  async getPayment(req: GetPaymentRequest, ctx: HandlerContext) {
    return { payment: toPayment(await this.payments.get(readerOf(ctx.values), req.paymentId)) };
  }
}
