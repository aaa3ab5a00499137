/** Events out: the transactional outbox, its relay to NATS JetStream and webhooks, and its dead letters. */
export {
  eventIdAndPayload,
  type OutboxEvent,
  type OutboxEventType,
  type OutboxJson,
  OutboxWriter,
  outboxAppendCte,
} from "./outbox.js";
