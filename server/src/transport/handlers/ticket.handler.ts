import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  CreateSessionRequest,
  GetTicketRequest,
  ListTicketsRequest,
  TicketService as TicketApi,
} from "@stagedoor/sdk";
import type { ReadSessions, TicketsService } from "../../modules/tickets/index.js";
import { bearerCredential } from "../bearer.js";
import { callLimitKey, readerOf } from "../context.js";
import { toTicket } from "../mappers/ticket.mapper.js";

/** Tickets and read-only sessions over Connect, gRPC and gRPC-Web. */
export class TicketHandler implements ServiceImpl<typeof TicketApi> {
  constructor(
    private readonly sessions: ReadSessions,
    private readonly tickets: TicketsService,
  ) {}

  async createSession(req: CreateSessionRequest, ctx: HandlerContext) {
    const { token, expiresAt } = await this.sessions.create({
      userId: req.userId,
      assertion: bearerCredential(ctx.requestHeader.get("authorization")),
      limit: ctx.values.get(callLimitKey),
    });
    return { sessionToken: token, expireTime: timestampFromDate(expiresAt) };
  }

  async listTickets(req: ListTicketsRequest, ctx: HandlerContext) {
    const page = await this.tickets.list(readerOf(ctx.values), req.pageSize, req.pageToken);
    return { tickets: page.tickets.map(toTicket), nextPageToken: page.nextPageToken };
  }

  async getTicket(req: GetTicketRequest, ctx: HandlerContext) {
    return { ticket: toTicket(await this.tickets.get(readerOf(ctx.values), req.ticketId)) };
  }
}
