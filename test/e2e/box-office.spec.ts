import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  LedgerEntryKind,
  QueueTokenState,
  ReservationState,
  SeatState,
  type StagedoorClient,
} from "@stagedoor/sdk";
import { expect } from "chai";
import { type BrowserContext, chromium } from "playwright-core";
import { MESSAGES } from "../../examples/web/src/i18n.js";
import { must, newRequestId, uniqueUser } from "../rpc/rpc-kit.js";
import { clientFor } from "../support/clients.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { BoxOfficeDriver, CSP_RECORDER } from "./box-office-driver.js";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const BUILD_SCRIPT = path.join(repoRoot, "examples", "web", "build.mjs");
/**
 * Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it), or
 * CHROMIUM_PATH. playwright-core never downloads a browser of its own.
 */
const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (candidate): candidate is string =>
    candidate !== undefined && candidate !== "" && existsSync(candidate),
);
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const MOBILE = { width: 375, height: 740 };
const DESKTOP = { width: 1280, height: 900 };

/** The n-th bookable date of the demo concert and its seats by number, read through the API. */
async function dateSeats(client: StagedoorClient, concertId: string, index: number) {
  const { dates } = await client.catalog.listConcertDates({ concertId });
  const date = must(dates[index], `date #${index}`);
  const { seats } = await client.catalog.listSeats({ concertDateId: date.id, pageSize: 500 });
  return { date, seats: new Map(seats.map((seat) => [seat.number, seat])) };
}

/** The bundle's content-hashed name in a built folder (`app-<hash>.js`). */
async function appFile(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((name) => /^app-[A-Z0-9]{8}\.js$/.test(name));
  expect(names, "one content-hashed app bundle").to.have.length(1);
  return must(names[0]);
}

const SUITE = "the web box office in a real browser";

