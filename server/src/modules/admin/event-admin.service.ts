import { type Database, transaction } from "../../persistence/database.js";
import { TxConnection } from "../../persistence/sql.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError, invalidField } from "../../shared/domain-error.js";
import { isUuid } from "../../shared/ids.js";
import { decodePageToken, encodePageToken } from "../../shared/page-token.js";
import { pageSize, requireRequestId, requireUuid } from "../../shared/validation.js";
import { DeadLetters, type EventDelivery } from "../events/index.js";
import { claimRequestId } from "../idempotency/index.js";
import type { AdminActor } from "../identity/index.js";
import { AuditTrail } from "./audit.js";
import { claimOwner } from "./claims.js";

/** The longest destination key (`webhook:` and a URL) an operator may name. */
const MAX_DESTINATION_LENGTH = 2100;

function deliveryNotFound(eventId: string, destination: string): DomainError {
  return new DomainError(
    "not_found",
    "EVENT_DELIVERY_NOT_FOUND",
    "no delivery of that event to that destination",
    { metadata: { event_id: eventId, destination } },
  );
}

/**
 * The operator's view of events out: dead-lettered deliveries, and moving
 * one back to pending (audited, in the same transaction as the change).
 */
export class EventAdminService {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    /** How long a redelivered event is retried again before it is given up. */
    private readonly retryMs: number,
  ) {}

  /** One page of dead-lettered deliveries, most recently given up first. */
  async listDeadLettered(
    size: number,
    token: string,
  ): Promise<{ deliveries: EventDelivery[]; nextPageToken: string }> {
    const limit = pageSize(size, 20, 100);
    const after = decodePageToken(token, { us: "string", id: "string", dest: "string" });
    if (
      after !== undefined &&
      (!/^\d{1,19}$/.test(after.us) ||
        !isUuid(after.id) ||
        after.dest.length > MAX_DESTINATION_LENGTH)
    ) {
      throw invalidField("page_token", "is not a page token this server issued");
    }
    const rows = await transaction(this.db, async (em) =>
      DeadLetters.list(await TxConnection.of(em), after, limit + 1),
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      deliveries: page.map((row) => row.delivery),
      nextPageToken:
        rows.length > limit && last !== undefined ? encodePageToken({ ...last.cursor }) : "",
    };
  }

  /**
   * Moves a dead-lettered delivery back to pending, due now, with a fresh
   * retry window; the relay's next pass tries it. A retry with the same
   * request id returns the delivery as it is now, changing nothing.
   */
  async redeliver(
    actor: AdminActor,
    input: { eventId: string; destination: string; requestId: string },
  ): Promise<EventDelivery> {
    const eventId = requireUuid(input.eventId, "event_id");
    const destination = input.destination;
    if (destination === "" || destination.length > MAX_DESTINATION_LENGTH) {
      throw invalidField("destination", `must be 1 to ${MAX_DESTINATION_LENGTH} characters`);
    }
    const requestId = requireRequestId(input.requestId);
    const now = this.clock.now();
    return transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      const claim = await claimRequestId(
        tx,
        {
          userId: claimOwner(actor),
          requestId,
          operation: "redeliver_event",
          params: [eventId, destination],
        },
        eventId,
        now,
      );
      if (claim.kind === "replay") {
        const current = await DeadLetters.find(tx, eventId, destination);
        if (current === null) throw deliveryNotFound(eventId, destination);
        return current;
      }
      const delivery = await DeadLetters.lock(tx, eventId, destination);
      if (delivery === null) throw deliveryNotFound(eventId, destination);
      if (delivery.status !== "DEAD") {
        throw new DomainError(
          "failed_precondition",
          "EVENT_NOT_DEAD_LETTERED",
          `the delivery is ${delivery.status.toLowerCase()}, not dead-lettered`,
          { metadata: { event_id: eventId, destination, status: delivery.status } },
        );
      }
      const giveUpAt = new Date(now.getTime() + this.retryMs);
      await DeadLetters.requeue(tx, eventId, destination, now, giveUpAt);
      await AuditTrail.append(tx, {
        actor,
        action: "RedeliverEvent",
        target: `event/${eventId}`,
        before: { destination, status: "DEAD", attempts: delivery.attempts },
        after: { destination, status: "PENDING", give_up_at: giveUpAt.toISOString() },
        requestId,
        at: now,
      });
      return { ...delivery, status: "PENDING" as const, deadLetteredAt: null };
    });
  }
}
