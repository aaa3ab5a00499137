import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ReservationState, SeatState } from "@stagedoor/sdk";
import { expect } from "chai";
import { must } from "../rpc/rpc-kit.js";
import { clientFor } from "../support/clients.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const run = promisify(execFile);
const README = fileURLToPath(new URL("../../README.md", import.meta.url));

/** The README's "Try it" shell block, exactly as a new user copies it. */
async function tryItBlock(): Promise<string> {
  const readme = await readFile(README, "utf8");
  const section = must(readme.split(/^## /m).find((part) => part.startsWith("Try it\n")));
  return must(/```sh\n([\s\S]*?)```/.exec(section)?.[1], "the Try it shell block");
}

/** Runs the block with bash against `server` instead of localhost:8080. */
async function runBlock(block: string, server: TestServer): Promise<string> {
  const script = block.replaceAll("localhost:8080", new URL(server.url).host);
  const { stdout } = await run("bash", ["-e", "-o", "pipefail", "-c", script], {
    timeout: 90_000,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
  });
  return stdout;
}

/**
 * The JSON answers the block printed, in order: curl adds no newline, so
 * they may follow each other on one line.
 */
function answers(out: string): Record<string, unknown>[] {
  const found: Record<string, unknown>[] = [];
  let depth = 0;
  let start = 0;
  let inString = false;
  for (let i = 0; i < out.length; i++) {
    const c = out[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") {
      if (depth === 0) start = i;
      depth++;
    } else if (c === "}" && --depth === 0) {
      found.push(JSON.parse(out.slice(start, i + 1)) as Record<string, unknown>);
    }
  }
  return found;
}

describe("the README's Try it", function () {
  this.timeout(120_000);
  let server: TestServer;

  before(async () => {
    // A demo crowd ahead of kim, as on `npm start`, in a smaller room so the test waits little.
    server = await startTestServer({ env: { DEMO_CROWD: "3", QUEUE_MAX_ACTIVE: "2" } });
  });
  after(async () => {
    await server?.stop();
  });

  it("buys kim a seat on the first date, waiting behind the demo crowd, on any day", async () => {
    const block = await tryItBlock();
    // Dates appear in its comments only, as examples of answers.
    expect(block.replace(/#.*$/gm, ""), "no hard-coded date").to.not.match(/\d{4}-\d{2}-\d{2}/);
    const out = await runBlock(block, server);

    const json = answers(out);
    const anon = clientFor("connect", server.url);
    const { dates } = await anon.catalog.listConcertDates({ concertId: server.concertId });
    const first = must(dates[0]);
    expect(json[0]).to.deep.equal({ dates: dates.map((d) => d.date) });
    const hold = must(json[1]);
    expect(hold).to.include({ status: "Reserved", price: 150_000 });
    expect(json[2]).to.deep.equal({ userId: "kim", newBalance: 200_000 });
    expect(json[3]).to.include({ status: "Completed" });
    expect(json[4]).to.deep.equal({ userId: "kim", currentBalance: 50_000 });
    // Paying ended kim's admission.
    expect(json[5]).to.have.nested.property("status.state", "QUEUE_TOKEN_STATE_COMPLETED");

    // The server agrees: the first free seat of the first date is kim's and sold.
    const { seats } = await anon.catalog.listSeats({ concertDateId: first.id, pageSize: 100 });
    expect(seats.find((seat) => seat.number === 1)?.state).to.equal(SeatState.SOLD);
    const again = await anon.queue.issueQueueToken({ concertId: server.concertId, userId: "kim" });
    const { reservation } = await clientFor(
      "connect",
      server.url,
      again.token,
    ).reservation.getReservation({ reservationId: String(hold.reservationId) });
    expect(reservation?.state).to.equal(ReservationState.CONFIRMED);
    expect(reservation?.userId).to.equal("kim");
  });

  it("buys the next free seat when run again", async () => {
    const out = await runBlock(await tryItBlock(), server);
    const json = answers(out);
    expect(json[3]).to.include({ status: "Completed" });
    expect(json[4]).to.deep.equal({ userId: "kim", currentBalance: 100_000 });
    const anon = clientFor("connect", server.url);
    const { dates } = await anon.catalog.listConcertDates({ concertId: server.concertId });
    const { seats } = await anon.catalog.listSeats({
      concertDateId: must(dates[0]).id,
      pageSize: 100,
    });
    expect(
      seats.filter((seat) => seat.state === SeatState.SOLD).map((s) => s.number),
    ).to.deep.equal([1, 2]);
  });
});
