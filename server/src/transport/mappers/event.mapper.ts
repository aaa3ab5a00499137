import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { EventDeliverySchema } from "@stagedoor/sdk";
import type { EventDelivery } from "../../modules/events/index.js";

/** An event delivery as the operator API returns it. */
export function toEventDelivery(
  delivery: EventDelivery,
): MessageInitShape<typeof EventDeliverySchema> {
  return {
    eventId: delivery.eventId,
    destination: delivery.destination,
    concertId: delivery.concertId,
    type: delivery.type,
    sequence: delivery.sequence,
    attempts: delivery.attempts,
    lastError: delivery.lastError ?? "",
    occurTime: timestampFromDate(delivery.occurredAt),
    ...(delivery.deadLetteredAt === null
      ? {}
      : { deadLetterTime: timestampFromDate(delivery.deadLetteredAt) }),
    payloadJson: delivery.payloadJson,
    deadLettered: delivery.status === "DEAD",
  };
}
