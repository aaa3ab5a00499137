import { expect } from "chai";
import pg from "pg";
import { createLogger } from "../../../server/src/logger.js";
import type { SeatChange, SeatGate } from "../../../server/src/modules/queue/index.js";
import { SeatGateWriter } from "../../../server/src/modules/queue/index.js";
import { ReservationsService } from "../../../server/src/modules/reservations/reservations.service.js";
import type { Database } from "../../../server/src/persistence/database.js";
import {
  type Caller,
  type DemoSeat,
  expectDomainError,
  must,
  ServiceHarness,
} from "./service-harness.js";

const HOLD_TTL_MS = 300_000;

/**
 * The seat gate on the hold path, over PostgreSQL and the in-process store:
 * what it refuses without a transaction, what it leaves to the database, and
 * that it can only ever err toward asking the database.
 */
describe("Seat holds through the seat gate", () => {
  let h: ServiceHarness;
  let requests = 0;

  before(async () => {
    h = await ServiceHarness.start();
  });
  after(async () => {
    await h?.close();
  });

  function requestId(): string {
    requests += 1;
    return `gate-req-${requests}`;
  }

  function admit(label: string): Promise<Caller> {
    return h.admit(h.user(label));
  }

  /** A Database that counts the EntityManagers (so the transactions) it hands out. */
  function countingDatabase(): Database & { forks: number } {
    const counting = {
      forks: 0,
      fork() {
        counting.forks += 1;
        return h.orm.em.fork();
      },
    };
    return counting;
  }

  /** A ReservationsService like the harness's, over other collaborators. */
  function reservationsWith(options: { db?: Database; gate?: SeatGate } = {}): ReservationsService {
    const gate = options.gate ?? h.store.seats;
    return new ReservationsService(
      options.db ?? h.orm.em,
      h.services.catalog,
      gate,
      new SeatGateWriter(gate, h.clock, createLogger("silent")),
      h.clock,
      HOLD_TTL_MS,
    );
  }

  function hold(caller: Caller, seat: DemoSeat, service = h.services.reservations, id?: string) {
    return service.hold(caller.principal, { seatId: seat.id, requestId: id ?? requestId() });
  }

  async function seatVersion(seatId: string): Promise<number> {
    const [row] = await h.sql<{ version: number }>("select version from seat where id = $1", [
      seatId,
    ]);
    return must(row).version;
  }

  it("tells the gate about a hold before the caller hears of it", async () => {
    const seat = h.takeSeat();
    const owner = await admit("owner");
    const view = await hold(owner, seat);
    expect(await h.store.seats.peek(h.gateDateOf(seat), seat.id)).to.deep.equal({
      seatVersion: await seatVersion(seat.id),
      state: "held",
      heldUntil: view.reservation.heldUntil.getTime(),
      owner: owner.principal.userId,
    });
  });

  it("refuses a seat the gate knows is held by someone else without any transaction", async () => {
    const seat = h.takeSeat();
    await hold(await admit("owner"), seat);
    const db = countingDatabase();
    await expectDomainError(
      hold(await admit("rival"), seat, reservationsWith({ db })),
      "failed_precondition",
      "SEAT_UNAVAILABLE",
    );
    expect(db.forks).to.equal(0);
  });

  it("sends a seat the gate does not know to the database, which fills the gate for the next rival", async () => {
    const seat = h.takeSeat();
    const owner = await admit("owner");
    // Held through another instance whose gate this one does not share.
    const other = h.graph({});
    await other.reservations.hold(
      (await h.admit(owner.principal.userId, { services: other })).principal,
      { seatId: seat.id, requestId: requestId() },
    );
    expect(await h.store.seats.peek(h.gateDateOf(seat), seat.id)).to.equal(null);

    const first = countingDatabase();
    await expectDomainError(
      hold(await admit("rival"), seat, reservationsWith({ db: first })),
      "failed_precondition",
      "SEAT_UNAVAILABLE",
    );
    expect(first.forks).to.equal(1);
    const filled = must(await h.store.seats.peek(h.gateDateOf(seat), seat.id));
    expect({ state: filled.state, owner: filled.owner }).to.deep.equal({
      state: "held",
      owner: owner.principal.userId,
    });

    const second = countingDatabase();
    await expectDomainError(
      hold(await admit("rival"), seat, reservationsWith({ db: second })),
      "failed_precondition",
      "SEAT_UNAVAILABLE",
    );
    expect(second.forks).to.equal(0);
  });

  it("lets the owner's retry with the same request id through to be replayed", async () => {
    const seat = h.takeSeat();
    const owner = await admit("owner");
    const id = requestId();
    const first = await hold(owner, seat, h.services.reservations, id);
    const again = await hold(owner, seat, h.services.reservations, id);
    expect(again.reservation.id).to.equal(first.reservation.id);
    expect(again.state).to.equal("HELD");
  });

  it("sends attempts to the database once a hold's time has passed, with no event", async () => {
    const seat = h.takeSeat();
    await hold(await admit("owner"), seat);
    h.clock.advance(HOLD_TTL_MS);
    const rival = await admit("rival");
    const db = countingDatabase();
    const won = await hold(rival, seat, reservationsWith({ db }));
    expect(db.forks).to.equal(1);
    expect(won.reservation.userId).to.equal(rival.principal.userId);
    expect(must(await h.store.seats.peek(h.gateDateOf(seat), seat.id)).owner).to.equal(
      rival.principal.userId,
    );
  });

  it("refuses a fan who already holds a seat before taking the next seat's row lock", async () => {
    const [first, hot] = [h.takeSeat(), h.takeSeat()];
    const fan = await admit("fan");
    await hold(fan, first);
    // Someone's transaction sits on the hot seat's row lock.
    const client = new pg.Client({ connectionString: h.database.url });
    await client.connect();
    try {
      await client.query("begin");
      await client.query("select id from seat where id = $1 for update", [hot.id]);
      // Checked before the lock: the fan learns the real reason, and never
      // took the hot seat's lock (SKIP LOCKED would have said SEAT_UNAVAILABLE).
      await expectDomainError(hold(fan, hot), "failed_precondition", "HOLD_LIMIT_REACHED");
      // A fan without a hold does reach the lock, and fails at once.
      await expectDomainError(
        hold(await admit("newcomer"), hot),
        "failed_precondition",
        "SEAT_UNAVAILABLE",
      );
      await client.query("rollback");
    } finally {
      await client.end();
    }
    const newcomer = await admit("newcomer");
    expect((await hold(newcomer, hot)).reservation.userId).to.equal(newcomer.principal.userId);
  });

  it("shows a release in the gate at once", async () => {
    const seat = h.takeSeat();
    const owner = await admit("owner");
    const view = await hold(owner, seat);
    await h.services.reservations.release(owner.principal, {
      reservationId: view.reservation.id,
      requestId: requestId(),
    });
    expect(await h.store.seats.peek(h.gateDateOf(seat), seat.id)).to.deep.equal({
      seatVersion: await seatVersion(seat.id),
      state: "free",
      heldUntil: 0,
      owner: "",
    });
    const rival = await admit("rival");
    expect((await hold(rival, seat)).reservation.userId).to.equal(rival.principal.userId);
  });

  it("never keeps refusing a released seat, even when the release's own gate write is lost", async () => {
    const seat = h.takeSeat();
    const owner = await admit("owner");
    const view = await hold(owner, seat);
    // The process dies between the release's commit and its gate write.
    const dropped: SeatChange[] = [];
    const losing: SeatGate = {
      peek: (dateId, seatId) => h.store.seats.peek(dateId, seatId),
      invalidate: (dateId, seatId, version) => h.store.seats.invalidate(dateId, seatId, version),
      changesSince: (queries) => h.store.seats.changesSince(queries),
      record: async (_dateId, change) => {
        dropped.push(change);
      },
    };
    await reservationsWith({ gate: losing }).release(owner.principal, {
      reservationId: view.reservation.id,
      requestId: requestId(),
    });
    expect(dropped.map((change) => change.state)).to.deep.equal(["free"]);
    expect(must(await h.store.seats.peek(h.gateDateOf(seat), seat.id)).state).to.equal("unknown");
    const rival = await admit("rival");
    expect((await hold(rival, seat)).reservation.userId).to.equal(rival.principal.userId);
  });

  it("never lists a seat once its hold was answered, and lists it again once released", async () => {
    const seat = h.takeSeat();
    const listed = async () =>
      (await h.services.catalog.availability(seat.concertDateId)).blocks.flatMap(
        (block) => block.numbers,
      );
    expect(await listed()).to.include(seat.number);
    const owner = await admit("owner");
    const view = await hold(owner, seat);
    expect(await listed()).to.not.include(seat.number);
    await h.services.reservations.release(owner.principal, {
      reservationId: view.reservation.id,
      requestId: requestId(),
    });
    expect(await listed()).to.include(seat.number);
  });
});
