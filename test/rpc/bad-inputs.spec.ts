import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Reservation, StagedoorClient } from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor, PROTOCOLS, type Protocol } from "../support/clients.js";
import type { TestServer } from "../support/test-server.js";
import {
  type ExpectedError,
  expectRpcError,
  must,
  newRequestId,
  startRpcServer,
  uniqueUser,
} from "./rpc-kit.js";

/** Lower than the default so the balance limit is reachable in two recharges. */
const MAX_BALANCE = 20_000_000n;
const MAX_RECHARGE = 10_000_000n;
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/** One user of the fixture, with clients over the protocol under test and over Connect for reads. */
interface Party {
  readonly userId: string;
  readonly token: string;
  /** Over the protocol under test. */
  readonly api: StagedoorClient;
  /** Over Connect, for the before/after reads. */
  readonly read: StagedoorClient;
}

/** The state every bad request runs against, built once per protocol. */
interface Fixture {
  readonly protocol: Protocol;
  readonly anon: StagedoorClient;
  readonly concertId: string;
  readonly dateId: string;
  /** The seat ids of the fixture's date by number. */
  readonly seat: (number: number) => string;
  /** Holds seat 2 (released seat 1 before), recharged 500,000. */
  readonly me: Party;
  readonly myHold: Reservation;
  readonly myReleased: Reservation;
  readonly myRechargeRequestId: string;
  readonly myHoldRequestId: string;
  /** Holds seat 3. */
  readonly other: Party;
  readonly otherHold: Reservation;
  /** Paid for seat 4 (so seat 4 is sold). */
  readonly payer: Party;
  readonly paid: Reservation;
  /** Holds seat 5 with a balance of 1,000. */
  readonly poor: Party;
  readonly poorHold: Reservation;
  /** At the balance limit. */
  readonly rich: Party;
  /** Never recharged, never held. */
  readonly fresh: Party;
}

/** A seat nobody in the fixture touches; it must stay available. */
const FREE_SEAT = 40;

/** A page token that is valid base64url but not one the server issued. */
function forged(value: unknown): string {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}

/** One bad request and what it must produce. */
interface Row {
  readonly rpc: string;
  readonly input: string;
  readonly call: (f: Fixture) => Promise<unknown>;
  readonly expected: ExpectedError;
  /**
   * Whether the RPC writes state a read can show, so the suite checks that the
   * refusal wrote nothing. (A stray queue token would not show in any read, so
   * IssueQueueToken rows only check the error.)
   */
  readonly writes?: boolean;
}

const invalid = (field: string): ExpectedError => ({
  code: Code.InvalidArgument,
  reason: "INVALID_ARGUMENT",
  field,
});
const notFound = (reason: string): ExpectedError => ({ code: Code.NotFound, reason });
const precondition = (reason: string): ExpectedError => ({
  code: Code.FailedPrecondition,
  reason,
});

const BAD_USER_IDS: [string, string][] = [
  ["an empty user id", ""],
  ["a 129-character user id", "u".repeat(129)],
  ["129 astral characters", "😀".repeat(129)],
  ["a NUL in the user id", "fan\u0000one"],
  ["a newline in the user id", "fan\none"],
  ["a DEL in the user id", "fan\u007f"],
];
const NON_UUIDS: [string, string][] = [
  ["an empty id", ""],
  ["a non-UUID id", "not-a-uuid"],
  ["a UUID with trailing junk", `${randomUUID()}x`],
];
const BAD_REQUEST_IDS: [string, string][] = [
  ["an empty request id", ""],
  ["a 129-character request id", "r".repeat(129)],
  ["a control character in the request id", "req\u0007"],
];
/** Forged page tokens, each refused as `page_token`. */
const FORGED_TOKENS: [string, string][] = [
  ["a page token outside the base64url alphabet", "!!!not-a-token!!!"],
  ["a page token of a JSON string", forged("page-2")],
  ["a page token with keys of the wrong type", forged({ t: "yesterday", id: 7, n: "3" })],
  ["a page token longer than any the server issues", "A".repeat(600)],
];

