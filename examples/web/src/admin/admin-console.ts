import { durationMs, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  CatalogService,
  type Concert,
  createAdminClient,
  errorReason,
  fieldViolations,
  type SaleSettings,
  type SaleStats,
  type SeatMapFormat,
  type StagedoorAdminClient,
  seatMapFormatOf,
} from "@stagedoor/sdk";
import { createWebTransport } from "@stagedoor/sdk/web";
import { h, replaceChildren } from "../dom.js";
import { formatCount, formatWon } from "../format.js";

/** Where this tab keeps the operator API key: sessionStorage, gone with the tab. */
const KEY_STORAGE = "stagedoor.adminKey";
/** How often the live figures are read again. */
export const STATS_INTERVAL_MS = 3_000;

/** Reasons that mean the key itself was refused: it is forgotten and asked for again. */
const KEY_REFUSED = new Set(["ADMIN_KEY_INVALID", "ADMIN_KEY_MISSING"]);

/** A seat map file as read from the file input. */
interface SeatMapFile {
  readonly name: string;
  readonly text: string;
  readonly format: SeatMapFormat;
}

/** A failed call in one line: the server's reason (or code) and its message, then each bad field. */
function describeError(error: unknown): string {
  const connect = ConnectError.from(error);
  const reason = errorReason(error) ?? Code[connect.code];
  const fields = fieldViolations(error).map((v) => `${v.field}: ${v.description}`);
  return [`${reason}: ${connect.rawMessage}`, ...fields].join(" · ");
}

function keyStorage(): Storage | undefined {
  try {
    return window.sessionStorage;
  } catch {
    return undefined;
  }
}

/** A fresh request id for one operator action (the same click retried keeps its id). */
function newRequestId(): string {
  return `console-${crypto.randomUUID()}`;
}

/**
 * The operator console: the operator API key (kept in this tab only), a
 * concert and its performance created from a form, the performance's seat
 * map checked (every bad row with its line) and imported from a file, the
 * sale's live figures, and refunds. It talks to the server that served it,
 * over Connect with the key as `Authorization: Bearer <key>`.
 */
export class AdminConsole {
  private key: string | undefined;
  private readonly admin: StagedoorAdminClient;
  private readonly catalog: Client<typeof CatalogService>;
  private concerts: Concert[] = [];
  private concertId = "";
  private seatMap: SeatMapFile | undefined;
  /** The performance and file of the last check that found no problem: only they may be imported. */
  private checked: { performanceId: string; file: SeatMapFile } | undefined;
  private statsTimer: ReturnType<typeof setTimeout> | undefined;

  private readonly alert = h("p", {
    class: "alert",
    role: "alert",
    "data-testid": "console-alert",
  });
  private readonly done = h("p", { class: "done", role: "status", "data-testid": "console-done" });
  private readonly main = h("main", { class: "panels" });

  constructor(
    private readonly root: HTMLElement,
    baseUrl: string,
  ) {
    this.key = keyStorage()?.getItem(KEY_STORAGE) ?? undefined;
    this.admin = createAdminClient({
      baseUrl,
      transport: createWebTransport,
      apiKey: () => this.key,
    });
    this.catalog = createClient(CatalogService, createWebTransport({ baseUrl }));
  }

  start(): void {
    replaceChildren(
      this.root,
      h(
        "header",
        { class: "console-header" },
        h("h1", {}, "Stagedoor operator console"),
        h("a", { href: "/" }, "Box office"),
      ),
      this.alert,
      this.done,
      this.main,
    );
    if (this.key) void this.showConsole();
    else this.showKeyForm();
  }

  // ---- messages

  private fail(error: unknown): void {
    this.done.textContent = "";
    if (KEY_REFUSED.has(errorReason(error) ?? "")) {
      this.forgetKey();
      this.alert.textContent = `The key was refused (${errorReason(error)}). Enter a valid operator API key.`;
      return;
    }
    this.alert.textContent = describeError(error);
  }

  private succeed(message: string): void {
    this.alert.textContent = "";
    this.done.textContent = message;
  }

