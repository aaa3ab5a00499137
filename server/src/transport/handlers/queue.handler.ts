import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  GetQueueStatusRequest,
  IssueQueueTokenRequest,
  LeaveQueueRequest,
  QueueService as QueueApi,
  WatchQueueStatusResponseSchema,
} from "@stagedoor/sdk";
import type { QueueService, QueueWatchHub, WatchEvent } from "../../modules/queue/index.js";
import { bearerCredential } from "../bearer.js";
import { callLimitKey, principalOf, sessionOf } from "../context.js";
import { toQueueStatus } from "../mappers/queue.mapper.js";

type WatchMessage = MessageInitShape<typeof WatchQueueStatusResponseSchema>;

function toWatchMessage(event: WatchEvent): WatchMessage {
  switch (event.kind) {
    case "status":
      return { event: { case: "status", value: toQueueStatus(event.status) } };
    case "heartbeat":
      return { event: { case: "heartbeat", value: { serverTime: timestampFromDate(event.at) } } };
    case "admitted":
      return {
        event: { case: "admitted", value: { expireTime: timestampFromDate(event.expireTime) } },
      };
  }
}

/** The waiting room over Connect, gRPC and gRPC-Web. */
export class QueueHandler implements ServiceImpl<typeof QueueApi> {
  constructor(
    private readonly queue: QueueService,
    private readonly hub: QueueWatchHub,
  ) {}

  async issueQueueToken(req: IssueQueueTokenRequest, ctx: HandlerContext) {
    const { token, status } = await this.queue.issueToken({
      concertId: req.concertId,
      userId: req.userId,
      assertion: bearerCredential(ctx.requestHeader.get("authorization")),
      limit: ctx.values.get(callLimitKey),
    });
    return { token, status: toQueueStatus(status) };
  }

  async getQueueStatus(_req: GetQueueStatusRequest, ctx: HandlerContext) {
    return { status: toQueueStatus(sessionOf(ctx.values).status) };
  }

  async *watchQueueStatus(_req: unknown, ctx: HandlerContext): AsyncIterable<WatchMessage> {
    for await (const event of this.hub.watch(sessionOf(ctx.values), ctx.signal)) {
      yield toWatchMessage(event);
    }
  }

  async leaveQueue(_req: LeaveQueueRequest, ctx: HandlerContext) {
    await this.queue.leave(principalOf(ctx.values));
    return {};
  }
}