function pagingRows(
  rpc: string,
  max: number,
  call: (f: Fixture, pageSize: number, pageToken: string) => Promise<unknown>,
): Row[] {
  return [
    {
      rpc,
      input: "a negative page size",
      call: (f) => call(f, -1, ""),
      expected: invalid("page_size"),
    },
    {
      rpc,
      input: `a page size above ${max}`,
      call: (f) => call(f, max + 1, ""),
      expected: invalid("page_size"),
    },
    {
      rpc,
      input: "the largest int32 page size",
      call: (f) => call(f, 2 ** 31 - 1, ""),
      expected: invalid("page_size"),
    },
    ...FORGED_TOKENS.map(
      ([input, token]): Row => ({
        rpc,
        input,
        call: (f) => call(f, 0, token),
        expected: invalid("page_token"),
      }),
    ),
  ];
}

const ROWS: Row[] = [
  // QueueService.IssueQueueToken
  ...BAD_USER_IDS.map(
    ([input, userId]): Row => ({
      rpc: "IssueQueueToken",
      input,
      call: (f) => f.anon.queue.issueQueueToken({ concertId: f.concertId, userId }),
      expected: invalid("user_id"),
    }),
  ),
  ...NON_UUIDS.map(
    ([input, concertId]): Row => ({
      rpc: "IssueQueueToken",
      input: `${input} as concert_id`,
      call: (f) => f.anon.queue.issueQueueToken({ concertId, userId: uniqueUser("bad") }),
      expected: invalid("concert_id"),
    }),
  ),
  {
    rpc: "IssueQueueToken",
    input: "an unknown concert",
    call: (f) =>
      f.anon.queue.issueQueueToken({ concertId: randomUUID(), userId: uniqueUser("bad") }),
    expected: notFound("CONCERT_NOT_FOUND"),
  },

  // CatalogService
  ...pagingRows("ListConcerts", 200, (f, pageSize, pageToken) =>
    f.anon.catalog.listConcerts({ pageSize, pageToken }),
  ),
  ...NON_UUIDS.map(
    ([input, concertId]): Row => ({
      rpc: "ListConcertDates",
      input,
      call: (f) => f.anon.catalog.listConcertDates({ concertId }),
      expected: invalid("concert_id"),
    }),
  ),
  {
    rpc: "ListConcertDates",
    input: "an unknown concert",
    call: (f) => f.anon.catalog.listConcertDates({ concertId: randomUUID() }),
    expected: notFound("CONCERT_NOT_FOUND"),
  },
  ...NON_UUIDS.map(
    ([input, concertDateId]): Row => ({
      rpc: "ListAvailableSeats",
      input,
      call: (f) => f.anon.catalog.listAvailableSeats({ concertDateId }),
      expected: invalid("concert_date_id"),
    }),
  ),
  {
    rpc: "ListAvailableSeats",
    input: "an unknown date",
    call: (f) => f.anon.catalog.listAvailableSeats({ concertDateId: randomUUID() }),
    expected: notFound("CONCERT_DATE_NOT_FOUND"),
  },
  ...pagingRows("ListAvailableSeats", 5000, (f, pageSize, pageToken) =>
    f.anon.catalog.listAvailableSeats({ concertDateId: f.dateId, pageSize, pageToken }),
  ),
  {
    rpc: "ListAvailableSeats",
    input: "a page token with a fractional seat number",
    call: (f) =>
      f.anon.catalog.listAvailableSeats({ concertDateId: f.dateId, pageToken: forged({ n: 1.5 }) }),
    expected: invalid("page_token"),
  },
  ...NON_UUIDS.map(
    ([input, seatId]): Row => ({
      rpc: "GetSeat",
      input,
      call: (f) => f.anon.catalog.getSeat({ seatId }),
      expected: invalid("seat_id"),
    }),
  ),
  {
    rpc: "GetSeat",
    input: "an unknown seat",
    call: (f) => f.anon.catalog.getSeat({ seatId: randomUUID() }),
    expected: notFound("SEAT_NOT_FOUND"),
  },

  // ReservationService
  ...NON_UUIDS.map(
    ([input, seatId]): Row => ({
      rpc: "HoldSeat",
      input,
      call: (f) => f.fresh.api.reservation.holdSeat({ seatId, requestId: newRequestId() }),
      expected: invalid("seat_id"),
      writes: true,
    }),
  ),
  ...BAD_REQUEST_IDS.map(
    ([input, requestId]): Row => ({
      rpc: "HoldSeat",
      input,
      call: (f) => f.fresh.api.reservation.holdSeat({ seatId: f.seat(FREE_SEAT), requestId }),
      expected: invalid("request_id"),
      writes: true,
    }),
  ),
  {
    rpc: "HoldSeat",
    input: "an unknown seat",
    call: (f) =>
      f.fresh.api.reservation.holdSeat({ seatId: randomUUID(), requestId: newRequestId() }),
    expected: notFound("SEAT_NOT_FOUND"),
    writes: true,
  },
  {
    rpc: "HoldSeat",
    input: "a seat another user holds",
    call: (f) =>
      f.fresh.api.reservation.holdSeat({ seatId: f.otherHold.seatId, requestId: newRequestId() }),
    expected: precondition("SEAT_UNAVAILABLE"),
    writes: true,
  },
  {
    rpc: "HoldSeat",
    input: "a sold seat",
    call: (f) =>
      f.fresh.api.reservation.holdSeat({ seatId: f.paid.seatId, requestId: newRequestId() }),
    expected: precondition("SEAT_UNAVAILABLE"),
    writes: true,
  },
  {
    rpc: "HoldSeat",
    input: "a second seat while holding one",
    call: (f) =>
      f.me.api.reservation.holdSeat({ seatId: f.seat(FREE_SEAT), requestId: newRequestId() }),
    expected: precondition("HOLD_LIMIT_REACHED"),
    writes: true,
  },
  {
    rpc: "HoldSeat",
    input: "a request id already used for another seat",
    call: (f) =>
      f.me.api.reservation.holdSeat({
        seatId: f.seat(FREE_SEAT),
        requestId: f.myHoldRequestId,
      }),
    expected: { code: Code.InvalidArgument, reason: "REQUEST_ID_REUSED", field: "request_id" },
    writes: true,
  },
  ...NON_UUIDS.map(
    ([input, reservationId]): Row => ({
      rpc: "GetReservation",
      input,
      call: (f) => f.me.api.reservation.getReservation({ reservationId }),
      expected: invalid("reservation_id"),
    }),
  ),
  {
    rpc: "GetReservation",
    input: "an unknown reservation",
    call: (f) => f.me.api.reservation.getReservation({ reservationId: randomUUID() }),
    expected: notFound("RESERVATION_NOT_FOUND"),
  },
  ...NON_UUIDS.map(
    ([input, reservationId]): Row => ({
      rpc: "ReleaseReservation",
      input,
      call: (f) =>
        f.me.api.reservation.releaseReservation({ reservationId, requestId: newRequestId() }),
      expected: invalid("reservation_id"),
      writes: true,
    }),
  ),
  ...BAD_REQUEST_IDS.map(
    ([input, requestId]): Row => ({
      rpc: "ReleaseReservation",
      input,
      call: (f) =>
        f.me.api.reservation.releaseReservation({ reservationId: f.myHold.id, requestId }),
      expected: invalid("request_id"),
      writes: true,
    }),
  ),
  {
    rpc: "ReleaseReservation",
    input: "an unknown reservation",
    call: (f) =>
      f.me.api.reservation.releaseReservation({
        reservationId: randomUUID(),
        requestId: newRequestId(),
      }),
    expected: notFound("RESERVATION_NOT_FOUND"),
    writes: true,
  },
  {
    rpc: "ReleaseReservation",
    input: "a reservation released before",
    call: (f) =>
      f.me.api.reservation.releaseReservation({
        reservationId: f.myReleased.id,
        requestId: newRequestId(),
      }),
    expected: precondition("RESERVATION_NOT_HELD"),
    writes: true,
  },
  {
    rpc: "ReleaseReservation",
    input: "a paid reservation",
    call: (f) =>
      f.payer.api.reservation.releaseReservation({
        reservationId: f.paid.id,
        requestId: newRequestId(),
      }),
    expected: precondition("ALREADY_PAID"),
    writes: true,
  },
  {
    rpc: "ReleaseReservation",
    input: "a request id already used for a recharge",
    call: (f) =>
      f.me.api.reservation.releaseReservation({
        reservationId: f.myHold.id,
        requestId: f.myRechargeRequestId,
      }),
    expected: { code: Code.InvalidArgument, reason: "REQUEST_ID_REUSED", field: "request_id" },
    writes: true,
  },
  ...pagingRows("ListReservations", 100, (f, pageSize, pageToken) =>
    f.me.api.reservation.listReservations({ pageSize, pageToken }),
  ),

  // WalletService
  ...(
    [
      ["a zero amount", 0n],
      ["a negative amount", -1n],
      ["an amount above the recharge limit", MAX_RECHARGE + 1n],
      ["the largest int64 amount", INT64_MAX],
      ["the smallest int64 amount", INT64_MIN],
    ] as [string, bigint][]
  ).map(
    ([input, amount]): Row => ({
      rpc: "RechargeWallet",
      input,
      call: (f) => f.me.api.wallet.rechargeWallet({ amount, requestId: newRequestId() }),
      expected: invalid("amount"),
      writes: true,
    }),
  ),
  ...BAD_REQUEST_IDS.map(
    ([input, requestId]): Row => ({
      rpc: "RechargeWallet",
      input,
      call: (f) => f.fresh.api.wallet.rechargeWallet({ amount: 1_000n, requestId }),
      expected: invalid("request_id"),
      writes: true,
    }),
  ),
  {
    rpc: "RechargeWallet",
    input: "a request id already used for another amount",
    call: (f) => f.me.api.wallet.rechargeWallet({ amount: 1n, requestId: f.myRechargeRequestId }),
    expected: { code: Code.InvalidArgument, reason: "REQUEST_ID_REUSED", field: "request_id" },
    writes: true,
  },
  {
    rpc: "RechargeWallet",
    input: "an amount that would pass the balance limit",
    call: (f) => f.rich.api.wallet.rechargeWallet({ amount: 1n, requestId: newRequestId() }),
    expected: { code: Code.ResourceExhausted, reason: "BALANCE_LIMIT_REACHED" },
    writes: true,
  },
  ...pagingRows("ListLedgerEntries", 500, (f, pageSize, pageToken) =>
    f.me.api.wallet.listLedgerEntries({ pageSize, pageToken }),
  ),

  // PaymentService
  ...NON_UUIDS.map(
    ([input, reservationId]): Row => ({
      rpc: "CreatePayment",
      input,
      call: (f) =>
        f.me.api.payment.createPayment({
          reservationId,
          amount: f.myHold.price,
          requestId: newRequestId(),
        }),
      expected: invalid("reservation_id"),
      writes: true,
    }),
  ),
  ...BAD_REQUEST_IDS.map(
    ([input, requestId]): Row => ({
      rpc: "CreatePayment",
      input,
      call: (f) =>
        f.me.api.payment.createPayment({
          reservationId: f.myHold.id,
          amount: f.myHold.price,
          requestId,
        }),
      expected: invalid("request_id"),
      writes: true,
    }),
  ),
  ...(
    [
      ["a zero amount", () => 0n, "INVALID_ARGUMENT"],
      ["a negative amount", () => -110_000n, "INVALID_ARGUMENT"],
      ["an amount above the price", (price: bigint) => price + 1n, "AMOUNT_MISMATCH"],
      ["an amount below the price", (price: bigint) => price - 1n, "AMOUNT_MISMATCH"],
      ["the largest int64 amount", () => INT64_MAX, "AMOUNT_MISMATCH"],
    ] as [string, (price: bigint) => bigint, string][]
  ).map(
    ([input, amount, reason]): Row => ({
      rpc: "CreatePayment",
      input,
      call: (f) =>
        f.me.api.payment.createPayment({
          reservationId: f.myHold.id,
          amount: amount(f.myHold.price),
          requestId: newRequestId(),
        }),
      expected: { code: Code.InvalidArgument, reason, field: "amount" },
      writes: true,
    }),
  ),
  {
    rpc: "CreatePayment",
    input: "an unknown reservation",
    call: (f) =>
      f.me.api.payment.createPayment({
        reservationId: randomUUID(),
        amount: 110_000n,
        requestId: newRequestId(),
      }),
    expected: notFound("RESERVATION_NOT_FOUND"),
    writes: true,
  },
  {
    rpc: "CreatePayment",
    input: "a request id already used for a recharge",
    call: (f) =>
      f.me.api.payment.createPayment({
        reservationId: f.myHold.id,
        amount: f.myHold.price,
        requestId: f.myRechargeRequestId,
      }),
    expected: { code: Code.InvalidArgument, reason: "REQUEST_ID_REUSED", field: "request_id" },
    writes: true,
  },
  {
    rpc: "CreatePayment",
    input: "a balance lower than the price",
    call: (f) =>
      f.poor.api.payment.createPayment({
        reservationId: f.poorHold.id,
        amount: f.poorHold.price,
        requestId: newRequestId(),
      }),
    expected: precondition("INSUFFICIENT_BALANCE"),
    writes: true,
  },
  {
    rpc: "CreatePayment",
    input: "a reservation paid before (new request id)",
    call: (f) =>
      f.payer.api.payment.createPayment({
        reservationId: f.paid.id,
        amount: f.paid.price,
        requestId: newRequestId(),
      }),
    expected: precondition("ALREADY_PAID"),
    writes: true,
  },
  {
    rpc: "CreatePayment",
    input: "a released reservation",
    call: (f) =>
      f.me.api.payment.createPayment({
        reservationId: f.myReleased.id,
        amount: f.myReleased.price,
        requestId: newRequestId(),
      }),
    expected: precondition("RESERVATION_NOT_HELD"),
    writes: true,
  },
  ...NON_UUIDS.map(
    ([input, paymentId]): Row => ({
      rpc: "GetPayment",
      input,
      call: (f) => f.payer.api.payment.getPayment({ paymentId }),
      expected: invalid("payment_id"),
    }),
  ),
  {
    rpc: "GetPayment",
    input: "an unknown payment",
    call: (f) => f.payer.api.payment.getPayment({ paymentId: randomUUID() }),
    expected: notFound("PAYMENT_NOT_FOUND"),
  },
];

