import path from "node:path";
import { expect } from "chai";
import type { Page, Route } from "playwright-core";
import type { ScreenName } from "../../examples/web/src/app-state.js";
import {
  type Lang,
  MESSAGES,
  type MessageKey,
  type MessageParams,
  translate,
} from "../../examples/web/src/i18n.js";
import { pollUntil } from "../rpc/rpc-kit.js";

/** The screens of the web box office, as their sections' `data-screen` names. */
export type { ScreenName };

/** Chromium's own line for a response with an error status: expected when a call is refused on purpose. */
const REFUSED_RESPONSE = /^Failed to load resource: the server responded with a status of 4\d\d/;

/** Records CSP violations in the page, before any of its own scripts run. */
export const CSP_RECORDER = `
  window.__cspViolations = [];
  document.addEventListener("securitypolicyviolation", (event) => {
    window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
  });
`;

/**
 * Drives one page of the web box office the way a fan does (clicks, typing,
 * reading what is on screen), with the words taken from the app's own i18n
 * table so the checks follow the strings. It also collects what must never
 * happen: script errors, console errors and CSP violations.
 */
export class BoxOfficeDriver {
  /** Console errors and page errors seen so far. */
  readonly problems: string[] = [];
  /** Console errors a test causes on purpose (e.g. by cutting a connection). */
  private readonly expected: RegExp[] = [REFUSED_RESPONSE];
  lang: Lang = "ko";

  constructor(
    readonly page: Page,
    private readonly baseUrl: string,
    private readonly screenshots: string,
    private readonly prefix: string,
  ) {
    page.on("console", (message) => {
      if (process.env.E2E_DEBUG) console.log("        [page]", message.type(), message.text());
      if (message.type() === "error" && !this.expected.some((p) => p.test(message.text()))) {
        this.problems.push(`console error: ${message.text()}`);
      }
    });
    page.on("pageerror", (error) => this.problems.push(`page error: ${error.message}`));
  }

  /**
   * For a path where nothing may go wrong: no console error is tolerated (not
   * even Chromium's line for a refused call), and every request that fails
   * or answers with an error status is a problem too. Requests the page
   * cancels itself (a screen that goes away aborts its calls) are not.
   */
  strict(): this {
    this.expected.length = 0;
    this.page.on("requestfailed", (request) => {
      const failure = request.failure()?.errorText ?? "";
      if (failure !== "net::ERR_ABORTED") {
        this.problems.push(`failed request: ${request.method()} ${request.url()} ${failure}`);
      }
    });
    this.page.on("response", (response) => {
      if (response.status() >= 400) {
        this.problems.push(
          `error response: ${response.status()} ${response.request().method()} ${response.url()}`,
        );
      }
    });
    return this;
  }

  /** Tolerates console errors matching `pattern`, which the test provokes itself. */
  expectConsoleErrors(pattern: RegExp): void {
    this.expected.push(pattern);
  }

  /** A message of the app in the page's current language. */
  text(key: MessageKey, params?: MessageParams): string {
    return translate(this.lang, key, params);
  }

  /** Opens the box office at `/` and switches it to `lang` with the page's own toggle. */
  async open(lang: Lang): Promise<void> {
    await this.page.goto(`${this.baseUrl}/`);
    await this.page.locator('section[data-screen="join"]').waitFor();
    const current = await this.page.getAttribute("html", "lang");
    if (current !== lang) await this.page.getByTestId("lang-toggle").click();
    expect(await this.page.getAttribute("html", "lang")).to.equal(lang);
    this.lang = lang;
    await this.expectHeading("joinHeading");
  }

  /** Reads the language the page chose by itself (from the browser's), for the checks' words. */
  async adoptPageLang(): Promise<Lang> {
    const lang = await this.page.getAttribute("html", "lang");
    if (lang !== "ko" && lang !== "en") throw new Error(`the page speaks ${String(lang)}`);
    this.lang = lang;
    return lang;
  }

  /** Switches the language with the toggle and waits for the redraw. */
  async switchLanguage(): Promise<void> {
    const next: Lang = this.lang === "ko" ? "en" : "ko";
    await this.page.getByTestId("lang-toggle").click();
    await this.page.locator(`html[lang="${next}"]`).waitFor({ state: "attached" });
    this.lang = next;
  }

  /** Types a user id and joins the line. */
  async join(userId: string): Promise<void> {
    await this.page.getByLabel(MESSAGES[this.lang].userIdLabel, { exact: true }).fill(userId);
    await this.button("joinButton").click();
  }