if (CHROMIUM === undefined) {
  // CI sets E2E_REQUIRED=1, so a missing browser fails the run there; on a
  // developer's machine the suite says why it did not run.
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
    this.timeout(60_000);

    let webDir: string;
    let profileDir: string;
    let screenshots: string;
    let context: BrowserContext;
    // One server per behaviour that needs its own settings.
    let main: TestServer;
    let shortHolds: TestServer;
    let oneAtATime: TestServer;
    const drivers: BoxOfficeDriver[] = [];

    before(async () => {
      webDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-e2e-web-"));
      // The real build script, into a folder of this run's own.
      await run(process.execPath, [BUILD_SCRIPT, "--outdir", webDir], { cwd: repoRoot });
      screenshots =
        process.env.E2E_SCREENSHOTS_DIR ||
        path.join(os.tmpdir(), `stagedoor-e2e-screenshots-${Date.now()}`);
      await mkdir(screenshots, { recursive: true });
      console.log(`      box office screenshots: ${screenshots}`);

      const common = { WEB_DIR: webDir, SHUTDOWN_TIMEOUT_MS: "250" };
      // Each is kept as soon as it is up, so `after` stops it even if another failed to start.
      await Promise.all([
        startTestServer({ env: common }).then((server) => {
          main = server;
        }),
        startTestServer({ env: { ...common, HOLD_TTL_SECONDS: "5" } }).then((server) => {
          shortHolds = server;
        }),
        startTestServer({ env: { ...common, QUEUE_MAX_ACTIVE: "1" } }).then((server) => {
          oneAtATime = server;
        }),
      ]);

      profileDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-e2e-profile-"));
      context = await chromium.launchPersistentContext(profileDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        viewport: DESKTOP,
      });
      context.setDefaultTimeout(10_000);
      await context.addInitScript({ content: CSP_RECORDER });
    });

    after(async () => {
      await context?.close();
      if (profileDir) await rm(profileDir, { recursive: true, force: true });
      await Promise.all([main?.stop(), shortHolds?.stop(), oneAtATime?.stop()]);
      if (webDir) await rm(webDir, { recursive: true, force: true });
    });

    afterEach(async function () {
      for (const driver of drivers.splice(0)) {
        // What the page showed when a test failed is the first thing to look at.
        if (this.currentTest?.state === "failed") {
          await driver.screenshot("FAILED").catch(() => undefined);
        }
        await driver.page.close();
      }
    });

    async function openPage(server: TestServer, prefix: string, viewport = DESKTOP) {
      const page = await context.newPage();
      await page.setViewportSize(viewport);
      const driver = new BoxOfficeDriver(page, server.url, screenshots, prefix);
      drivers.push(driver);
      return driver;
    }

    it("builds a bundle with no Node built-ins and a page with no inline script or style", async () => {
      const bundle = await readFile(path.join(webDir, await appFile(webDir)), "utf8");
      expect(bundle).to.not.match(/["']node:/);
      expect(bundle).to.not.match(/\brequire\(/);
      const html = await readFile(path.join(webDir, "index.html"), "utf8");
      expect(html).to.not.match(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(html).to.not.match(/<style|\sstyle=/);
      const served = await fetch(`${main.url}/`);
      expect(served.headers.get("content-security-policy")).to.include("script-src 'self'");
    });

    it("sells a seat from join to ticket: the seat is sold and the balance drops by its price", async () => {
      const fan = await openPage(main, "a-purchase");
      await fan.open("ko");
      await fan.page.getByTestId("concert-title").waitFor();
      await fan.screenshot("01-join");
      const userId = uniqueUser("fan-a");
      await fan.join(userId);

      // The line is empty, so the fan is admitted at once.
      await fan.expectScreen("admitted");
      await fan.expectHeading("admittedHeading");
      expect(await fan.page.getByTestId("admission-countdown").textContent()).to.match(/\d+:\d\d/);
      await fan.screenshot("02-admitted");
      await fan.button("chooseDate").click();

      await fan.expectScreen("dates");
      const dateButtons = fan.page.getByTestId("date-choice");
      await dateButtons.first().waitFor();
      expect(await dateButtons.count()).to.equal(3);
      await fan.screenshot("03-dates");
      const { date } = await dateSeats(clientFor("connect", main.url), main.concertId, 0);
      await fan.page.locator(`[data-testid="date-choice"][data-date="${date.date}"]`).click();

      await fan.expectScreen("seat-map");
      await fan.waitForSeatState(1, "available");
      expect(await fan.page.getByTestId("seat").count()).to.equal(50);
      const label = await fan.seat(1).getAttribute("aria-label");
      expect(label)
        .to.include("VIP")
        .and.include("₩150,000")
        .and.include(MESSAGES.ko.stateAvailable);
      await fan.screenshot("04-seat-map");
      await fan.seat(1).click();

      await fan.expectScreen("hold");
      await fan.expectHeading("holdHeading", { number: 1 });
      expect(await fan.page.getByTestId("hold-countdown").textContent()).to.match(/\d+:\d\d/);
      await fan.screenshot("05-hold");
      await fan.button("continueToWallet").click();

      await fan.expectScreen("wallet");
      await fan.waitForText("wallet-balance", "₩0");
      await fan.screenshot("06-wallet");
      await fan.page.locator('[data-testid="top-up-preset"][data-amount="200000"]').click();
      await fan.page.locator('[data-testid="notice-status"][data-key="toppedUp"]').waitFor();
      await fan.waitForText("wallet-balance", "₩200,000");
      await fan.button("goToPay").click();

      await fan.expectScreen("pay");
      await fan.page.getByTestId("pay-balance").getByText("₩200,000").waitFor();
      await fan.screenshot("07-pay");
      await fan.page.getByTestId("pay-button").click();

      await fan.expectScreen("ticket");
      await fan.expectHeading("ticketHeading");
      const ticket = await fan.page.getByTestId("ticket").textContent();
      expect(ticket).to.include(MESSAGES.ko.ticketConfirmed);
      expect(ticket).to.include(fan.text("seatName", { number: 1 }));
      expect(ticket).to.include("₩150,000");
      const reservationId = must(
        await fan.page.getByTestId("ticket-reservation-id").textContent(),
        "reservation id",
      );
      await fan.screenshot("08-ticket");

      // The server agrees: the seat is sold to this fan and the wallet paid exactly the price.
      const asFan = clientFor("connect", main.url, await fan.token());
      const { reservation } = await asFan.reservation.getReservation({ reservationId });
      expect(reservation?.state).to.equal(ReservationState.CONFIRMED);
      expect(reservation?.seatNumber).to.equal(1);
      expect(reservation?.userId).to.equal(userId);
      const { seats } = await dateSeats(clientFor("connect", main.url), main.concertId, 0);
      expect(seats.get(1)?.state).to.equal(SeatState.SOLD);
      const { wallet } = await asFan.wallet.getWallet({});
      expect(wallet?.balance).to.equal(50_000n);
      const { entries } = await asFan.wallet.listLedgerEntries({});
      expect(entries.map((e) => [e.kind, e.amount])).to.deep.equal([
        [LedgerEntryKind.PAYMENT, -150_000n],
        [LedgerEntryKind.RECHARGE, 200_000n],
      ]);
      await fan.expectNoProblems();
    });

    it("tells the fan someone just took the seat and shows it held on the refreshed map", async () => {
      const fan = await openPage(main, "b-seat-taken");
      await fan.open("en");
      await fan.join(uniqueUser("fan-b"));
      await fan.expectScreen("admitted");
      await fan.button("chooseDate").click();
      const api = clientFor("connect", main.url);
      const { date, seats } = await dateSeats(api, main.concertId, 1);
      await fan.page.locator(`[data-testid="date-choice"][data-date="${date.date}"]`).click();
      await fan.expectScreen("seat-map");
      await fan.waitForSeatState(12, "available");

      // Someone else holds seat 12 while the fan's map still shows it free.
      await fan.holdBackSeatReads();
      try {
        const other = await api.queue.issueQueueToken({
          concertId: main.concertId,
          userId: uniqueUser("other-b"),
        });
        await clientFor("connect", main.url, other.token).reservation.holdSeat({
          seatId: must(seats.get(12)).id,
          requestId: newRequestId(),
        });
        expect(await fan.seat(12).getAttribute("data-state")).to.equal("available");
        await fan.seat(12).click();
        await fan.expectAlert("errSeatTaken");
      } finally {
        await fan.releaseSeatReads();
      }
      await fan.waitForSeatState(12, "held");
      expect(await fan.seat(12).getAttribute("aria-label")).to.include(MESSAGES.en.stateHeld);
      expect(await fan.seat(12).textContent()).to.include(MESSAGES.en.stateHeld);
      await fan.screenshot("01-seat-taken");

      // The fan picks the next seat instead, then gives it back.
      await fan.seat(13).click();
      await fan.expectScreen("hold");
      await fan.expectHeading("holdHeading", { number: 13 });
      await fan.button("releaseSeat").click();
      await fan.expectScreen("seat-map");
      await fan.page.locator('[data-testid="notice-status"][data-key="released"]').waitFor();
      await fan.waitForSeatState(13, "available");

      // A reload keeps the fan's place and finds their hold again (ListReservations).
      await fan.seat(14).click();
      await fan.expectScreen("hold");
      await fan.page.reload();
      await fan.page.locator('section[data-screen="admitted"]').waitFor();
      await fan.button("chooseDate").click();
      await fan.page.locator(`[data-testid="date-choice"][data-date="${date.date}"]`).click();
      await fan.expectScreen("seat-map");
      await fan.waitForSeatState(14, "mine");
      expect(await fan.seat(14).getAttribute("aria-label")).to.include(MESSAGES.en.stateMine);
      await fan.page.getByTestId("hold-banner").waitFor();
      await fan.screenshot("02-mine");
      await fan.button("continueWithHold", { number: 14 }).click();
      await fan.expectScreen("hold");
      await fan.expectHeading("holdHeading", { number: 14 });
      await fan.expectNoProblems();
    });

    it("retries a top-up and a payment whose answers were lost with the same request id, charging once", async () => {
      const fan = await openPage(main, "g-lost-answers");
      fan.expectConsoleErrors(/status of 503/);
      // The first call of each mutation reaches the server, but its answer is lost on the way back.
      const requestIds = new Map<string, string[]>();
      for (const method of [
        "wallet.v1.WalletService/RechargeWallet",
        "payment.v1.PaymentService/CreatePayment",
      ]) {
        let lost = false;
        await fan.page.route(
          new RegExp(`/stagedoor\\.${method.replace(".", "\\.")}$`),
          async (route) => {
            const body: unknown = route.request().postDataJSON();
            const requestId = String((body as { requestId?: unknown }).requestId);
            requestIds.set(method, [...(requestIds.get(method) ?? []), requestId]);
            if (lost) {
              await route.continue();
              return;
            }
            lost = true;
            await route.fetch();
            await route.fulfill({
              status: 503,
              contentType: "application/json",
              body: JSON.stringify({ code: "unavailable", message: "connection lost" }),
            });
          },
        );
      }
      await fan.open("ko");
      await fan.join(uniqueUser("fan-g"));
      await fan.expectScreen("admitted");
      await fan.button("chooseDate").click();
      const { date } = await dateSeats(clientFor("connect", main.url), main.concertId, 1);
      await fan.page.locator(`[data-testid="date-choice"][data-date="${date.date}"]`).click();
      await fan.expectScreen("seat-map");
      await fan.seat(30).click();
      await fan.expectScreen("hold");
      await fan.button("continueToWallet").click();
      await fan.expectScreen("wallet");
      await fan.page.locator('[data-testid="top-up-preset"][data-amount="200000"]').click();
      await fan.page.locator('[data-testid="notice-status"][data-key="toppedUp"]').waitFor();
      await fan.waitForText("wallet-balance", "₩200,000");
      await fan.button("goToPay").click();
      await fan.expectScreen("pay");
      await fan.page.getByTestId("pay-button").click();
      await fan.expectScreen("ticket");

      for (const [method, ids] of requestIds) {
        expect(ids, method).to.have.length(2);
        expect(ids[1], `${method} retried with the first request id`).to.equal(ids[0]);
      }
      const asFan = clientFor("connect", main.url, await fan.token());
      const { entries } = await asFan.wallet.listLedgerEntries({});
      expect(entries.map((e) => [e.kind, e.amount])).to.deep.equal([
        [LedgerEntryKind.PAYMENT, -110_000n],
        [LedgerEntryKind.RECHARGE, 200_000n],
      ]);
      expect((await asFan.wallet.getWallet({})).wallet?.balance).to.equal(90_000n);
      await fan.expectNoProblems();
    });

    it("says so when a hold expires and returns to the map with the seat free again", async () => {
      const fan = await openPage(shortHolds, "c-hold-expired");
      await fan.open("ko");
      await fan.join(uniqueUser("fan-c"));
      await fan.expectScreen("admitted");
      await fan.button("chooseDate").click();
      const api = clientFor("connect", shortHolds.url);
      const { date, seats } = await dateSeats(api, shortHolds.concertId, 0);
      await fan.page.locator(`[data-testid="date-choice"][data-date="${date.date}"]`).click();
      await fan.expectScreen("seat-map");
      await fan.seat(20).click();

      await fan.expectScreen("hold");
      expect(await fan.page.getByTestId("hold-countdown").textContent()).to.match(/0:0[0-5]/);
      await fan.screenshot("01-hold");

      // HOLD_TTL_SECONDS is 5: the app must notice the end on its own.
      await fan.expectScreen("seat-map", 15_000);
      await fan.expectAlert("errHoldExpired");
      await fan.waitForSeatState(20, "available");
      await fan.screenshot("02-expired");
      const { seat } = await api.catalog.getSeat({ seatId: must(seats.get(20)).id });
      expect(seat?.state).to.equal(SeatState.AVAILABLE);
      await fan.expectNoProblems();
    });

    it("shows the place in line live and the moment the fan is let in", async () => {
      const api = clientFor("connect", oneAtATime.url);
      const first = await api.queue.issueQueueToken({
        concertId: oneAtATime.concertId,
        userId: uniqueUser("first-d"),
      });
      expect(first.status?.state).to.equal(QueueTokenState.ADMITTED);

      const fan = await openPage(oneAtATime, "d-queue", MOBILE);
      await fan.open("en");
      await fan.join(uniqueUser("fan-d"));
      await fan.expectScreen("queue");
      await fan.expectHeading("queueHeading");
      await fan.waitForText("queue-position", fan.text("queuePosition", { position: "1" }));
      expect(await fan.page.locator(".queue-live").getAttribute("aria-live")).to.equal("polite");
      await fan.expectNoHorizontalScroll("queue");
      await fan.screenshot("01-waiting");

      // The admitted fan leaves; the slot goes to the fan in the browser.
      await clientFor("connect", oneAtATime.url, first.token).queue.leaveQueue({});
      await fan.expectScreen("admitted", 5_000);
      await fan.expectHeading("admittedHeading");
      await fan.screenshot("02-admitted");
      await fan.expectNoProblems();
      // Give the one slot back for the next test.
      await clientFor("connect", oneAtATime.url, await fan.token()).queue.leaveQueue({});
    });

    it("keeps the fan's place by polling when the status stream cannot get through", async () => {
      const api = clientFor("connect", oneAtATime.url);
      const first = await api.queue.issueQueueToken({
        concertId: oneAtATime.concertId,
        userId: uniqueUser("first-f"),
      });
      expect(first.status?.state).to.equal(QueueTokenState.ADMITTED);

      const fan = await openPage(oneAtATime, "f-polling", MOBILE);
      // A proxy that breaks streaming responses, as some corporate proxies do.
      await fan.page.route(/\/stagedoor\.queue\.v1\.QueueService\/WatchQueueStatus/, (route) =>
        route.abort("failed"),
      );
      fan.expectConsoleErrors(/^Failed to load resource: net::ERR_FAILED/);
      let polls = 0;
      fan.page.on("request", (request) => {
        if (request.url().includes("/stagedoor.queue.v1.QueueService/GetQueueStatus")) polls++;
      });
      await fan.open("en");
      await fan.join(uniqueUser("fan-f"));
      await fan.expectScreen("queue");
      // Each failed attempt says so; after a few the page polls GetQueueStatus instead.
      await fan.waitForText("queue-connection", fan.text("reconnecting"));
      // Only a poll can have said so: every stream attempt fails.
      await fan.waitForText("queue-position", fan.text("queuePosition", { position: "1" }));
      expect(polls).to.be.greaterThan(0);
      await fan.screenshot("01-polling");

      await clientFor("connect", oneAtATime.url, first.token).queue.leaveQueue({});
      await fan.expectScreen("admitted", 10_000);
      await fan.expectNoProblems();
    });

    it("fits a 375 px wide screen on every step, in both languages", async () => {
      const fan = await openPage(main, "e-mobile", MOBILE);
      await fan.open("en");
      const checkLayout = async (name: string) => {
        await fan.expectNoHorizontalScroll(name);
        await fan.screenshot(`${name}-${fan.lang}`);
        await fan.switchLanguage();
        await fan.page.getByTestId("screen-heading").waitFor();
        await fan.expectNoHorizontalScroll(name);
        await fan.screenshot(`${name}-${fan.lang}`);
        await fan.switchLanguage();
      };

      // An empty id is refused on the page, in words.
      await fan.button("joinButton").click();
      await fan.page.getByText(MESSAGES.en.userIdInvalid).waitFor();
      await checkLayout("01-join");
      // The longest id allowed must not widen the page either.
      await fan.join(uniqueUser("fan-e").padEnd(128, "x"));

      await fan.expectScreen("admitted");
      await checkLayout("02-admitted");
      await fan.button("chooseDate").click();
      await fan.expectScreen("dates");
      await fan.page.getByTestId("date-choice").first().waitFor();
      await checkLayout("03-dates");
      const { date } = await dateSeats(clientFor("connect", main.url), main.concertId, 2);
      await fan.page.locator(`[data-testid="date-choice"][data-date="${date.date}"]`).click();

      await fan.expectScreen("seat-map");
      await fan.waitForSeatState(40, "available");
      await checkLayout("04-seat-map");
      await fan.seat(40).click();
      await fan.expectScreen("hold");
      await checkLayout("05-hold");
      await fan.button("continueToWallet").click();
      await fan.expectScreen("wallet");
      await fan.waitForText("wallet-balance", "₩0");
      await checkLayout("06-wallet");

      // Paying with an empty wallet is refused in words, with the way out.
      await fan.button("goToPay").click();
      await fan.expectScreen("pay");
      await fan.page.getByTestId("pay-button").click();
      await fan.expectAlert("errInsufficientBalance");
      await checkLayout("07-pay-refused");
      await fan.button("topUpFirst").click();
      await fan.expectScreen("wallet");
      await fan.page.getByLabel(MESSAGES.en.customAmountLabel).fill("80,000");
      await fan.button("topUpButton").click();
      await fan.waitForText("wallet-balance", "₩80,000");
      await fan.button("goToPay").click();
      await fan.expectScreen("pay");
      await fan.page.getByTestId("pay-button").click();

      await fan.expectScreen("ticket");
      expect(await fan.page.getByTestId("ticket").textContent()).to.include(
        fan.text("seatName", { number: 40 }),
      );
      await checkLayout("08-ticket");
      await fan.expectNoProblems();
    });
  });
