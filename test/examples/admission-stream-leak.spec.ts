import { expect } from "chai";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { runExample } from "./run-example.js";

/**
 * Why node-flow over gRPC sometimes never exits (and rush over HTTP/2 often):
 * when `waitForAdmission` stops reading the watch stream early (on the status
 * that says "admitted", or on the `admitted` message, before the stream's
 * end) and aborts it, connect-node skips the reset when the HTTP/2 stream is
 * already closed by the server, and nothing reads the rest: the stream never
 * emits "close", the session keeps counting it as open and stays ref'd, and
 * the process cannot exit (in a long-running service, one stream leaks per
 * admission). Reading the stream to its end, which the server sends right
 * after admitting, never leaks.
 */
describe("waitForAdmission over HTTP/2 (what node-flow and rush rely on to exit)", () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });

  after(async () => {
    await server?.stop();
  });

  it("leaves no watch stream open after admission", async () => {
    const run = await runExample(
      "admission-stream-probe",
      { STAGEDOOR_URL: server.url, PROBE_ROUNDS: "100" },
      { script: "test/examples/fixtures/admission-stream-probe.ts", timeoutMs: 30_000 },
    );
    expect(run.lines.at(-1), run.transcript).to.equal("no stream left open after 100 admissions");
    expect(run.exitCode, run.transcript).to.equal(0);
  });
});