/**
 * Everything a refused write could have touched, read over Connect: every
 * party's wallet (its version moves with any balance change) and
 * reservations, and which seats of the date are free.
 */
async function observe(f: Fixture): Promise<unknown> {
  const parties = [f.me, f.other, f.payer, f.poor, f.rich, f.fresh];
  const [available, ...perParty] = await Promise.all([
    f.anon.catalog.listAvailableSeats({ concertDateId: f.dateId, pageSize: 100 }),
    ...parties.map(async (party) => {
      const [wallet, reservations] = await Promise.all([
        party.read.wallet.getWallet({}).then(
          (r) => [r.wallet?.balance, r.wallet?.version],
          (error: unknown) => ConnectError.from(error).code,
        ),
        party.read.reservation.listReservations({ pageSize: 100 }),
      ]);
      return {
        user: party.userId,
        wallet,
        reservations: reservations.reservations.map((r) => [r.id, r.seatId, r.state]),
      };
    }),
  ]);
  return { perParty, available: available.seats.map((s) => s.number) };
}

async function buildFixture(
  server: TestServer,
  protocol: Protocol,
  dateIndex: number,
): Promise<Fixture> {
  const anon = clientFor(protocol, server.url);
  const party = async (label: string): Promise<Party> => {
    const userId = uniqueUser(`${label}-${protocol}`);
    const { token } = await anon.queue.issueQueueToken({ concertId: server.concertId, userId });
    return {
      userId,
      token,
      api: clientFor(protocol, server.url, token),
      read: clientFor("connect", server.url, token),
    };
  };
  const { dates } = await anon.catalog.listConcertDates({ concertId: server.concertId });
  const date = must(dates[dateIndex], `date #${dateIndex}`);
  const { seats } = await anon.catalog.listAvailableSeats({ concertDateId: date.id, pageSize: 50 });
  const seatIds = new Map(seats.map((s) => [s.number, s.id]));
  const seat = (number: number) => must(seatIds.get(number), `seat ${number}`);
  const hold = async (who: Party, number: number, requestId = newRequestId()) =>
    must((await who.read.reservation.holdSeat({ seatId: seat(number), requestId })).reservation);

  const [me, other, payer, poor, rich, fresh] = await Promise.all(
    ["me", "other", "payer", "poor", "rich", "fresh"].map(party),
  );
  if (!me || !other || !payer || !poor || !rich || !fresh) throw new Error("party missing");

  // The parties' set-ups are independent of each other, so they run at once.
  const mine = (async () => {
    const released = await hold(me, 1);
    const myReleased = must(
      (
        await me.read.reservation.releaseReservation({
          reservationId: released.id,
          requestId: newRequestId(),
        })
      ).reservation,
    );
    const myHoldRequestId = newRequestId();
    const myHold = await hold(me, 2, myHoldRequestId);
    const myRechargeRequestId = newRequestId();
    await me.read.wallet.rechargeWallet({ amount: 500_000n, requestId: myRechargeRequestId });
    return { myReleased, myHoldRequestId, myHold, myRechargeRequestId };
  })();
  const paying = (async () => {
    const toPay = await hold(payer, 4);
    await payer.read.wallet.rechargeWallet({ amount: toPay.price, requestId: newRequestId() });
    const paidResult = await payer.read.payment.createPayment({
      reservationId: toPay.id,
      amount: toPay.price,
      requestId: newRequestId(),
    });
    return must(paidResult.reservation);
  })();
  const poorly = (async () => {
    const poorHold = await hold(poor, 5);
    await poor.read.wallet.rechargeWallet({ amount: 1_000n, requestId: newRequestId() });
    return poorHold;
  })();
  const richly = (async () => {
    for (let i = 0n; i < MAX_BALANCE / MAX_RECHARGE; i++) {
      await rich.read.wallet.rechargeWallet({ amount: MAX_RECHARGE, requestId: newRequestId() });
    }
  })();
  const [{ myReleased, myHoldRequestId, myHold, myRechargeRequestId }, otherHold, paid, poorHold] =
    await Promise.all([mine, hold(other, 3), paying, poorly, richly]);

  return {
    protocol,
    anon,
    concertId: server.concertId,
    dateId: date.id,
    seat,
    me,
    myHold,
    myReleased,
    myRechargeRequestId,
    myHoldRequestId,
    other,
    otherHold,
    payer,
    paid,
    poor,
    poorHold,
    rich,
    fresh,
  };
}

