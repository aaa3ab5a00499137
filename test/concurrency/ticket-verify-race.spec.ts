import { createHash, randomBytes } from "node:crypto";
import { Code, createClient } from "@connectrpc/connect";
import { AdminService } from "@stagedoor/sdk";
import { expect } from "chai";
import { bearer, transportFor } from "../support/clients.js";
import {
  admitUser,
  describeError,
  expectRefusal,
  must,
  NO_USER_RATE_LIMITS,
  partition,
  RACE_PROTOCOLS,
  raceSuite,
  requestId,
} from "./race-support.js";

const OPS_KEY = randomBytes(24).toString("base64url");
const OPS_ENTRY = `ops:${createHash("sha256").update(OPS_KEY).digest("hex")}`;

describe("concurrency: entry codes checked at the door", () => {
  const race = raceSuite({ env: { ADMIN_API_KEYS: OPS_ENTRY, ...NO_USER_RATE_LIMITS } });

  for (const [index, protocol] of RACE_PROTOCOLS.entries()) {
    it(`10 concurrent VerifyTicket of one code over ${protocol}: exactly one admits, nine say ALREADY_USED`, async () => {
      const seat = await race.db.seat(1, 1 + index);
      const fan = await admitUser(race.server, protocol, `door-race-${protocol}`);
      await fan.client.wallet.rechargeWallet({ amount: seat.price, requestId: requestId() });
      const { reservation } = await fan.client.reservation.holdSeat({
        seatId: seat.id,
        requestId: requestId(),
      });
      const ticketId = must(reservation, "the hold").id;
      await fan.client.payment.createPayment({
        reservationId: ticketId,
        amount: seat.price,
        requestId: requestId(),
      });
      const { ticket } = await fan.client.ticket.getTicket({ ticketId });
      const code = must(ticket, "ticket").entryCode;

      const ops = createClient(
        AdminService,
        transportFor(protocol, race.server.url, [bearer(OPS_KEY)]),
      );
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, () => ops.verifyTicket({ requestId: requestId(), code })),
      );
      const { fulfilled, rejected } = partition(results);
      expect(fulfilled, rejected.map(describeError).join("; ")).to.have.length(1);
      for (const error of rejected) {
        expectRefusal(error, Code.FailedPrecondition, ["TICKET_ALREADY_USED"], "verify: ");
      }
      const uses = await race.db.query<{ n: number }>(
        "select count(*)::int as n from ticket_use where reservation_id = $1",
        [ticketId],
      );
      expect(must(uses[0]).n).to.equal(1);
      const audits = await race.db.query<{ n: number }>(
        "select count(*)::int as n from admin_audit where target = $1 and action = 'VerifyTicket'",
        [`reservation/${ticketId}`],
      );
      expect(must(audits[0]).n).to.equal(1);
    });
  }
});
