import type { Transport } from "@connectrpc/connect";
import {
  createStagedoorClient,
  LedgerEntryKind,
  ReservationState,
  SeatState,
  type StagedoorClient,
} from "@stagedoor/sdk";
import type { Ticket } from "./fan.js";
import { seatsOfDate } from "./seat-listing.js";

/** One invariant checked after the rush. */
export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  /** What was compared, or the first things that did not add up. */
  readonly detail: string;
}

/** What the checks compare the server's state with. */
export interface RushRecord {
  readonly transport: Transport;
  readonly concertDateId: string;
  readonly date: string;
  /** SOLD seats of the date before the rush (an earlier run may have sold some). */
  readonly soldBefore: number;
  readonly tickets: readonly Ticket[];
}

/** A paying fan's receipt and a client acting with their token. */
interface Buyer {
  readonly ticket: Ticket;
  readonly client: StagedoorClient;
}

/** Shows at most a few problems, so one broken invariant doesn't flood the output. */
function firstFew(problems: readonly string[]): string {
  const shown = problems.slice(0, 5).join("; ");
  return problems.length > 5 ? `${shown}; and ${problems.length - 5} more` : shown;
}

/** No two confirmed sales of one seat, by the fans' receipts and by the server's records. */
async function noSeatSoldTwice(buyers: readonly Buyer[]): Promise<CheckResult> {
  const problems: string[] = [];
  const owners = new Map<string, string>();
  for (const { ticket } of buyers) {
    const earlier = owners.get(ticket.seatId);
    if (earlier) problems.push(`seat ${ticket.seatNumber} sold to ${earlier} and ${ticket.userId}`);
    owners.set(ticket.seatId, ticket.userId);
  }
  await Promise.all(
    buyers.map(async ({ ticket, client }) => {
      const { reservation } = await client.reservation.getReservation({
        reservationId: ticket.reservationId,
      });
      if (
        reservation?.state !== ReservationState.CONFIRMED ||
        reservation.seatId !== ticket.seatId
      ) {
        problems.push(`reservation ${ticket.reservationId} is not a confirmed sale of its seat`);
      }
    }),
  );
  const ok = problems.length === 0;
  return {
    name: "no seat sold twice",
    ok,
    detail: ok
      ? `${buyers.length} confirmed reservations on ${owners.size} different seats`
      : firstFew(problems),
  };
}

/** The date's SOLD seats are exactly the ones sold before plus the ones the fans paid for. */
async function soldSeatsMatch(
  record: RushRecord,
  anonymous: StagedoorClient,
): Promise<CheckResult> {
  const seats = await seatsOfDate(anonymous, record.concertDateId, "all");
  const sold = new Set(seats.filter((s) => s.state === SeatState.SOLD).map((s) => s.id));
  const unsold = record.tickets.filter((t) => !sold.has(t.seatId)).map((t) => t.seatNumber);
  const expected = record.soldBefore + record.tickets.length;
  const ok = sold.size === expected && unsold.length === 0;
  const counts = ok
    ? `${sold.size} SOLD on ${record.date} = ${record.soldBefore} sold before + ${record.tickets.length} sold in this rush`
    : `${sold.size} SOLD on ${record.date}, expected ${record.soldBefore} sold before + ${record.tickets.length} sold in this rush = ${expected}`;
  return {
    name: "sold seats match the sales",
    ok,
    detail: unsold.length > 0 ? `${counts}; paid-for seats not SOLD: ${unsold.join(", ")}` : counts,
  };
}

/** Each paying fan's wallet holds recharged − paid, and its ledger adds up to that balance. */
async function balancesAddUp(buyers: readonly Buyer[]): Promise<CheckResult> {
  const problems: string[] = [];
  await Promise.all(
    buyers.map(async ({ ticket, client }) => {
      const { wallet } = await client.wallet.getWallet({});
      const expected = ticket.recharged - ticket.paid;
      const balance = wallet?.balance ?? -1n;
      if (balance !== expected) {
        problems.push(`${ticket.userId}: balance ${balance}, expected ${expected}`);
      }
      const { entries } = await client.wallet.listLedgerEntries({ pageSize: 100 });
      const sum = (kind: LedgerEntryKind) =>
        entries.filter((e) => e.kind === kind).reduce((total, e) => total + e.amount, 0n);
      const recharges = sum(LedgerEntryKind.RECHARGE);
      const payments = sum(LedgerEntryKind.PAYMENT);
      if (
        recharges !== ticket.recharged ||
        -payments !== ticket.paid ||
        recharges + payments !== balance
      ) {
        problems.push(
          `${ticket.userId}: ledger recharges ${recharges} and payments ${payments} do not match`,
        );
      }
    }),
  );
  const ok = problems.length === 0;
  return {
    name: "balances add up",
    ok,
    detail: ok
      ? `${buyers.length} paying fans: every wallet = recharged − paid, and its ledger sums to it`
      : firstFew(problems),
  };
}

/**
 * Checks, through the public API only, what a rush must never break: a seat
 * sold twice, a sale the seat map doesn't show (or one it shows that nobody
 * paid for), and money that doesn't add up.
 */
export async function runChecks(record: RushRecord): Promise<CheckResult[]> {
  const anonymous = createStagedoorClient(record.transport);
  const buyers = record.tickets.map((ticket) => ({
    ticket,
    client: createStagedoorClient({ transport: record.transport, token: ticket.token }),
  }));
  return [
    await noSeatSoldTwice(buyers),
    await soldSeatsMatch(record, anonymous),
    await balancesAddUp(buyers),
  ];
}
