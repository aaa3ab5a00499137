import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type QueueStatusSchema, QueueTokenState } from "@stagedoor/sdk";
import type { QueueTokenState as DomainState, QueueStatusView } from "../../modules/queue/index.js";

const STATES: Record<DomainState, QueueTokenState> = {
  lobby: QueueTokenState.LOBBY,
  waiting: QueueTokenState.WAITING,
  admitted: QueueTokenState.ADMITTED,
  completed: QueueTokenState.COMPLETED,
};

/** Maps a domain queue status to its API message. */
export function toQueueStatus(view: QueueStatusView): MessageInitShape<typeof QueueStatusSchema> {
  return {
    concertId: view.concertId,
    state: STATES[view.state],
    position: BigInt(view.position),
    waitingCount: BigInt(view.waitingCount),
    estimatedWait: durationFromMs(view.estimatedWaitMs),
    expireTime: timestampFromDate(view.expireTime),
    opensAt: view.opensAt === null ? undefined : timestampFromDate(view.opensAt),
    admissionPaused: view.admissionPaused,
  };
}
