import { type Database, transaction } from "../../persistence/database.js";
import { TxConnection } from "../../persistence/sql.js";
import type { Clock } from "../../shared/clock.js";
import { DomainError } from "../../shared/domain-error.js";
import { decodePageToken, pageOf } from "../../shared/page-token.js";
import { pageSize, requireRequestId, requireUuid } from "../../shared/validation.js";
import { AuditTrail, claimOwner } from "../admin/index.js";
import { claimRequestId } from "../idempotency/index.js";
import type { AdminActor, Reader } from "../identity/index.js";
import { ReservationRepository } from "../reservations/index.js";
import type { EntryCodes } from "./entry-code.js";
import { localIsoTime } from "./local-time.js";
import { type TicketRecord, TicketRepository } from "./ticket.repository.js";

/** Whether a ticket still admits its holder. */
export type TicketState = "VALID" | "USED" | "REFUNDED";

/** A ticket as fans and the door see it. */
export interface TicketView extends TicketRecord {
  readonly state: TicketState;
  /** The start in the venue's time zone, ISO 8601 with the venue's offset. */
  readonly localStart: string;
  /** The signed entry code; empty for a refunded ticket. */
  readonly entryCode: string;
}

/** What a successful check at the door returns. */
export interface VerifiedTicket {
  readonly ticket: TicketView;
  readonly usedAt: Date;
}

const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;

function ticketNotFound(ticketId: string): DomainError {
  return new DomainError("not_found", "RESERVATION_NOT_FOUND", "no ticket of yours has that id", {
    metadata: { ticket_id: ticketId },
  });
}

function codeInvalid(): DomainError {
  return new DomainError(
    "invalid_argument",
    "TICKET_CODE_INVALID",
    "code: is not the entry code of a ticket",
    { violations: [{ field: "code", description: "is not the entry code of a ticket" }] },
  );
}

/**
 * Tickets: paid reservations with what the door needs, read by their owner
 * (with a queue token or a read-only session), and checked once at the door
 * by an operator (VerifyTicket).
 */
export class TicketsService {
  constructor(
    private readonly db: Database,
    private readonly codes: EntryCodes,
    private readonly clock: Clock,
  ) {}

  /** The view of a ticket record: its state, local start and entry code. */
  view(record: TicketRecord): TicketView {
    const state: TicketState =
      record.status === "REFUNDED" ? "REFUNDED" : record.usedAt === null ? "VALID" : "USED";
    return {
      ...record,
      state,
      localStart: localIsoTime(record.startsAt, record.timeZone),
      entryCode: state === "REFUNDED" ? "" : this.codes.codeFor(record.id),
    };
  }

  /** One page of the reader's tickets, newest first. */
  async list(
    reader: Reader,
    size: number,
    pageToken: string,
  ): Promise<{ tickets: TicketView[]; nextPageToken: string }> {
    const limit = pageSize(size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
    const after = decodePageToken(pageToken, { t: "number", id: "string" });
    const rows = await new TicketRepository(this.db.fork()).listOfUser(
      reader.userId,
      after,
      limit + 1,
    );
    const page = pageOf(rows, limit, (last) => ({ t: last.createdAt.getTime(), id: last.id }));
    return {
      tickets: page.items.map((record) => this.view(record)),
      nextPageToken: page.nextPageToken,
    };
  }

  /** One of the reader's tickets; anyone else's, or an unpaid reservation, is not found. */
  async get(reader: Reader, ticketId: string): Promise<TicketView> {
    const id = requireUuid(ticketId, "ticket_id");
    const record = await new TicketRepository(this.db.fork()).findOfUser(reader.userId, id);
    if (record === null) throw ticketNotFound(id);
    return this.view(record);
  }

  /**
   * Checks an entry code at the door and marks its ticket used, once. One
   * transaction: claim the request id (the operator's namespace), lock the
   * reservation (the lock a refund takes too, so a check and a refund never
   * interleave), refuse a refunded or used ticket, record the use and its
   * audit record. A retry with the same request id replays the first result.
   */
  async verify(
    actor: AdminActor,
    input: { requestId: string; code: string },
  ): Promise<VerifiedTicket> {
    const requestId = requireRequestId(input.requestId);
    const ticketId = this.codes.read(input.code);
    if (ticketId === null) throw codeInvalid();
    const now = this.clock.now();
    return transaction(this.db, async (em) => {
      const tx = await TxConnection.of(em);
      const claim = await claimRequestId(
        tx,
        { userId: claimOwner(actor), requestId, operation: "verify_ticket", params: [ticketId] },
        ticketId,
        now,
      );
      if (claim.kind === "claimed") {
        const reservation = await ReservationRepository.lockReservation(tx, ticketId);
        if (reservation === null) throw codeInvalid();
        if (reservation.status === "REFUNDED") {
          throw new DomainError(
            "failed_precondition",
            "TICKET_REFUNDED",
            "the ticket was refunded; its entry code admits no one",
            { metadata: { ticket_id: ticketId } },
          );
        }
        if (reservation.status !== "CONFIRMED") throw codeInvalid();
        const firstUse = await TicketRepository.findUse(tx, ticketId);
        if (firstUse !== null) {
          throw new DomainError(
            "failed_precondition",
            "TICKET_ALREADY_USED",
            `the ticket's entry code was already used at ${firstUse.toISOString()}`,
            { metadata: { ticket_id: ticketId, first_use_time: firstUse.toISOString() } },
          );
        }
        await TicketRepository.insertUse(tx, ticketId, now, actor.name);
        await AuditTrail.append(tx, {
          actor,
          action: "VerifyTicket",
          target: `reservation/${ticketId}`,
          before: { ticket: { state: "VALID" } },
          after: { ticket: { state: "USED", used_at: now.toISOString() } },
          requestId,
          at: now,
        });
      }
      const record = await TicketRepository.find(tx, ticketId);
      if (record === null || record.usedAt === null) {
        throw new Error(`ticket ${ticketId} of a claimed check is missing or unused`);
      }
      return { ticket: this.view(record), usedAt: record.usedAt };
    });
  }
}