  /** A button by its visible words. */
  button(key: MessageKey, params?: MessageParams) {
    return this.page.getByRole("button", { name: this.text(key, params), exact: true });
  }

  /**
   * Waits for a screen and checks what a keyboard or screen reader user
   * relies on: the focus moved to the new screen's heading.
   */
  async expectScreen(screen: ScreenName, timeoutMs = 10_000): Promise<void> {
    await this.page.locator(`section[data-screen="${screen}"]`).waitFor({ timeout: timeoutMs });
    const focused = await this.page.evaluate("document.activeElement?.dataset?.testid ?? null");
    expect(focused, `focus on the ${screen} screen's heading`).to.equal("screen-heading");
  }

  /** Asserts the screen heading's exact words. */
  async expectHeading(key: MessageKey, params?: MessageParams): Promise<void> {
    expect(await this.page.getByTestId("screen-heading").textContent()).to.equal(
      this.text(key, params),
    );
  }

  /** Waits for the error notice (role=alert) to say exactly `key`'s words. */
  async expectAlert(key: MessageKey, timeoutMs = 10_000): Promise<void> {
    const alert = this.page.getByTestId("notice-alert");
    await this.page
      .locator(`[data-testid="notice-alert"][data-key="${key}"]`)
      .waitFor({ timeout: timeoutMs });
    expect(await alert.textContent()).to.equal(this.text(key));
  }

  /** Polls until the element with this test id reads exactly `text`. */
  async waitForText(testId: string, text: string, timeoutMs = 10_000): Promise<void> {
    const locator = this.page.getByTestId(testId);
    await pollUntil(
      async () => (await locator.textContent().catch(() => "")) === text,
      timeoutMs,
      `${testId} reading "${text}"`,
    );
  }

  /** The seat button with this number on the seat map. */
  seat(number: number) {
    return this.page.locator(`[data-testid="seat"][data-seat-number="${number}"]`);
  }

  /** Polls until the map shows the seat in `state` (the map refreshes itself every few seconds). */
  async waitForSeatState(number: number, state: string, timeoutMs = 10_000): Promise<void> {
    await this.page
      .locator(`[data-testid="seat"][data-seat-number="${number}"][data-state="${state}"]`)
      .waitFor({ timeout: timeoutMs });
  }

  /** Saves a full-page screenshot named after the test and the screen. */
  async screenshot(name: string): Promise<void> {
    await this.page.screenshot({
      path: path.join(this.screenshots, `${this.prefix}-${name}.png`),
      fullPage: true,
    });
  }

  /** Fails if the page is wider than its viewport (a horizontal scrollbar). */
  async expectNoHorizontalScroll(where: string): Promise<void> {
    const width = await this.page.evaluate("document.documentElement.scrollWidth");
    const viewport = this.page.viewportSize()?.width ?? 0;
    expect(Number(width), `page width on ${where} (${this.lang})`).to.be.at.most(viewport);
  }

  /** The fan's queue token, as the page keeps it for this tab. */
  async token(): Promise<string> {
    const raw = await this.page.evaluate("sessionStorage.getItem('stagedoor.session')");
    const session: unknown = JSON.parse(String(raw));
    if (typeof session !== "object" || session === null || !("token" in session)) {
      throw new Error("the page keeps no session");
    }
    return String(session.token);
  }

  /** Asserts that nothing went wrong in the page: no script or console errors, no CSP violation. */
  async expectNoProblems(): Promise<void> {
    const violations = await this.page.evaluate("window.__cspViolations ?? []");
    expect(violations, "CSP violations").to.deep.equal([]);
    expect(this.problems, "console and page errors").to.deep.equal([]);
  }

  /**
   * Holds back the page's ListSeats calls until {@link releaseSeatReads}: the
   * map keeps showing what it last read, so a test can change a seat behind
   * the fan's back and be sure the fan clicks before the map notices.
   */
  async holdBackSeatReads(): Promise<void> {
    this.heldBack = [];
    await this.page.route(SEAT_READS, (route) => {
      this.heldBack?.push(route);
    });
  }

  /** Lets held-back and new ListSeats calls through. */
  async releaseSeatReads(): Promise<void> {
    const held = this.heldBack ?? [];
    this.heldBack = undefined;
    await this.page.unroute(SEAT_READS);
    await Promise.all(held.map((route) => route.continue().catch(() => undefined)));
  }

  private heldBack: Route[] | undefined;
}

const SEAT_READS = /\/stagedoor\.catalog\.v1\.CatalogService\/ListSeats/;
