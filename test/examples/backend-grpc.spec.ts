import { QueueTokenState } from "@stagedoor/sdk";
import { expect } from "chai";
import pg from "pg";
import { clientFor } from "../support/clients.js";
import { freePort } from "../support/ports.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { type ExampleRun, runExample } from "./run-example.js";

/**
 * examples/backend-grpc: a plain @grpc/grpc-js caller on the repository's
 * protos, run as its own process against a real server.
 */
describe("examples/backend-grpc", () => {
  let server: TestServer;
  let run: ExampleRun;

  before(async () => {
    // One admission slot: the next user gets in at once only if the example gave its slot back.
    server = await startTestServer({ env: { QUEUE_MAX_ACTIVE: "1" } });
    run = await runExample("backend-grpc", { STAGEDOOR_URL: server.url });
  });

  after(async () => {
    await server?.stop();
  });

  it("exits 0 after listing the catalog with deadlines", () => {
    expect(run.exitCode, run.transcript).to.equal(0);
    expect(run.lines).to.include("health: SERVING");
    const dateLines = run.lines.filter((line) => /^ {2}date \d{4}-\d\d-\d\d: /.test(line));
    expect(dateLines, run.transcript).to.have.length(3);
    for (const line of dateLines) expect(line).to.match(/: 50\/50 seats available$/);
    expect(run.lines.at(-1)).to.equal("done");
  });

  it("calls authenticated RPCs with the bearer token, and the recharge really happened", async () => {
    const issued = run.stdout.match(/^queue token issued for (\S+): QUEUE_TOKEN_STATE_ADMITTED/m);
    expect(issued, run.transcript).to.not.equal(null);
    const userId = String(issued?.[1]);
    expect(run.lines).to.include(`GetWallet as ${userId}: balance 50000 (version 1)`);

    const db = new pg.Client({ connectionString: server.databaseUrl });
    await db.connect();
    try {
      const wallet = await db.query<{ balance: string }>(
        "select balance::text from wallet where user_id = $1",
        [userId],
      );
      expect(wallet.rows).to.deep.equal([{ balance: "50000" }]);
      const ledger = await db.query<{ kind: string; amount: string }>(
        "select kind, amount::text from ledger_entry where user_id = $1",
        [userId],
      );
      expect(ledger.rows).to.deep.equal([{ kind: "RECHARGE", amount: "50000" }]);
    } finally {
      await db.end();
    }
  });

  it("prints the status code name and the decoded google.rpc details of failed calls", () => {
    const text = run.stdout;
    expect(text).to.match(
      /expected failure: GetWallet without a token -> UNAUTHENTICATED .*\n {2}ErrorInfo reason=TOKEN_MISSING domain=stagedoor\.dev\n/,
    );
    expect(text).to.match(
      /expected failure: RechargeWallet with amount 0 -> INVALID_ARGUMENT .*\n {2}ErrorInfo reason=INVALID_ARGUMENT domain=stagedoor\.dev\n {2}BadRequest field=amount: /,
    );
    expect(text).to.match(
      /expected failure: HoldSeat on unknown seat [0-9a-f-]{36} -> NOT_FOUND .*\n {2}ErrorInfo reason=SEAT_NOT_FOUND domain=stagedoor\.dev\n/,
    );
  });

  it("shows a streaming call cut off by its deadline", () => {
    const at = run.lines.indexOf("Health.Watch with a 1000 ms deadline:");
    expect(at, run.transcript).to.be.greaterThan(-1);
    expect(run.lines[at + 1]).to.equal("  update: SERVING");
    expect(run.lines[at + 2]).to.match(/^ {2}ended: DEADLINE_EXCEEDED /);
  });

  it("leaves the queue, so its admission slot goes back at once", async () => {
    const left = run.stdout.match(/^left the queue as (\S+)$/m);
    expect(left, run.transcript).to.not.equal(null);
    const next = await clientFor("connect", server.url).queue.issueQueueToken({
      concertId: server.concertId,
      userId: "after-backend-grpc",
    });
    expect(next.status?.state).to.equal(QueueTokenState.ADMITTED);
  });

  it("fails with exit code 1 and UNAVAILABLE when no server listens", async () => {
    const port = await freePort();
    const failed = await runExample("backend-grpc", { STAGEDOOR_URL: `http://127.0.0.1:${port}` });
    expect(failed.exitCode, failed.transcript).to.equal(1);
    expect(failed.stdout).to.match(/^unexpected failure -> UNAVAILABLE /m);
  });
});
