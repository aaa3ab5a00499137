import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { QueueTokenState, SeatState } from "@stagedoor/sdk";
import { expect } from "chai";
import { type BrowserContext, chromium } from "playwright-core";
import { must, newRequestId, pollUntil, uniqueUser } from "../rpc/rpc-kit.js";
import { clientFor } from "../support/clients.js";
import { BAD_CSV, csvSeats } from "../support/seat-maps.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { BoxOfficeDriver, CSP_RECORDER } from "./box-office-driver.js";
import { buildWeb, CHROMIUM, CHROMIUM_ARGS } from "./browser.js";

const KEY = randomBytes(24).toString("base64url");
const DAY_MS = 86_400_000;
const SUITE = "the operator console (/admin) in a real browser";

/** A file for the page's file input. */
function seatMapFile(name: string, text: string) {
  return {
    name,
    mimeType: name.endsWith(".json") ? "application/json" : "text/csv",
    buffer: Buffer.from(text),
  };
}

if (CHROMIUM === undefined) {
  if (process.env.E2E_REQUIRED === "1") {
    throw new Error("the browser tests need Chromium (apt-get install chromium, or CHROMIUM_PATH)");
  }
  describe(SUITE, () => {
    console.log(
      "    (browser tests not run: no Chromium found; apt-get install chromium, or set CHROMIUM_PATH)",
    );
  });
} else
  describe(SUITE, function () {
    this.timeout(90_000);

    let webDir: string;
    let profileDir: string;
    let screenshots: string;
    let context: BrowserContext;
    let server: TestServer;
    const drivers: BoxOfficeDriver[] = [];

    before(async () => {
      webDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-e2e-admin-web-"));
      await buildWeb(webDir);
      screenshots =
        process.env.E2E_SCREENSHOTS_DIR ||
        path.join(os.tmpdir(), `stagedoor-e2e-screenshots-${Date.now()}`);
      await mkdir(screenshots, { recursive: true });
      console.log(`      console screenshots: ${screenshots}`);
      server = await startTestServer({
        env: {
          WEB_DIR: webDir,
          SHUTDOWN_TIMEOUT_MS: "250",
          ADMIN_API_KEYS: `ops:${createHash("sha256").update(KEY).digest("hex")}`,
        },
      });
      profileDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-e2e-admin-profile-"));
      context = await chromium.launchPersistentContext(profileDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        viewport: { width: 1280, height: 900 },
        // The performance's start is typed in the browser's local time: Seoul, like the venue.
        timezoneId: "Asia/Seoul",
      });
      context.setDefaultTimeout(10_000);
      await context.addInitScript({ content: CSP_RECORDER });
    });

    after(async () => {
      await context?.close();
      if (profileDir) await rm(profileDir, { recursive: true, force: true });
      await server?.stop();
      if (webDir) await rm(webDir, { recursive: true, force: true });
    });

    afterEach(async function () {
      for (const driver of drivers.splice(0)) {
        if (this.currentTest?.state === "failed") {
          await driver.screenshot("FAILED").catch(() => undefined);
        }
        await driver.page.close();
      }
    });

    async function openConsole(prefix: string): Promise<BoxOfficeDriver> {
      const page = await context.newPage();
      const driver = new BoxOfficeDriver(page, server.url, screenshots, prefix);
      drivers.push(driver);
      await page.goto(`${server.url}/admin`);
      return driver;
    }

    async function signIn(driver: BoxOfficeDriver, key: string): Promise<void> {
      await driver.page.getByLabel("Operator API key").fill(key);
      await driver.page.getByRole("button", { name: "Use this key" }).click();
    }

    it("is its own page and bundle: served at /admin with the CSP, absent from the fans' bundle", async () => {
      const served = await fetch(`${server.url}/admin`);
      expect(served.status).to.equal(200);
      expect(served.headers.get("content-security-policy")).to.include("script-src 'self'");
      const html = await served.text();
      expect(html).to.match(/src="\.\/admin-[A-Z0-9]{8}\.js"/);
      expect(html).to.not.match(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(html).to.not.match(/<style|\sstyle=/);
      const files = await readdir(webDir);
      const app = must(files.find((name) => /^app-[A-Z0-9]{8}\.js$/.test(name)));
      const admin = must(files.find((name) => /^admin-[A-Z0-9]{8}\.js$/.test(name)));
      expect(await readFile(path.join(webDir, app), "utf8")).to.not.include("operator console");
      expect(await readFile(path.join(webDir, admin), "utf8")).to.include("operator console");
    });

    it("creates a concert and a performance, shows a bad seat map's rows, imports a good one, pauses, resumes and opens the sale, follows the figures and refunds a ticket, with no console error", async () => {
      const ops = (await openConsole("admin-flow")).strict();
      const { page } = ops;
      await signIn(ops, KEY);
      // The key lives in this tab's sessionStorage only.
      expect(await page.evaluate("sessionStorage.getItem('stagedoor.adminKey')")).to.equal(KEY);
      expect(await page.evaluate("localStorage.length")).to.equal(0);

      const title = `Console Live ${randomBytes(3).toString("hex")}`;
      await page.getByLabel("Title").fill(title);
      await page.getByLabel("Venue").fill("Jamsil Arena");
      await page.getByLabel("Time zone (IANA)").fill("Asia/Seoul");
      await page.getByRole("button", { name: "Create concert" }).click();
      await ops.waitForText("console-done", `Created the concert "${title}".`);
      const concertId = must(await page.getByTestId("concert-id").textContent());
      expect(await page.getByTestId("concert-select").inputValue()).to.equal(concertId);
      const fans = clientFor("connect", server.url);
      const { concerts } = await fans.catalog.listConcerts({ pageSize: 100 });
      expect(concerts.find((c) => c.id === concertId)?.title).to.equal(title);

      // 19:00 in Seoul (the browser's zone), 20 days ahead.
      const day = new Date(Date.now() + 20 * DAY_MS).toISOString().slice(0, 10);
      await page.getByLabel("Starts at (your browser's local time)").fill(`${day}T19:00`);
      await page.getByRole("button", { name: "Add performance" }).click();
      await page
        .getByTestId("console-done")
        .getByText(`Added the performance of ${day}.`)
        .waitFor();
      const performanceId = await page.getByTestId("performance-id").inputValue();
      expect(performanceId).to.match(/^[0-9a-f-]{36}$/);
      await ops.screenshot("01-performance");

      // A bad file: every bad row listed with its line, and nothing to import.
      const fileInput = page.getByTestId("seatmap-file");
      await fileInput.setInputFiles(seatMapFile("hall.csv", BAD_CSV));
      await page.getByRole("button", { name: "Check file" }).click();
      await page.locator('[data-testid="seatmap-summary"][data-problems="2"]').waitFor();
      const rows = page.locator('[data-testid="seatmap-problems"] tbody tr');
      expect(
        await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-line"))),
      ).to.deep.equal(["3", "4"]);
      expect(await rows.nth(0).textContent()).to.include("number");
      expect(await rows.nth(1).textContent()).to.include("price");
      expect(await page.getByRole("button", { name: "Import seats" }).isDisabled()).to.equal(true);
      await ops.screenshot("02-bad-seat-map");
      expect(
        (await fans.catalog.listSeats({ concertDateId: performanceId })).seats,
        "nothing written",
      ).to.deep.equal([]);

      // The fixed file: checked clean, then imported; fans see the date at once.
      await fileInput.setInputFiles(seatMapFile("hall.csv", csvSeats(12)));
      await page.getByRole("button", { name: "Check file" }).click();
      await ops.waitForText(
        "seatmap-summary",
        "hall.csv: 12 seats, no problems. Nothing was written yet.",
      );
      await page.getByRole("button", { name: "Import 12 seats" }).click();
      await ops.waitForText(
        "console-done",
        "Imported 12 seats: the performance is on sale to fans.",
      );
      const { dates } = await fans.catalog.listConcertDates({ concertId });
      expect(dates.map((d) => [d.id, d.date, d.totalSeatCount])).to.deep.equal([
        [performanceId, day, 12],
      ]);

      // The emergency brake: a fan who comes while admission is paused waits,
      // and is admitted once it resumes.
      await ops.waitForText("sale-state", "No scheduled opening. Admission running.");
      await page.getByLabel("Why pause (kept in the audit trail)").fill("payment provider down");
      await page.getByRole("button", { name: "Pause admission" }).click();
      await ops.waitForText("sale-state", "No scheduled opening. Admission paused.");
      const { token, status } = await fans.queue.issueQueueToken({
        concertId,
        userId: uniqueUser("console-fan"),
      });
      expect(status?.state, "waiting while paused").to.equal(QueueTokenState.WAITING);
      await ops.screenshot("03-paused");
      await page.getByRole("button", { name: "Resume admission" }).click();
      await ops.waitForText("sale-state", "No scheduled opening. Admission running.");
      const fan = clientFor("connect", server.url, token);
      await pollUntil(
        async () => (await fan.queue.getQueueStatus({})).status?.state === QueueTokenState.ADMITTED,
        15_000,
        "the waiting fan admitted after the resume",
      );
      await page.getByRole("button", { name: "Open the sale now" }).click();
      await ops.waitForText("console-done", "The sale is open.");
      expect(await page.getByTestId("sale-state").textContent()).to.match(
        /^Opens at .+\. Admission running\.$/,
      );

      // Live figures, read again every few seconds: the fan buys seat 1 meanwhile.
      await ops.waitForText("stat-total", "12");
      await ops.waitForText("stat-sold", "0");
      const { seats } = await fans.catalog.listSeats({ concertDateId: performanceId });
      const seat = must(seats.find((s) => s.number === 1));
      await fan.wallet.rechargeWallet({ amount: 200_000n, requestId: newRequestId() });
      const { reservation } = await fan.reservation.holdSeat({
        seatId: seat.id,
        requestId: newRequestId(),
      });
      const reservationId = must(reservation).id;
      await fan.payment.createPayment({
        reservationId,
        amount: seat.price,
        requestId: newRequestId(),
      });
      await ops.waitForText("stat-sold", "1", 15_000);
      await ops.waitForText("stat-revenue", "₩150,000");
      await ops.screenshot("04-figures");

      await page.getByLabel("Reservation id").fill(reservationId);
      await page.getByLabel("Reason (kept in the audit trail)").fill("double booking by phone");
      await page.getByRole("button", { name: "Refund" }).click();
      await page
        .getByTestId("console-done")
        .getByText("Refunded ₩150,000 to console-fan-")
        .waitFor();
      expect((await fan.wallet.getWallet({})).wallet?.balance).to.equal(200_000n);
      expect((await fans.catalog.getSeat({ seatId: seat.id })).seat?.state).to.equal(
        SeatState.AVAILABLE,
      );
      await ops.waitForText("stat-refunds", "1 (₩150,000)", 15_000);
      await ops.waitForText("stat-sold", "0");
      await ops.screenshot("05-refunded");
      await ops.expectNoProblems();
    });

    it("shows the server's reason for a refused action, and forgets a refused key", async () => {
      const ops = await openConsole("admin-errors");
      const { page } = ops;
      await signIn(ops, KEY);
      await page.getByTestId("stat-total").waitFor();
      await page.getByLabel("Reservation id").fill("not-a-reservation");
      await page.getByLabel("Reason (kept in the audit trail)").fill("test");
      await page.getByRole("button", { name: "Refund" }).click();
      await page.getByTestId("console-alert").getByText("INVALID_ARGUMENT:").waitFor();
      expect(await page.getByTestId("console-alert").textContent()).to.include("reservation_id");

      await page.getByRole("button", { name: "Forget the key" }).click();
      expect(await page.evaluate("sessionStorage.getItem('stagedoor.adminKey')")).to.equal(null);
      await signIn(ops, "not-the-key");
      await ops.waitForText(
        "console-alert",
        "The key was refused (ADMIN_KEY_INVALID). Enter a valid operator API key.",
      );
      await page.getByLabel("Operator API key").waitFor();
      expect(await page.evaluate("sessionStorage.getItem('stagedoor.adminKey')")).to.equal(null);
      await ops.expectNoProblems();
    });
  });
