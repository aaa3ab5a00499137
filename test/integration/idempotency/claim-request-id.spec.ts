import { randomUUID } from "node:crypto";
import { expect } from "chai";
import {
  claimRequestId,
  type IdempotencyClaim,
  type IdempotentRequest,
} from "../../../server/src/modules/idempotency/index.js";
import { type Statement, TxConnection } from "../../../server/src/persistence/sql.js";
import { deferred } from "../../support/deferred.js";
import { expectDomainError, must, ServiceHarness } from "../reservations/service-harness.js";

describe("claimRequestId on PostgreSQL, across concurrent transactions", () => {
  let h: ServiceHarness;
  let users = 0;

  before(async () => {
    h = await ServiceHarness.start();
  });
  after(async () => {
    await h?.close();
  });

  function request(params: (string | bigint)[] = ["seat-1"]): IdempotentRequest {
    users += 1;
    return { userId: `claimer-${users}`, requestId: randomUUID(), operation: "hold", params };
  }

  /** Claims in a transaction of its own that commits, or rolls back when `then` throws. */
  function claimIn(
    req: IdempotentRequest,
    resultId: string,
    then: (claim: IdempotencyClaim) => Promise<void> = async () => {},
  ): Promise<IdempotencyClaim> {
    return h.orm.em.fork().transactional(async (em) => {
      const claim = await claimRequestId(await TxConnection.of(em), req, resultId, h.clock.now());
      await then(claim);
      return claim;
    });
  }

  async function storedResult(req: IdempotentRequest): Promise<string[]> {
    const rows = await h.sql<{ result_id: string }>(
      "select result_id from idempotency_key where user_id = $1 and request_id = $2",
      [req.userId, req.requestId],
    );
    return rows.map((row) => row.result_id);
  }

  it("makes a second claim of an id wait for the first, then replay its result", async () => {
    const req = request();
    const [firstId, secondId] = [randomUUID(), randomUUID()];
    const [claimed, hold] = [deferred(), deferred()];
    const first = claimIn(req, firstId, async () => {
      claimed.resolve();
      await hold.promise;
    });
    await claimed.promise;
    const second = claimIn(req, secondId);
    await h.untilAStatementWaitsForALock();
    hold.resolve();
    expect(await first).to.deep.equal({ kind: "claimed" });
    expect(await second).to.deep.equal({ kind: "replay", resultId: firstId });
    expect(await storedResult(req)).to.deep.equal([firstId]);
  });

  it("refuses a waiting claim of the id for other parameters once the first commits", async () => {
    const req = request(["seat-1"]);
    const firstId = randomUUID();
    const [claimed, hold] = [deferred(), deferred()];
    const first = claimIn(req, firstId, async () => {
      claimed.resolve();
      await hold.promise;
    });
    await claimed.promise;
    const second = claimIn({ ...req, params: ["seat-2"] }, randomUUID());
    await h.untilAStatementWaitsForALock();
    hold.resolve();
    expect(await first).to.deep.equal({ kind: "claimed" });
    const error = await expectDomainError(second, "invalid_argument", "REQUEST_ID_REUSED");
    expect(error.violations.map((v) => v.field)).to.deep.equal(["request_id"]);
    expect(await storedResult(req)).to.deep.equal([firstId]);
  });

  it("lets a waiting claim take the id when the first request fails and rolls back", async () => {
    const req = request();
    const [firstId, secondId] = [randomUUID(), randomUUID()];
    const [claimed, hold] = [deferred(), deferred()];
    const first = claimIn(req, firstId, async () => {
      claimed.resolve();
      await hold.promise;
      throw new Error("the first request failed after its claim");
    });
    await claimed.promise;
    const second = claimIn(req, secondId);
    await h.untilAStatementWaitsForALock();
    hold.resolve();
    let failure: unknown;
    await first.catch((error: unknown) => {
      failure = error;
    });
    expect(String(failure)).to.include("the first request failed");
    expect(await second).to.deep.equal({ kind: "claimed" });
    expect(await storedResult(req)).to.deep.equal([secondId]);
  });

  it("gives 30 simultaneous claims of one id one claim and 29 replays of its result", async () => {
    const req = request(["seat-9", 5n]);
    const resultIds = Array.from({ length: 30 }, () => randomUUID());
    const claims = await Promise.all(resultIds.map((resultId) => claimIn(req, resultId)));
    const claimed = claims.flatMap((claim, i) => (claim.kind === "claimed" ? [resultIds[i]] : []));
    expect(claimed).to.have.length(1);
    const winner = must(claimed[0]);
    expect(claims.filter((claim) => claim.kind === "replay")).to.deep.equal(
      Array.from({ length: 29 }, () => ({ kind: "replay", resultId: winner })),
    );
    expect(await storedResult(req)).to.deep.equal([winner]);
  });

  it("asks for a retry when the claim is pruned between its two statements", async () => {
    const req = request();
    await claimIn(req, randomUUID());
    const attempt = h.orm.em.fork().transactional(async (em) => {
      const tx = await TxConnection.of(em);
      // The retention job deletes the claim right after the INSERT found it.
      const pruning = {
        all: (statement: Statement<unknown>, values: readonly unknown[]) =>
          tx.all(statement, values),
        async one(statement: Statement<unknown>, values: readonly unknown[]) {
          const row = await tx.one(statement, values);
          if (statement.name === "idempotency_claim") {
            await h.sql("delete from idempotency_key where user_id = $1 and request_id = $2", [
              req.userId,
              req.requestId,
            ]);
          }
          return row;
        },
      } as unknown as TxConnection;
      return claimRequestId(pruning, req, randomUUID(), h.clock.now());
    });
    const error = await expectDomainError(attempt, "aborted", "CONCURRENT_UPDATE");
    expect(error.retryAfterMs).to.equal(100);
    // The retry then claims the id afresh.
    expect(await claimIn(req, randomUUID())).to.deep.equal({ kind: "claimed" });
  });
});