/**
 * Bad input for every RPC, as one table run through every protocol: each row
 * must fail with the right code, an ErrorInfo of our domain with the expected
 * reason and, for invalid_argument, a BadRequest violation naming the field;
 * never internal/unknown. A refused write must leave every observable state
 * exactly as it was.
 */
describe("bad inputs for every RPC", () => {
  let server: TestServer;

  before(async () => {
    server = await startRpcServer({
      env: {
        WALLET_MAX_BALANCE: String(MAX_BALANCE),
        WALLET_MAX_RECHARGE: String(MAX_RECHARGE),
        // One user sends every row's refused write, faster than any person
        // could: the per-user rate limits (rate-limits.spec.ts) would answer
        // RATE_LIMITED before the input is even read.
        RATE_LIMIT_HOLD_PER_USER: "off",
        RATE_LIMIT_PAYMENT_PER_USER: "off",
      },
    });
  });

  after(async () => {
    await server?.stop();
  });

  for (const [dateIndex, protocol] of PROTOCOLS.entries()) {
    describe(`over ${protocol}`, () => {
      let fixture: Fixture;
      /** What the fixture looks like; refused writes must never change it. */
      let baseline: unknown;

      before(async () => {
        fixture = await buildFixture(server, protocol, dateIndex);
        baseline = await observe(fixture);
      });

      for (const row of ROWS) {
        it(`${row.rpc}: ${row.input} → ${Code[row.expected.code]} ${row.expected.reason}`, async () => {
          await expectRpcError(() => row.call(fixture), row.expected);
          if (row.writes) {
            const now = await observe(fixture);
            const expected = baseline;
            // A change fails this row only, not every later one.
            baseline = now;
            expect(now, "state after the refused request").to.deep.equal(expected);
          }
        });
      }

      it("still accepts the boundary values next to the refused ones", async () => {
        const f = fixture;
        const longUser = "😀".repeat(128);
        const issued = await f.anon.queue.issueQueueToken({
          concertId: server.concertId,
          userId: longUser,
        });
        expect(issued.token).to.match(/^sdq_/);
        const longRequestId = "r".repeat(128);
        const newcomer = clientFor(protocol, server.url, issued.token);
        const recharged = await newcomer.wallet.rechargeWallet({
          amount: MAX_RECHARGE,
          requestId: longRequestId,
        });
        expect(recharged.wallet?.balance).to.equal(MAX_RECHARGE);
        const seats = await f.anon.catalog.listAvailableSeats({
          concertDateId: f.dateId,
          pageSize: 5000,
        });
        expect(seats.seats.length).to.be.greaterThan(0);
        expect((await f.anon.catalog.listConcerts({ pageSize: 200 })).concerts).to.have.length(1);
        expect((await f.me.api.wallet.listLedgerEntries({ pageSize: 500 })).entries).to.have.length(
          1,
        );
        expect(
          (await f.me.api.reservation.listReservations({ pageSize: 100 })).reservations,
        ).to.have.length(2);
      });
    });
  }
});
