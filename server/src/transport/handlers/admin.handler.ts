import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  AdminService as AdminApi,
  CreditWalletRequest,
  RefundTicketRequest,
} from "@stagedoor/sdk";
import type { AdminService } from "../../modules/admin/index.js";
import { adminOf } from "../context.js";
import { toCreditWalletResponse, toRefundTicketResponse } from "../mappers/admin.mapper.js";

/** The operator API over Connect, gRPC and gRPC-Web. */
export class AdminHandler implements ServiceImpl<typeof AdminApi> {
  constructor(private readonly admin: AdminService) {}

  async refundTicket(req: RefundTicketRequest, ctx: HandlerContext) {
    const result = await this.admin.refundTicket(adminOf(ctx.values), {
      reservationId: req.reservationId,
      requestId: req.requestId,
      note: req.note,
    });
    return toRefundTicketResponse(result);
  }

  async creditWallet(req: CreditWalletRequest, ctx: HandlerContext) {
    const result = await this.admin.creditWallet(adminOf(ctx.values), {
      userId: req.userId,
      amount: req.amount,
      requestId: req.requestId,
      note: req.note,
    });
    return toCreditWalletResponse(result);
  }
}
