import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  LedgerEntryKind,
  QueueTokenState,
  ReservationState,
  SeatState,
  type StagedoorClient,
} from "@stagedoor/sdk";
import { expect } from "chai";
import jsQR from "jsqr";
import { type BrowserContext, chromium } from "playwright-core";
import { MESSAGES } from "../../examples/web/src/i18n.js";
import { signUserAssertion } from "../../server/src/modules/identity/index.js";
import { must, newRequestId, pollUntil, uniqueUser } from "../rpc/rpc-kit.js";
import { clientFor } from "../support/clients.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { BoxOfficeDriver, CSP_RECORDER } from "./box-office-driver.js";
import { buildWeb, CHROMIUM, CHROMIUM_ARGS } from "./browser.js";
import { type LoginSite, startLoginSite } from "./login-site.js";

const MOBILE = { width: 375, height: 740 };
/** The secret the hmac server and the stand-in operator site share. */
const HMAC_SECRET = "e2e-hmac-secret-0123456789abcdef0123456789";
/** What the operator's site signs once its own sign-in knows the fan. */
const assertionFor = (userId: string, validForMs = 10 * 60_000) =>
  signUserAssertion(HMAC_SECRET, userId, new Date(Date.now() + validForMs));
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
    let hmac: TestServer;
    let loginSite: LoginSite;
    const drivers: BoxOfficeDriver[] = [];

    before(async () => {
      webDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-e2e-web-"));
      // The real build script, into a folder of this run's own.
      await buildWeb(webDir);
      screenshots =
        process.env.E2E_SCREENSHOTS_DIR ||
        path.join(os.tmpdir(), `stagedoor-e2e-screenshots-${Date.now()}`);
      await mkdir(screenshots, { recursive: true });
      console.log(`      box office screenshots: ${screenshots}`);

      const common = { WEB_DIR: webDir, SHUTDOWN_TIMEOUT_MS: "250" };
      loginSite = await startLoginSite();
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
        startTestServer({
          env: {
            ...common,
            AUTH_MODE: "hmac",
            AUTH_HMAC_SECRET: HMAC_SECRET,
            WEB_LOGIN_URL: `${loginSite.url}/login`,
          },
        }).then((server) => {
          hmac = server;
        }),
      ]);
      loginSite.boxOffice = hmac.url;

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
      await Promise.all([
        main?.stop(),
        shortHolds?.stop(),
        oneAtATime?.stop(),
        hmac?.stop(),
        loginSite?.stop(),
      ]);
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

    it("sells a seat from join to ticket with no console error and no failed request: the seat is sold and the balance drops by its price", async () => {
      // A new fan's first wallet read included: an empty wallet is no error.
      const fan = (await openPage(main, "a-purchase")).strict();
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

    it("counts down in the lobby before the opening, says when admission is paused, then lets the fan in", async () => {
      const sale = oneAtATime.services.saleSettings;
      const ops = { name: "e2e" };
      const concertId = oneAtATime.concertId;
      // Room for this test's fan whatever earlier tests left admitted.
      await sale.update(ops, {
        concertId,
        requestId: newRequestId(),
        fields: ["opens_at", "max_admitted"],
        opensAt: new Date(Date.now() + 5_000),
        maxAdmitted: 3,
        admissionMs: 0,
        holdMs: 0,
      });

      const fan = await openPage(oneAtATime, "g-lobby", MOBILE);
      await fan.open("en");
      await fan.join(uniqueUser("fan-g"));
      await fan.expectScreen("queue");
      await fan.page.getByTestId("queue-lobby").waitFor({ state: "visible" });
      expect(await fan.page.getByTestId("queue-opens-in").textContent()).to.match(
        /^Sale opens in /,
      );
      expect(await fan.page.getByTestId("queue-paused").isVisible()).to.equal(false);
      await fan.expectNoHorizontalScroll("lobby");
      await fan.screenshot("01-lobby");

      // The brake goes on before the opening: the fan is drawn into the line but not let in.
      await sale.pause(ops, { concertId, requestId: newRequestId(), reason: "e2e" });
      await fan.page.getByTestId("queue-paused").waitFor({ state: "visible", timeout: 15_000 });
      await fan.waitForText("queue-position", fan.text("queuePosition", { position: "1" }));
      expect(await fan.page.getByTestId("queue-lobby").isVisible()).to.equal(false);
      await fan.screenshot("02-paused");

      await sale.resume(ops, { concertId, requestId: newRequestId() });
      await fan.expectScreen("admitted", 10_000);
      await fan.expectNoProblems();
      await clientFor("connect", oneAtATime.url, await fan.token()).queue.leaveQueue({});
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

    it("keeps the admission countdown in sight on a phone while the fan scrolls down the seat map", async () => {
      const fan = (await openPage(main, "h-phone-countdown", MOBILE)).strict();
      await fan.open("ko");
      await fan.join(uniqueUser("fan-h"));
      await fan.expectScreen("admitted");
      await fan.button("chooseDate").click();
      await fan.expectScreen("dates");
      const { date } = await dateSeats(clientFor("connect", main.url), main.concertId, 2);
      await fan.page.locator(`[data-testid="date-choice"][data-date="${date.date}"]`).click();
      await fan.expectScreen("seat-map");
      await fan.waitForSeatState(50, "available");

      // To the very end of the map: on a phone the page scrolls further than the
      // header is tall, so a header that scrolled away would be out of sight.
      await fan.page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)");
      const headerHeight = Number(
        await fan.page.evaluate("document.querySelector('.site-header').offsetHeight"),
      );
      expect(Number(await fan.page.evaluate("window.scrollY"))).to.be.greaterThan(headerHeight);
      const timer = fan.page.getByTestId("admission-timer");
      expect(await timer.textContent()).to.match(/\d+:\d\d/);
      const box = must(await timer.boundingBox(), "the countdown's box");
      expect(box.y, "countdown top").to.be.at.least(0);
      expect(box.y + box.height, "countdown bottom").to.be.at.most(MOBILE.height);
      // Nothing covers it: the element drawn at its centre is the countdown.
      const centre = [box.x + box.width / 2, box.y + box.height / 2].join(", ");
      expect(
        await fan.page.evaluate(
          `document.elementFromPoint(${centre})?.closest('[data-testid="admission-timer"]') !== null`,
        ),
      ).to.equal(true);
      await fan.screenshot("01-scrolled-map");
      await fan.expectNoProblems();
    });

    it("speaks the browser's language: Korean to a ko-KR browser, English to an en-US one", async () => {
      // Fresh contexts (nothing chosen with the toggle before), each with its browser language.
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
      });
      try {
        for (const [locale, lang] of [
          ["ko-KR", "ko"],
          ["en-US", "en"],
        ] as const) {
          const fresh = await browser.newContext({ locale, viewport: MOBILE });
          await fresh.addInitScript({ content: CSP_RECORDER });
          const page = await fresh.newPage();
          const fan = new BoxOfficeDriver(page, main.url, screenshots, `i-${locale}`).strict();
          await page.goto(`${main.url}/`);
          expect(await page.evaluate("navigator.language")).to.equal(locale);
          await page.locator('section[data-screen="join"]').waitFor();
          expect(await fan.adoptPageLang(), locale).to.equal(lang);
          await fan.expectHeading("joinHeading");
          await page.getByTestId("concert-title").waitFor();
          await fan.screenshot("01-join");
          await fan.expectNoProblems();
          await fresh.close();
        }
      } finally {
        await browser.close();
      }
    });

    it("loads app.js by a content-hashed name, br- or gzip-encoded and cached for a year, and index.html with no-cache", async () => {
      const fan = (await openPage(main, "j-caching")).strict();
      const bundle = fan.page.waitForResponse((response) =>
        /\/app-[A-Z0-9]{8}\.js$/.test(response.url()),
      );
      const page = must(await fan.page.goto(`${main.url}/`), "the page's response");
      expect((await page.allHeaders())["cache-control"]).to.equal("no-cache");
      const app = await bundle;
      expect(path.basename(new URL(app.url()).pathname)).to.equal(await appFile(webDir));
      const headers = await app.allHeaders();
      expect(["br", "gzip"]).to.include(headers["content-encoding"]);
      expect(headers["cache-control"]).to.equal("public, max-age=31536000, immutable");
      await fan.page.locator('section[data-screen="join"]').waitFor();
      // Brotli whenever the client takes it (Chromium offers it over HTTPS).
      const brotli = await fetch(app.url(), { headers: { "accept-encoding": "gzip, br" } });
      expect(brotli.headers.get("content-encoding")).to.equal("br");
      expect(await brotli.text()).to.equal(
        await readFile(path.join(webDir, await appFile(webDir)), "utf8"),
      );
      await fan.expectNoProblems();
    });

    it("shows a bought ticket under My tickets after the tab is closed, without queuing: venue time, seat, entry code and a QR code that decodes to it", async () => {
      const userId = uniqueUser("fan-m");
      const buyer = (await openPage(main, "m-buy")).strict();
      await buyer.open("en");
      await buyer.join(userId);
      await buyer.expectScreen("admitted");
      await buyer.button("chooseDate").click();
      const { date } = await dateSeats(clientFor("connect", main.url), main.concertId, 2);
      await buyer.page.locator(`[data-testid="date-choice"][data-date="${date.date}"]`).click();
      await buyer.expectScreen("seat-map");
      await buyer.seat(7).click();
      await buyer.expectScreen("hold");
      await buyer.button("continueToWallet").click();
      await buyer.expectScreen("wallet");
      await buyer.page.locator('[data-testid="top-up-preset"][data-amount="200000"]').click();
      await buyer.waitForText("wallet-balance", "₩200,000");
      await buyer.button("goToPay").click();
      await buyer.expectScreen("pay");
      await buyer.page.getByTestId("pay-button").click();
      await buyer.expectScreen("ticket");
      const reservationId = must(
        await buyer.page.getByTestId("ticket-reservation-id").textContent(),
        "reservation id",
      );
      await buyer.expectNoProblems();
      await buyer.page.close();
      drivers.splice(drivers.indexOf(buyer), 1);

      // A new tab keeps nothing of the old one: the fan starts from the join screen.
      const fan = (await openPage(main, "m-my-tickets")).strict();
      await fan.open("ko");
      await fan.page.getByLabel(MESSAGES.ko.userIdLabel, { exact: true }).fill(userId);
      await fan.button("myTicketsButton").click();
      await fan.expectScreen("my-tickets");
      await fan.expectHeading("myTicketsHeading");
      const card = fan.page.locator(`[data-testid="my-ticket"][data-ticket-id="${reservationId}"]`);
      await card.waitFor();
      expect(await fan.page.getByTestId("my-ticket").count()).to.equal(1);
      await fan.waitForText("my-tickets-balance", "₩50,000");
      const text = must(await card.textContent(), "ticket card");
      expect(text)
        .to.include("Stagedoor Live: Seoul Nights")
        .and.include("KSPO Dome, Seoul")
        .and.include("19:00 (Asia/Seoul)")
        .and.include(fan.text("seatName", { number: 7 }))
        .and.include("VIP")
        .and.include("₩150,000")
        .and.include(MESSAGES.ko.ticketValid);
      const code = must(await card.getByTestId("entry-code").textContent(), "entry code");
      expect(code).to.match(/^[A-Z2-7]{42}$/);
      // The canvas's pixels, as the door's scanner would see them.
      const pixels = (await fan.page.evaluate(`(() => {
        const canvas = document.querySelector('[data-testid="my-ticket"] canvas');
        const image = canvas?.getContext("2d")?.getImageData(0, 0, canvas.width, canvas.height);
        return image && { width: image.width, height: image.height, data: Array.from(image.data) };
      })()`)) as { width: number; height: number; data: number[] } | undefined;
      const image = must(pixels, "the QR canvas");
      const decoded = jsQR.default(Uint8ClampedArray.from(image.data), image.width, image.height);
      expect(decoded?.data, "the QR code decodes to the entry code").to.equal(code);
      expect(await card.locator("canvas").getAttribute("aria-label")).to.equal(
        MESSAGES.ko.entryCodeQr,
      );
      await fan.screenshot("01-my-tickets");
      // No place in line was taken: the tab has no queue session.
      expect(await fan.page.evaluate("sessionStorage.getItem('stagedoor.session')")).to.equal(null);
      // The code shown is the one the server signed for this ticket.
      const { ticket } = await clientFor(
        "connect",
        main.url,
        await fanSession(userId),
      ).ticket.getTicket({
        ticketId: reservationId,
      });
      expect(ticket?.entryCode).to.equal(code);
      await fan.switchLanguage();
      await card.waitFor();
      await fan.expectNoHorizontalScroll("my tickets");
      await fan.expectNoProblems();
    });

    /** A read-only session of a fan (trust mode), for reading what the page shows. */
    async function fanSession(userId: string): Promise<string> {
      const { sessionToken } = await clientFor("connect", main.url).ticket.createSession({
        userId,
      });
      return sessionToken;
    }

    describe("with AUTH_MODE=hmac, the fan's assertion handed over by the operator's site", () => {
      it("joins with an assertion from the URL fragment, which leaves the URL at once", async () => {
        const userId = uniqueUser("fan-k");
        const fan = (await openPage(hmac, "k-fragment")).strict();
        await fan.page.goto(
          `${loginSite.url}/login?mode=fragment&assertion=${encodeURIComponent(assertionFor(userId))}`,
        );
        await fan.page.getByTestId("signed-in-as").waitFor();
        await fan.adoptPageLang();
        expect(await fan.page.getByTestId("signed-in-as").textContent()).to.equal(
          fan.text("signedInAs", { userId }),
        );
        expect(fan.page.url()).to.equal(`${hmac.url}/`);
        await fan.screenshot("01-signed-in");
        await fan.button("joinButton").click();
        await fan.expectScreen("admitted");
        // The server issued the token to the assertion's user.
        const { reservations } = await clientFor(
          "connect",
          hmac.url,
          await fan.token(),
        ).reservation.listReservations({});
        expect(reservations).to.deep.equal([]);
        const session = JSON.parse(
          String(await fan.page.evaluate("sessionStorage.getItem('stagedoor.session')")),
        ) as { userId: string };
        expect(session.userId).to.equal(userId);
        await fan.expectNoProblems();
      });

      it("opens My tickets with the handed-over assertion, without queuing", async () => {
        const userId = uniqueUser("fan-n");
        // Bought earlier, with an assertion as the operator's site signs them.
        const { token } = await clientFor(
          "connect",
          hmac.url,
          assertionFor(userId),
        ).queue.issueQueueToken({ concertId: hmac.concertId, userId });
        const queued = clientFor("connect", hmac.url, token);
        const { seats } = await dateSeats(clientFor("connect", hmac.url), hmac.concertId, 2);
        const seat = must(seats.get(9), "seat 9");
        await queued.wallet.rechargeWallet({ amount: seat.price, requestId: newRequestId() });
        const { reservation } = await queued.reservation.holdSeat({
          seatId: seat.id,
          requestId: newRequestId(),
        });
        const reservationId = must(reservation, "hold").id;
        await queued.payment.createPayment({
          reservationId,
          amount: seat.price,
          requestId: newRequestId(),
        });

        const fan = (await openPage(hmac, "n-my-tickets")).strict();
        await fan.page.goto(
          `${loginSite.url}/login?mode=fragment&assertion=${encodeURIComponent(assertionFor(userId))}`,
        );
        await fan.page.getByTestId("signed-in-as").waitFor();
        await fan.adoptPageLang();
        await fan.button("myTicketsButton").click();
        await fan.expectScreen("my-tickets");
        const card = fan.page.locator(
          `[data-testid="my-ticket"][data-ticket-id="${reservationId}"]`,
        );
        await card.waitFor();
        expect(await card.getByTestId("entry-code").textContent()).to.match(/^[A-Z2-7]{42}$/);
        expect(await card.getByTestId("my-ticket-state").textContent()).to.equal(
          fan.text("ticketValid"),
        );
        expect(await fan.page.evaluate("sessionStorage.getItem('stagedoor.session')")).to.equal(
          null,
        );
        await fan.expectNoProblems();
      });

      it("joins with an assertion posted by the operator's page that opened it", async () => {
        const userId = uniqueUser("fan-l");
        const operator = await openPage(hmac, "l-operator");
        await operator.page.goto(
          `${loginSite.url}/login?mode=popup&assertion=${encodeURIComponent(assertionFor(userId))}`,
        );
        const [popup] = await Promise.all([
          context.waitForEvent("page"),
          operator.page.click("#open"),
        ]);
        const fan = new BoxOfficeDriver(popup, hmac.url, screenshots, "l-popup").strict();
        drivers.push(fan);
        await popup.getByTestId("signed-in-as").waitFor();
        await fan.adoptPageLang();
        expect(await popup.getByTestId("signed-in-as").textContent()).to.equal(
          fan.text("signedInAs", { userId }),
        );
        await fan.button("joinButton").click();
        await fan.expectScreen("admitted");
        const session = JSON.parse(
          String(await popup.evaluate("sessionStorage.getItem('stagedoor.session')")),
        ) as { userId: string };
        expect(session.userId).to.equal(userId);
        await fan.expectNoProblems();
      });

      it("ignores assertions posted from an origin the server does not list", async () => {
        // Same site, other origin: localhost is not 127.0.0.1 to a browser.
        const stranger = loginSite.url.replace("127.0.0.1", "localhost");
        const operator = await openPage(hmac, "m-stranger");
        await operator.page.goto(
          `${stranger}/login?mode=push&assertion=${encodeURIComponent(assertionFor(uniqueUser("fan-m")))}`,
        );
        const [popup] = await Promise.all([
          context.waitForEvent("page"),
          operator.page.click("#open"),
        ]);
        const fan = new BoxOfficeDriver(popup, hmac.url, screenshots, "m-popup");
        drivers.push(fan);
        // Its "ready" is addressed to the allowed origin only, which the stranger is not.
        fan.expectConsoleErrors(/postMessage.*does not match the recipient window's origin/);
        await popup.getByTestId("sign-in-needed").waitFor();
        await pollUntil(
          async () => Number(await operator.page.evaluate("window.pushes")) >= 5,
          10_000,
          "five assertions posted",
        );
        expect(await popup.getByTestId("signed-in-as").count()).to.equal(0);
        expect(await popup.getByTestId("sign-in-needed").count()).to.equal(1);
        await fan.expectNoProblems();
      });

      it("without an assertion, sends the fan to sign in and calls nothing that would be refused", async () => {
        const fan = (await openPage(hmac, "n-no-assertion")).strict();
        await fan.page.goto(`${hmac.url}/`);
        await fan.page.getByTestId("sign-in-needed").waitFor();
        await fan.adoptPageLang();
        expect(await fan.page.getByTestId("sign-in-link").getAttribute("href")).to.equal(
          `${loginSite.url}/login`,
        );
        expect(await fan.page.locator("#user-id").count()).to.equal(0);
        await fan.page.getByTestId("concert-title").waitFor();
        await fan.screenshot("01-sign-in");
        await fan.expectNoProblems();
      });

      it("drops an assertion the server refuses (expired) and asks the fan to sign in again", async () => {
        const fan = await openPage(hmac, "o-expired");
        await fan.page.goto(
          `${hmac.url}/#assertion=${encodeURIComponent(assertionFor(uniqueUser("fan-o"), -1_000))}`,
        );
        await fan.page.getByTestId("signed-in-as").waitFor();
        await fan.adoptPageLang();
        await fan.button("joinButton").click();
        await fan.expectAlert("errIdentity");
        await fan.page.getByTestId("sign-in-needed").waitFor();
        await fan.expectNoProblems();
      });
    });
  });
