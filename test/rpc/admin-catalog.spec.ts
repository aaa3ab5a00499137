import { randomBytes } from "node:crypto";
import { timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { AdminService, SeatMapFormat, SeatState } from "@stagedoor/sdk";
import { expect } from "chai";
import type pg from "pg";
import { bearer, clientFor, PROTOCOLS, transportFor } from "../support/clients.js";
import type { TestServer } from "../support/test-server.js";
import {
  auditActions as auditTrail,
  expectRpcError,
  ms,
  must,
  newRequestId,
  type OperatorServer,
  startOperatorServer,
  uniqueUser,
} from "./rpc-kit.js";

const KEY = randomBytes(24).toString("base64url");
const DAY_MS = 86_400_000;

/** A seat map of `count` seats in CSV: section Floor, rows of ten, VIP then R. */
function csvSeats(count: number): string {
  const lines = ["section,row,number,grade,price"];
  for (let n = 1; n <= count; n++) {
    const vip = n <= count / 2;
    lines.push(
      `Floor,${String.fromCharCode(64 + Math.ceil(n / 10))},${n},${vip ? "VIP" : "R"},${vip ? 200_000 : 90_000}`,
    );
  }
  return lines.join("\n");
}

describe("rpc: AdminService catalog (concerts, performances, seat maps)", () => {
  let server: TestServer;
  let db: pg.Pool;

  let operator: OperatorServer;

  before(async () => {
    operator = await startOperatorServer(KEY);
    ({ server, db } = operator);
  });
  after(() => operator?.stop());

  const auditActions = (target: string) => auditTrail(db, target);

  async function seatCount(dateId: string): Promise<number> {
    const { rows } = await db.query<{ n: number }>(
      "select count(*)::int as n from seat where concert_date_id = $1",
      [dateId],
    );
    return must(rows[0]).n;
  }

  for (const [index, protocol] of PROTOCOLS.entries()) {
    describe(`over ${protocol}`, () => {
      let ops: Client<typeof AdminService>;
      before(() => {
        ops = createClient(AdminService, transportFor(protocol, server.url, [bearer(KEY)]));
      });

      it("creates a concert, a performance and its seat map, which fans then list and buy", async () => {
        const fans = clientFor(protocol, server.url);
        const requestId = newRequestId();
        const create = {
          title: `Admin Live ${protocol}`,
          venue: "Olympic Hall",
          timeZone: "Asia/Seoul",
          requestId,
        };
        const { concert } = await ops.createConcert(create);
        const concertId = must(concert).id;
        expect(concert).to.deep.include({ timeZone: "Asia/Seoul", venue: "Olympic Hall" });
        expect((await ops.createConcert(create)).concert?.id, "replay").to.equal(concertId);
        const { concerts } = await fans.catalog.listConcerts({ pageSize: 200 });
        expect(concerts.find((c) => c.id === concertId)?.timeZone).to.equal("Asia/Seoul");

        const { concert: renamed } = await ops.updateConcert({
          concertId,
          title: `Admin Live ${protocol} (2nd show added)`,
          venue: "",
          timeZone: "Europe/Paris",
          requestId: newRequestId(),
        });
        expect(renamed).to.deep.include({ venue: "Olympic Hall", timeZone: "Europe/Paris" });

        // 23:30 UTC is already the next day in Paris (UTC+1 in winter).
        const day = new Date(Date.now() + (10 + index) * DAY_MS);
        const start = new Date(
          Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), 23, 30),
        );
        const close = new Date(start.getTime() - DAY_MS);
        const { performance } = await ops.createPerformance({
          concertId,
          startTime: timestampFromDate(start),
          salesCloseTime: timestampFromDate(close),
          requestId: newRequestId(),
        });
        const dateId = must(performance).id;
        expect(performance?.date).to.equal(
          new Date(start.getTime() + DAY_MS).toISOString().slice(0, 10),
        );
        expect(ms(performance?.salesCloseTime)).to.equal(close.getTime());
        await expectRpcError(
          ops.updateConcert({
            concertId,
            title: "",
            venue: "",
            timeZone: "Asia/Tokyo",
            requestId: newRequestId(),
          }),
          { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "time_zone" },
        );
        await expectRpcError(
          ops.createPerformance({
            concertId,
            startTime: timestampFromMs(start.getTime() + 3_600_000),
            requestId: newRequestId(),
          }),
          { code: Code.AlreadyExists, reason: "CONCERT_DATE_EXISTS" },
        );
        // No seats yet: fans do not see the date, but they may look at it.
        expect((await fans.catalog.listConcertDates({ concertId })).dates).to.deep.equal([]);
        expect((await fans.catalog.listSeats({ concertDateId: dateId })).seats).to.deep.equal([]);

        const text = csvSeats(20);
        const dry = await ops.importSeatMap({
          concertDateId: dateId,
          format: SeatMapFormat.CSV,
          text,
          validateOnly: true,
          requestId: "",
        });
        expect(dry).to.deep.include({ seatCount: 20, applied: false, problems: [] });
        expect(await seatCount(dateId)).to.equal(0);
        const importId = newRequestId();
        const imported = await ops.importSeatMap({
          concertDateId: dateId,
          format: SeatMapFormat.CSV,
          text,
          validateOnly: false,
          requestId: importId,
        });
        expect(imported).to.deep.include({ seatCount: 20, applied: true });
        const replayed = await ops.importSeatMap({
          concertDateId: dateId,
          format: SeatMapFormat.CSV,
          text,
          validateOnly: false,
          requestId: importId,
        });
        expect(replayed).to.deep.include({ seatCount: 20, applied: true });
        await expectRpcError(
          ops.importSeatMap({
            concertDateId: dateId,
            format: SeatMapFormat.CSV,
            text,
            validateOnly: false,
            requestId: newRequestId(),
          }),
          { code: Code.FailedPrecondition, reason: "SEAT_MAP_EXISTS" },
        );
        expect(await seatCount(dateId)).to.equal(20);

        // Fans see it at once, priced and graded as imported, and can buy a seat.
        const { dates } = await fans.catalog.listConcertDates({ concertId });
        expect(dates.map((d) => [d.id, d.availableSeatCount, d.totalSeatCount])).to.deep.equal([
          [dateId, 20, 20],
        ]);
        const { seats } = await fans.catalog.listAvailableSeats({ concertDateId: dateId });
        expect(seats.map((s) => [s.number, s.grade, s.price]).slice(9, 11)).to.deep.equal([
          [10, "VIP", 200_000n],
          [11, "R", 90_000n],
        ]);
        const userId = uniqueUser(`new-concert-${protocol}`);
        const { token } = await fans.queue.issueQueueToken({ concertId, userId });
        const fan = clientFor(protocol, server.url, token);
        await fan.wallet.rechargeWallet({ amount: 200_000n, requestId: newRequestId() });
        const seat = must(seats[0]);
        const { reservation } = await fan.reservation.holdSeat({
          seatId: seat.id,
          requestId: newRequestId(),
        });
        await fan.payment.createPayment({
          reservationId: must(reservation).id,
          amount: seat.price,
          requestId: newRequestId(),
        });
        expect((await fans.catalog.getSeat({ seatId: seat.id })).seat?.state).to.equal(
          SeatState.SOLD,
        );

        // The sale's figures: one sold just now, another fan holding a seat.
        const holderToken = (
          await fans.queue.issueQueueToken({ concertId, userId: uniqueUser("holder") })
        ).token;
        await clientFor(protocol, server.url, holderToken).reservation.holdSeat({
          seatId: must(seats[1]).id,
          requestId: newRequestId(),
        });
        const { stats } = await ops.getSaleStats({ concertId });
        expect(stats).to.deep.include({
          totalSeats: 20,
          availableSeats: 18,
          heldSeats: 1,
          soldSeats: 1,
          revenue: seat.price,
          refundedTickets: 0,
          refundedAmount: 0n,
          soldLastFiveMinutes: 1,
          salesPerMinute: 0.2,
        });
        // 19 seats left at 0.2 a minute: 95 minutes.
        expect(stats?.estimatedTimeToSellOut?.seconds).to.equal(5700n);
        await ops.refundTicket({
          reservationId: must(reservation).id,
          requestId: newRequestId(),
          note: "",
        });
        const { stats: after } = await ops.getSaleStats({ concertId });
        expect(after).to.deep.include({
          availableSeats: 19,
          soldSeats: 0,
          revenue: 0n,
          refundedTickets: 1,
          refundedAmount: seat.price,
          soldLastFiveMinutes: 0,
          salesPerMinute: 0,
        });
        expect(after?.estimatedTimeToSellOut).to.equal(undefined);
        await expectRpcError(ops.getSaleStats({ concertId: "x" }), {
          code: Code.InvalidArgument,
          reason: "INVALID_ARGUMENT",
          field: "concert_id",
        });
        await expectRpcError(
          ops.getSaleStats({ concertId: "00000000-0000-4000-8000-000000000000" }),
          { code: Code.NotFound, reason: "CONCERT_NOT_FOUND" },
        );
        await expectRpcError(
          createClient(AdminService, transportFor(protocol, server.url)).getSaleStats({
            concertId,
          }),
          { code: Code.Unauthenticated, reason: "ADMIN_KEY_MISSING" },
        );

        expect(await auditActions(`concert/${concertId}`)).to.deep.equal([
          "CreateConcert",
          "UpdateConcert",
        ]);
        expect(await auditActions(`concert_date/${dateId}`)).to.deep.equal([
          "CreatePerformance",
          "ImportSeatMap",
        ]);
        expect(await auditActions(`reservation/${must(reservation).id}`)).to.deep.equal([
          "RefundTicket",
        ]);
      });

      it("reports every bad row of a dry run, and imports nothing from a bad map", async () => {
        const { concert } = await ops.createConcert({
          title: `Bad maps ${protocol}`,
          venue: "Hall",
          timeZone: "UTC",
          requestId: newRequestId(),
        });
        const { performance } = await ops.createPerformance({
          concertId: must(concert).id,
          startTime: timestampFromMs(Date.now() + 30 * DAY_MS),
          requestId: newRequestId(),
        });
        const dateId = must(performance).id;
        const text = JSON.stringify([
          { section: "A", row: "1", number: 1, grade: "VIP", price: 100 },
          { section: "A", row: "1", number: 1, grade: "VIP", price: 100 },
          { section: "A", row: "1", number: 2, grade: "VIP", price: -1 },
          { section: "", row: "1", number: 3, grade: "VIP", price: 100 },
        ]);
        const dry = await ops.importSeatMap({
          concertDateId: dateId,
          format: SeatMapFormat.JSON,
          text,
          validateOnly: true,
          requestId: "",
        });
        expect(dry.applied).to.equal(false);
        expect(dry.problems.map((p) => [p.line, p.field])).to.deep.equal([
          [2, "number"],
          [3, "price"],
          [4, "section"],
        ]);
        const error = await expectRpcError(
          ops.importSeatMap({
            concertDateId: dateId,
            format: SeatMapFormat.JSON,
            text,
            validateOnly: false,
            requestId: newRequestId(),
          }),
          { code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "text" },
        );
        expect(error.rawMessage).to.include("3 bad row(s)");
        expect(await seatCount(dateId)).to.equal(0);
        expect(await auditActions(`concert_date/${dateId}`)).to.deep.equal(["CreatePerformance"]);
      });

      it("refuses malformed catalog requests with the field named", async () => {
        const concertId = must(
          (
            await ops.createConcert({
              title: "Fields",
              venue: "Hall",
              timeZone: "UTC",
              requestId: newRequestId(),
            })
          ).concert,
        ).id;
        const soon = timestampFromMs(Date.now() + 40 * DAY_MS);
        const cases: [() => Promise<unknown>, string][] = [
          [
            () =>
              ops.createConcert({
                title: "",
                venue: "V",
                timeZone: "UTC",
                requestId: newRequestId(),
              }),
            "title",
          ],
          [
            () =>
              ops.createConcert({
                title: "T",
                venue: "x".repeat(201),
                timeZone: "UTC",
                requestId: newRequestId(),
              }),
            "venue",
          ],
          [
            () =>
              ops.createConcert({
                title: "T",
                venue: "V",
                timeZone: "Mars/Olympus",
                requestId: newRequestId(),
              }),
            "time_zone",
          ],
          [
            () => ops.createConcert({ title: "T", venue: "V", timeZone: "UTC", requestId: "" }),
            "request_id",
          ],
          [
            () =>
              ops.updateConcert({
                concertId: "nope",
                title: "T",
                venue: "",
                timeZone: "",
                requestId: newRequestId(),
              }),
            "concert_id",
          ],
          [() => ops.createPerformance({ concertId, requestId: newRequestId() }), "start_time"],
          [
            () =>
              ops.createPerformance({
                concertId,
                startTime: timestampFromMs(Date.now() - 1000),
                requestId: newRequestId(),
              }),
            "start_time",
          ],
          [
            () =>
              ops.createPerformance({
                concertId,
                startTime: soon,
                salesCloseTime: timestampFromMs(Date.now() + 50 * DAY_MS),
                requestId: newRequestId(),
              }),
            "sales_close_time",
          ],
          [
            () =>
              ops.importSeatMap({
                concertDateId: "x",
                format: SeatMapFormat.CSV,
                text: "",
                validateOnly: true,
                requestId: "",
              }),
            "concert_date_id",
          ],
          [
            () =>
              ops.importSeatMap({
                concertDateId: "00000000-0000-4000-8000-000000000000",
                format: SeatMapFormat.UNSPECIFIED,
                text: "",
                validateOnly: true,
                requestId: "",
              }),
            "format",
          ],
        ];
        for (const [call, field] of cases) {
          await expectRpcError(call, {
            code: Code.InvalidArgument,
            reason: "INVALID_ARGUMENT",
            field,
          });
        }
        await expectRpcError(
          ops.createPerformance({
            concertId: "00000000-0000-4000-8000-000000000000",
            startTime: soon,
            requestId: newRequestId(),
          }),
          { code: Code.NotFound, reason: "CONCERT_NOT_FOUND" },
        );
        await expectRpcError(
          ops.importSeatMap({
            concertDateId: "00000000-0000-4000-8000-000000000000",
            format: SeatMapFormat.CSV,
            text: csvSeats(2),
            validateOnly: false,
            requestId: newRequestId(),
          }),
          { code: Code.NotFound, reason: "CONCERT_DATE_NOT_FOUND" },
        );
        // A fan's token is no operator key.
        const fanToken = (
          await clientFor(protocol, server.url).queue.issueQueueToken({
            concertId,
            userId: uniqueUser("fan"),
          })
        ).token;
        await expectRpcError(
          createClient(
            AdminService,
            transportFor(protocol, server.url, [bearer(fanToken)]),
          ).createConcert({
            title: "T",
            venue: "V",
            timeZone: "UTC",
            requestId: newRequestId(),
          }),
          { code: Code.Unauthenticated, reason: "ADMIN_KEY_INVALID" },
        );
      });
    });
  }
});
