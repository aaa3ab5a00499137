import { randomBytes } from "node:crypto";
import { expect } from "chai";
import { TokenCodec } from "../../../server/src/modules/identity/token-codec.js";
import { TrustUserVerifier } from "../../../server/src/modules/identity/user-verifier.js";
import { MemoryQueueStore } from "../../../server/src/modules/queue/memory-queue-store.js";
import {
  type ConcertDirectory,
  QueueService,
} from "../../../server/src/modules/queue/queue.service.js";
import type { QueueLimits } from "../../../server/src/modules/queue/queue-store.js";
import { FakeClock } from "../../support/fake-clock.js";
import { expectRejectsDomain } from "../unit-helpers.js";
import { CONCERT, OTHER_CONCERT } from "./queue-fixture.js";

const LIMITS: QueueLimits = {
  maxActive: 1,
  admissionTtlMs: 60_000,
  idleMs: 3_600_000,
  graceMs: 600_000,
};
const HOUR = 3_600_000;
/** When the first concert's last date starts: after one admission ended, before the next. */
const SALE_ENDS_MS = 90_000;

/** A catalog whose concerts' last dates start at fixed times of the fake clock. */
class SaleCalendar implements ConcertDirectory {
  failing = false;
  constructor(
    private readonly clock: FakeClock,
    private readonly lastDateStarts: ReadonlyMap<string, number>,
  ) {}
  async concertExists(concertId: string): Promise<boolean> {
    return this.lastDateStarts.has(concertId);
  }
  async saleEnded(concertId: string): Promise<boolean> {
    if (this.failing) throw new Error("the catalog's database is down");
    const starts = this.lastDateStarts.get(concertId);
    return starts !== undefined && starts <= this.clock.ms();
  }
}

/**
 * The admitter's list holds only concerts still on sale: once a concert's
 * last date has started (as the catalog says), promoteAll retires its line
 * instead of promoting it, and the concert leaves the store's list.
 */
describe("QueueService.promoteAll and concerts whose sale ended", () => {
  function setup(directory?: (clock: FakeClock) => ConcertDirectory) {
    const clock = new FakeClock();
    const store = new MemoryQueueStore(LIMITS);
    const calendar = new SaleCalendar(
      clock,
      new Map([
        [CONCERT, clock.ms() + SALE_ENDS_MS],
        [OTHER_CONCERT, clock.ms() + 48 * HOUR],
      ]),
    );
    const queue = new QueueService(
      store,
      new TokenCodec(randomBytes(32)),
      new TrustUserVerifier(),
      directory?.(clock) ?? calendar,
      clock,
      LIMITS,
    );
    const issue = (userId: string, concertId = CONCERT) =>
      queue.issueToken({ concertId, userId, assertion: undefined });
    return { clock, store, calendar, queue, issue };
  }

  it("promotes a concert until its last date starts, then retires it and drops it from the list", async () => {
    const { clock, store, queue, issue } = setup();
    const ann = await issue("ann");
    const bob = await issue("bob");
    const cat = await issue("cat");
    await issue("dan", OTHER_CONCERT);
    const eve = await issue("eve", OTHER_CONCERT);
    const fay = await issue("fay", OTHER_CONCERT);
    expect(await store.concerts()).to.deep.equal([CONCERT, OTHER_CONCERT]);

    // On sale: ann's admission ends, bob is admitted.
    clock.advance(LIMITS.admissionTtlMs);
    expect(await queue.promoteAll()).to.equal(2);
    expect((await queue.authenticate(bob.token)).status.state).to.equal("admitted");

    // The last date starts: the line closes, the other concert goes on.
    clock.advance(SALE_ENDS_MS - LIMITS.admissionTtlMs);
    await queue.promoteAll();
    expect(await store.concerts()).to.deep.equal([OTHER_CONCERT]);
    await expectRejectsDomain(queue.authenticate(cat.token), "unauthenticated", "TOKEN_EXPIRED");
    // An admission still running ends on its own time, as any other.
    expect((await queue.authenticate(bob.token)).status.state).to.equal("admitted");
    expect(await queue.promoteAll()).to.equal(0);
    expect(await store.concerts()).to.deep.equal([OTHER_CONCERT]);

    // The other concert still admits.
    await queue.leave((await queue.authenticate(eve.token)).principal);
    expect((await queue.authenticate(fay.token)).status.state).to.equal("admitted");
    await expectRejectsDomain(queue.authenticate(ann.token), "unauthenticated", "TOKEN_EXPIRED");
  });

  it("keeps promoting while the catalog cannot say (its database is down)", async () => {
    const { clock, store, calendar, queue, issue } = setup();
    await issue("ann");
    const bob = await issue("bob");
    calendar.failing = true;
    clock.advance(SALE_ENDS_MS);
    expect(await queue.promoteAll()).to.equal(1);
    expect((await queue.authenticate(bob.token)).status.state).to.equal("admitted");
    expect(await store.concerts()).to.deep.equal([CONCERT]);

    calendar.failing = false;
    await queue.promoteAll();
    expect(await store.concerts()).to.deep.equal([]);
  });
});