  /** Runs an action from a button, with the button off while it runs and its failure shown. */
  private async act(button: HTMLButtonElement, action: () => Promise<void>): Promise<void> {
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      this.fail(error);
    } finally {
      button.disabled = false;
    }
  }

  // ---- the key

  private showKeyForm(): void {
    this.stopStats();
    const input = h("input", {
      type: "password",
      name: "key",
      autocomplete: "off",
      required: true,
      "data-testid": "key-input",
    });
    const form = h(
      "form",
      {
        onsubmit: (event: Event) => {
          event.preventDefault();
          const key = input.value.trim();
          if (key === "") return;
          this.key = key;
          keyStorage()?.setItem(KEY_STORAGE, key);
          this.alert.textContent = "";
          void this.showConsole();
        },
      },
      h("label", {}, "Operator API key", input),
      h(
        "p",
        { class: "hint" },
        "Kept in this browser tab only (sessionStorage) and sent to this server alone.",
      ),
      h("button", { type: "submit" }, "Use this key"),
    );
    replaceChildren(
      this.main,
      h("section", { class: "panel", "data-panel": "key" }, h("h2", {}, "Sign in"), form),
    );
    input.focus();
  }

  private forgetKey(): void {
    this.key = undefined;
    keyStorage()?.removeItem(KEY_STORAGE);
    this.showKeyForm();
  }

  // ---- the console

  private async showConsole(): Promise<void> {
    replaceChildren(
      this.main,
      this.concertPanel(),
      this.performancePanel(),
      this.seatMapPanel(),
      this.salePanel(),
      this.statsPanel(),
      this.refundPanel(),
      h(
        "section",
        { class: "panel" },
        h("h2", {}, "Key"),
        h(
          "button",
          { type: "button", class: "secondary", onclick: () => this.forgetKey() },
          "Forget the key",
        ),
      ),
    );
    await this.loadConcerts().catch((error: unknown) => this.fail(error));
  }

  private readonly concertSelect = h("select", {
    name: "concert",
    "data-testid": "concert-select",
    onchange: () => this.selectConcert(this.concertSelect.value),
  });

  private async loadConcerts(): Promise<void> {
    const concerts: Concert[] = [];
    let pageToken = "";
    do {
      const page = await this.catalog.listConcerts({ pageSize: 100, pageToken });
      concerts.push(...page.concerts);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    this.concerts = concerts;
    this.renderConcertOptions();
    this.selectConcert(this.concertId || (concerts[0]?.id ?? ""));
  }

  private renderConcertOptions(): void {
    replaceChildren(
      this.concertSelect,
      ...this.concerts.map((c) =>
        h("option", { value: c.id }, `${c.title} · ${c.venue} (${c.timeZone})`),
      ),
    );
  }

  private selectConcert(concertId: string): void {
    this.concertId = concertId;
    this.concertSelect.value = concertId;
    this.concertIdText.textContent = concertId;
    this.restartStats();
    replaceChildren(this.saleState);
    if (concertId !== "") void this.readSale(concertId).catch((error: unknown) => this.fail(error));
  }

  private readonly concertIdText = h("code", { "data-testid": "concert-id" });

  private concertPanel(): HTMLElement {
    const title = h("input", { name: "title", required: true, maxlength: 200 });
    const venue = h("input", { name: "venue", required: true, maxlength: 200 });
    const timeZone = h("input", { name: "timeZone", required: true, value: "Asia/Seoul" });
    const submit = h("button", { type: "submit" }, "Create concert");
    const form = h(
      "form",
      {
        onsubmit: (event: Event) => {
          event.preventDefault();
          void this.act(submit, async () => {
            const { concert } = await this.admin.createConcert({
              title: title.value.trim(),
              venue: venue.value.trim(),
              timeZone: timeZone.value.trim(),
              requestId: newRequestId(),
            });
            if (!concert) return;
            this.concerts.push(concert);
            this.renderConcertOptions();
            this.selectConcert(concert.id);
            form.reset();
            this.succeed(`Created the concert "${concert.title}".`);
          });
        },
      },
      h("label", {}, "Title", title),
      h("label", {}, "Venue", venue),
      h("label", {}, "Time zone (IANA)", timeZone),
      submit,
    );
    return h(
      "section",
      { class: "panel", "data-panel": "concert" },
      h("h2", {}, "Concert"),
      h("label", {}, "Concert", this.concertSelect),
      h("p", { class: "hint" }, "Id: ", this.concertIdText),
      h("h2", {}, "New concert"),
      form,
    );
  }

  private readonly performanceId = h("input", {
    name: "performanceId",
    required: true,
    "data-testid": "performance-id",
    oninput: () => this.refreshImportButton(),
  });

  private performancePanel(): HTMLElement {
    const startsAt = h("input", { type: "datetime-local", name: "startsAt", required: true });
    const closesAt = h("input", { type: "datetime-local", name: "salesCloseAt" });
    const submit = h("button", { type: "submit" }, "Add performance");
    const form = h(
      "form",
      {
        onsubmit: (event: Event) => {
          event.preventDefault();
          void this.act(submit, async () => {
            // datetime-local has no offset: it is this browser's local time.
            const start = new Date(startsAt.value);
            const close = closesAt.value ? new Date(closesAt.value) : undefined;
            const { performance } = await this.admin.createPerformance({
              concertId: this.concertId,
              startTime: timestampFromDate(start),
              ...(close ? { salesCloseTime: timestampFromDate(close) } : {}),
              requestId: newRequestId(),
            });
            if (!performance) return;
            this.performanceId.value = performance.id;
            this.refreshImportButton();
            form.reset();
            this.succeed(
              `Added the performance of ${performance.date}. Give it a seat map: fans see it once it has seats.`,
            );
          });
        },
      },
      h("label", {}, "Starts at (your browser's local time)", startsAt),
      h("label", {}, "Sales close at (optional; default: the start)", closesAt),
      submit,
    );
    return h(
      "section",
      { class: "panel", "data-panel": "performance" },
      h("h2", {}, "New performance of the selected concert"),
      form,
    );
  }

  // ---- seat map

  private readonly importButton = h("button", { type: "button", disabled: true }, "Import seats");
  private readonly seatMapReport = h("div", { "data-testid": "seatmap-report" });

  private refreshImportButton(): void {
    const ready =
      this.checked !== undefined &&
      this.checked.file === this.seatMap &&
      this.checked.performanceId === this.performanceId.value.trim();
    this.importButton.disabled = !ready;
    this.importButton.textContent = ready ? `Import ${this.checkedCount} seats` : "Import seats";
  }

  private checkedCount = 0;

  private seatMapPanel(): HTMLElement {
    const file = h("input", {
      type: "file",
      name: "seatMap",
      accept: ".csv,.json",
      "data-testid": "seatmap-file",
      onchange: () => {
        void this.readSeatMap(file);
      },
    });
    const check = h("button", { type: "button", class: "secondary" }, "Check file");
    check.addEventListener("click", () => {
      void this.act(check, () => this.checkSeatMap());
    });
    this.importButton.addEventListener("click", () => {
      void this.act(this.importButton, () => this.importSeatMap()).then(() =>
        this.refreshImportButton(),
      );
    });
    return h(
      "section",
      { class: "panel", "data-panel": "seatmap" },
      h("h2", {}, "Seat map"),
      h("div", { class: "fields" }, h("label", {}, "Performance id", this.performanceId)),
      h("div", { class: "fields" }, h("label", {}, "Seat map file (.csv or .json)", file)),
      h(
        "p",
        { class: "hint" },
        "CSV with a section,row,number,grade,price header, or a JSON array of the same keys. Checked first; imported once, all rows or none.",
      ),
      h("div", { class: "row" }, check, this.importButton),
      this.seatMapReport,
    );
  }

  private async readSeatMap(input: HTMLInputElement): Promise<void> {
    this.seatMap = undefined;
    this.checked = undefined;
    replaceChildren(this.seatMapReport);
    this.refreshImportButton();
    const chosen = input.files?.[0];
    if (!chosen) return;
    const format = seatMapFormatOf(chosen.name);
    if (format === undefined) {
      this.alert.textContent = `${chosen.name}: a seat map is a .csv or .json file.`;
      return;
    }
    this.seatMap = { name: chosen.name, text: await chosen.text(), format };
    this.alert.textContent = "";
  }

  private async checkSeatMap(): Promise<void> {
    const file = this.seatMap;
    const performanceId = this.performanceId.value.trim();
    if (!file || performanceId === "") {
      this.alert.textContent = "Choose a performance and a .csv or .json seat map file first.";
      return;
    }
    const result = await this.admin.importSeatMap({
      concertDateId: performanceId,
      format: file.format,
      text: file.text,
      validateOnly: true,
      requestId: "",
    });
    this.alert.textContent = "";
    this.done.textContent = "";
    const problems = result.problems;
    this.checked = problems.length === 0 ? { performanceId, file } : undefined;
    this.checkedCount = result.seatCount;
    replaceChildren(
      this.seatMapReport,
      h(
        "p",
        { "data-testid": "seatmap-summary", "data-problems": problems.length },
        problems.length === 0
          ? `${file.name}: ${result.seatCount} seats, no problems. Nothing was written yet.`
          : `${file.name}: ${problems.length} bad row(s). Nothing was written; fix the file and check it again.`,
      ),
      problems.length > 0 &&
        h(
          "table",
          { "data-testid": "seatmap-problems" },
          h(
            "thead",
            {},
            h("tr", {}, h("th", {}, "Line"), h("th", {}, "Column"), h("th", {}, "Problem")),
          ),
          h(
            "tbody",
            {},
            ...problems.map((p) =>
              h(
                "tr",
                { "data-line": p.line },
                h("td", {}, String(p.line)),
                h("td", {}, p.field || "(row)"),
                h("td", {}, p.description),
              ),
            ),
          ),
        ),
    );
    this.refreshImportButton();
  }

  private async importSeatMap(): Promise<void> {
    const checked = this.checked;
    if (!checked) return;
    const result = await this.admin.importSeatMap({
      concertDateId: checked.performanceId,
      format: checked.file.format,
      text: checked.file.text,
      validateOnly: false,
      requestId: newRequestId(),
    });
    this.checked = undefined;
    replaceChildren(this.seatMapReport);
    this.succeed(`Imported ${result.seatCount} seats: the performance is on sale to fans.`);
  }

  // ---- the sale: opening, pause and resume

  private readonly saleState = h("p", { "data-testid": "sale-state" });

  private async readSale(concertId: string): Promise<void> {
    const { settings } = await this.admin.getSaleSettings({ concertId });
    if (concertId === this.concertId) this.renderSale(settings);
  }

  private renderSale(settings: SaleSettings | undefined): void {
    const opening = settings?.opensAt
      ? `Opens at ${timestampDate(settings.opensAt).toLocaleString("en-GB")}`
      : "No scheduled opening";
    this.saleState.dataset.paused = String(settings?.paused ?? false);
    this.saleState.textContent = `${opening}. Admission ${settings?.paused ? "paused" : "running"}.`;
  }

  /** Runs one sale action and shows the settings it left. */
  private saleAction(
    button: HTMLButtonElement,
    done: string,
    call: (concertId: string, requestId: string) => Promise<{ settings?: SaleSettings }>,
  ): void {
    const concertId = this.concertId;
    void this.act(button, async () => {
      const { settings } = await call(concertId, newRequestId());
      if (concertId === this.concertId) this.renderSale(settings);
      this.succeed(done);
    });
  }

  private salePanel(): HTMLElement {
    const opensAt = h("input", { type: "datetime-local", name: "opensAt" });
    const openNow = h("button", { type: "button" }, "Open the sale now");
    const schedule = h("button", { type: "button", class: "secondary" }, "Schedule the opening");
    const reason = h("input", { name: "pauseReason", maxlength: 500 });
    const pause = h("button", { type: "button" }, "Pause admission");
    const resume = h("button", { type: "button", class: "secondary" }, "Resume admission");
    const open = (at: Date, button: HTMLButtonElement, done: string) =>
      this.saleAction(button, done, (concertId, requestId) =>
        this.admin.updateSaleSettings({
          concertId,
          settings: { opensAt: timestampFromDate(at) },
          updateMask: { paths: ["opens_at"] },
          requestId,
        }),
      );
    openNow.addEventListener("click", () => open(new Date(), openNow, "The sale is open."));
    schedule.addEventListener("click", () => {
      if (opensAt.value === "") {
        this.alert.textContent = "Choose when the sale opens first.";
        return;
      }
      open(new Date(opensAt.value), schedule, "The opening is scheduled.");
    });
    pause.addEventListener("click", () =>
      this.saleAction(pause, "Admission is paused.", (concertId, requestId) =>
        this.admin.pauseAdmission({ concertId, reason: reason.value.trim(), requestId }),
      ),
    );
    resume.addEventListener("click", () =>
      this.saleAction(resume, "Admission resumed.", (concertId, requestId) =>
        this.admin.resumeAdmission({ concertId, requestId }),
      ),
    );
    return h(
      "section",
      { class: "panel", "data-panel": "sale" },
      h("h2", {}, "Sale"),
      this.saleState,
      h("div", { class: "row" }, openNow),
      h(
        "div",
        { class: "fields" },
        h("label", {}, "Opens at (your browser's local time)", opensAt),
        h("div", { class: "row" }, schedule),
      ),
      h(
        "div",
        { class: "fields" },
        h("label", {}, "Why pause (kept in the audit trail)", reason),
        h("div", { class: "row" }, pause, resume),
      ),
      h(
        "p",
        { class: "hint" },
        "Fans who come before the opening wait in a lobby and are drawn in random order then. A pause admits nobody new; the line keeps its order.",
      ),
    );
  }

  // ---- live figures

  private readonly figures = h("dl", { class: "figures", "data-testid": "sale-figures" });

  private statsPanel(): HTMLElement {
    return h(
      "section",
      { class: "panel", "data-panel": "stats" },
      h("h2", {}, "Live figures"),
      h("p", { class: "hint" }, `Read again every ${STATS_INTERVAL_MS / 1000} seconds.`),
      this.figures,
    );
  }

  private stopStats(): void {
    clearTimeout(this.statsTimer);
    this.statsTimer = undefined;
  }

  private restartStats(): void {
    this.stopStats();
    replaceChildren(this.figures);
    if (this.concertId !== "" && this.key) void this.readStats(this.concertId);
  }

  private async readStats(concertId: string): Promise<void> {
    try {
      const { stats } = await this.admin.getSaleStats({ concertId });
      if (concertId !== this.concertId || !this.key) return;
      if (stats) this.renderStats(stats);
    } catch (error) {
      if (concertId !== this.concertId) return;
      this.fail(error);
      if (!this.key) return;
    }
    if (concertId === this.concertId) {
      this.statsTimer = setTimeout(() => void this.readStats(concertId), STATS_INTERVAL_MS);
    }
  }

  private renderStats(stats: SaleStats): void {
    const eta = stats.estimatedTimeToSellOut
      ? `${Math.round(durationMs(stats.estimatedTimeToSellOut) / 60_000)} min`
      : "-";
    const rows: [string, string, string][] = [
      ["total", "Seats", formatCount(stats.totalSeats, "en")],
      ["available", "Available", formatCount(stats.availableSeats, "en")],
      ["held", "Held", formatCount(stats.heldSeats, "en")],
      ["sold", "Sold", formatCount(stats.soldSeats, "en")],
      ["revenue", "Revenue", formatWon(stats.revenue, "en")],
      [
        "refunds",
        "Refunds",
        `${formatCount(stats.refundedTickets, "en")} (${formatWon(stats.refundedAmount, "en")})`,
      ],
      [
        "rate",
        "Last 5 minutes",
        `${formatCount(stats.soldLastFiveMinutes, "en")} sold, ${stats.salesPerMinute.toFixed(1)}/min`,
      ],
      ["eta", "Sells out in", eta],
      [
        "read-at",
        "Read at",
        stats.readTime ? timestampDate(stats.readTime).toLocaleTimeString("en-GB") : "-",
      ],
    ];
    replaceChildren(
      this.figures,
      ...rows.flatMap(([id, label, value]) => [
        h("dt", {}, label),
        h("dd", { "data-testid": `stat-${id}` }, value),
      ]),
    );
  }

  // ---- refunds

  private refundPanel(): HTMLElement {
    const reservation = h("input", { name: "reservationId", required: true });
    const reason = h("input", { name: "reason", required: true, maxlength: 500 });
    const submit = h("button", { type: "submit" }, "Refund");
    const form = h(
      "form",
      {
        onsubmit: (event: Event) => {
          event.preventDefault();
          void this.act(submit, async () => {
            const result = await this.admin.refundTicket({
              reservationId: reservation.value.trim(),
              note: reason.value.trim(),
              requestId: newRequestId(),
            });
            form.reset();
            this.succeed(
              `Refunded ${formatWon(result.payment?.amount ?? 0n, "en")} to ${result.wallet?.userId}; the seat is back on sale.`,
            );
          });
        },
      },
      h("label", {}, "Reservation id", reservation),
      h("label", {}, "Reason (kept in the audit trail)", reason),
      submit,
    );
    return h(
      "section",
      { class: "panel", "data-panel": "refund" },
      h("h2", {}, "Refund a ticket"),
      form,
    );
  }
}
