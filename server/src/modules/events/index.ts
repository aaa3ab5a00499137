/** Events out: the transactional outbox, its relay to NATS JetStream and webhooks, and its dead letters. */

export { type DeadLetterCursor, DeadLetters, type EventDelivery } from "./dead-letters.js";
export {
  DeliveryFailed,
  type EventDestination,
  NatsDestination,
  type NatsOptions,
  type PublishedEvent,
  WebhookDestination,
  type WebhookOptions,
} from "./destinations.js";
export {
  eventIdAndPayload,
  type OutboxEvent,
  type OutboxEventType,
  type OutboxJson,
  OutboxWriter,
  outboxAppendCte,
} from "./outbox.js";
export { OutboxRelay, RELAY_LOCK_KEY, type RelayPass, type RelaySettings } from "./outbox-relay.js";
export {
  EVENT_ID_HEADER,
  SIGNATURE_HEADER,
  signWebhook,
  verifyWebhookSignature,
} from "./signature.js";
