// A scripted on-sale from an empty database, through @stagedoor/sdk only: a
// concert and a performance, a seat map imported from a file (dry run first),
// an opening scheduled a few seconds ahead, a crowd that arrives early and
// waits in the lobby, the draw, sales (with collisions on the favourite seat),
// the emergency brake while a late fan waits, a refund, the sale's figures,
// and the webhook events and metrics the server produced.
// Run: `npm run demo:on-sale` against a server (see README.md for the settings).
import { randomBytes, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import {
  createAdminClient,
  createStagedoorClient,
  errorReason,
  type GetOpeningDrawResponse,
  OpeningDrawState,
  PaymentState,
  QueueTokenState,
  ReservationState,
  type SaleStats,
  type Seat,
  SeatState,
  type StagedoorAdminClient,
  seatMapFormatOf,
} from "@stagedoor/sdk";
import { createNodeTransport } from "@stagedoor/sdk/node";
import { Fan, type Purchase, SoldCounter, type Venue, won } from "./fans.js";
import { type OnSaleSettings, readOnSaleSettings, SettingsError } from "./settings.js";
import { type ReceivedEvent, WebhookReceiver } from "./webhook-receiver.js";

const started = Date.now();
/** One line of the transcript, stamped with the seconds since the start. */
const log = (line: string) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}`);
const heading = (title: string) => console.log(`\n== ${title}`);
const row = (label: string, value: string | number) =>
  console.log(`  ${`${label}:`.padEnd(26)}${value}`);

/** `SEAT_UNAVAILABLE: seat 3 is held`, or the status code when the error has no reason. */
function describe(error: unknown): string {
  const connect = ConnectError.from(error);
  return `${errorReason(error) ?? Code[connect.code]}: ${connect.rawMessage}`;
}

/** Polls `read` until it returns a value (not undefined), failing after `ms`. */
async function until<T>(what: string, ms: number, read: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms / 1000} s`);
    await sleep(200);
  }
}

/** The record of the opening draw, once the server has drawn the lobby. */
function readDraw(admin: StagedoorAdminClient, concertId: string) {
  return until(
    "the opening draw",
    30_000,
    async (): Promise<GetOpeningDrawResponse | undefined> => {
      try {
        return await admin.getOpeningDraw({ concertId });
      } catch (error) {
        if (errorReason(error) === "OPENING_DRAW_NOT_FOUND") return undefined;
        throw error;
      }
    },
  );
}

function printStats(stats: SaleStats | undefined): void {
  if (!stats) throw new Error("GetSaleStats answered no figures");
  const sellOut = stats.estimatedTimeToSellOut;
  row("seats (total)", stats.totalSeats);
  row(
    "available / held / sold",
    `${stats.availableSeats} / ${stats.heldSeats} / ${stats.soldSeats}`,
  );
  row("revenue", won(stats.revenue));
  row("refunded tickets", stats.refundedTickets);
  row("refunded amount", won(stats.refundedAmount));
  row("sold in the last 5 min", stats.soldLastFiveMinutes);
  row("sales per minute", stats.salesPerMinute.toFixed(1));
  row("time to sell out", sellOut ? `about ${sellOut.seconds} s` : "unknown");
  row("waiting / admitted", `${stats.waitingCount} / ${stats.admittedCount}`);
  row("admissions per minute", stats.admissionsPerMinute.toFixed(1));
}

/** A short, readable line for one webhook event. */
function eventLine(event: ReceivedEvent): string {
  const data = event.data;
  const facts = [
    typeof data.seat_number === "number" ? `seat ${data.seat_number}` : "",
    typeof data.user_id === "string" ? `user ${data.user_id}` : "",
    typeof data.amount === "number" || typeof data.amount === "string"
      ? `amount ${data.amount}`
      : "",
  ].filter((fact) => fact !== "");
  const signature = event.signatureValid ? "signature valid" : "SIGNATURE INVALID";
  return `  #${String(event.sequence).padStart(3)} ${event.type.padEnd(16)} ${facts.join(", ")} (${signature})`;
}

/** The lines of a Prometheus scrape about the waiting room, sales and holds (of this concert). */
function metricLines(text: string, concertId: string): string[] {
  return text
    .split("\n")
    .filter((line) => /^stagedoor_(queue_|sales|holds|refunds)/.test(line))
    .filter((line) => !line.includes("_bucket{"))
    .filter((line) => !line.includes("concert=") || line.includes(`concert="${concertId}"`));
}

async function onSale(
  settings: OnSaleSettings,
  transport: Transport,
  admin: StagedoorAdminClient,
  receiver: WebhookReceiver | undefined,
): Promise<number> {
  const run = randomBytes(3).toString("hex");
  const anonymous = createStagedoorClient(transport);
  console.log(
    `on-sale: Stagedoor at ${settings.baseUrl}, fans in ${settings.identity} mode, run ${run}`,
  );
  // A server started a moment ago (`npm start &`) may still be starting.
  await until("the server's start", 120_000, () =>
    anonymous.health.check({}).then(
      () => true,
      () => undefined,
    ),
  );

  heading("1. A concert from a seat-map file");
  const { concert } = await admin.createConcert({
    title: `Stagedoor On-Sale ${run}`,
    venue: "KSPO Dome",
    timeZone: "Asia/Seoul",
    requestId: randomUUID(),
  });
  if (!concert) throw new Error("CreateConcert answered no concert");
  log(`CreateConcert: concert ${concert.id} "${concert.title}" at ${concert.venue}`);
  const { performance } = await admin.createPerformance({
    concertId: concert.id,
    startTime: timestampFromDate(new Date(Date.now() + 30 * 86_400_000)),
    requestId: randomUUID(),
  });
  if (!performance) throw new Error("CreatePerformance answered no performance");
  log(`CreatePerformance: performance ${performance.id} on ${performance.date}`);
  const file = path.basename(settings.seatMapPath);
  const format = seatMapFormatOf(file);
  if (format === undefined) throw new SettingsError("ONSALE_SEAT_MAP must be a .csv or .json file");
  const text = await readFile(settings.seatMapPath, "utf8");
  const dryRun = await admin.importSeatMap({
    concertDateId: performance.id,
    format,
    text,
    validateOnly: true,
  });
  log(
    `ImportSeatMap ${file} (dry run): ${dryRun.seatCount} seats, ${dryRun.problems.length} bad rows, written: ${dryRun.applied}`,
  );
  for (const problem of dryRun.problems) {
    log(`  line ${problem.line} (${problem.field || "row"}): ${problem.description}`);
  }
  if (dryRun.problems.length > 0) return 1;
  const imported = await admin.importSeatMap({
    concertDateId: performance.id,
    format,
    text,
    requestId: randomUUID(),
  });
  log(`ImportSeatMap ${file}: ${imported.seatCount} seats, written: ${imported.applied}`);

  heading("2. The opening, scheduled");
  const opensAt = new Date(Date.now() + settings.opensInSeconds * 1000);
  await admin.updateSaleSettings({
    requestId: randomUUID(),
    concertId: concert.id,
    settings: { opensAt: timestampFromDate(opensAt), maxAdmitted: settings.maxAdmitted },
    updateMask: { paths: ["opens_at", "max_admitted"] },
  });
  const scheduled = await admin.getSaleSettings({ concertId: concert.id });
  log(
    `UpdateSaleSettings: opens at ${opensAt.toISOString()} (in ${settings.opensInSeconds} s), at most ${settings.maxAdmitted} fans admitted at once; draw ${OpeningDrawState[scheduled.drawState]}`,
  );

  heading(`3. A crowd of ${settings.fans} fans arrives early`);
  const sold = new SoldCounter();
  let pauseDue: () => void = () => undefined;
  const pauseReady = new Promise<void>((resolve) => {
    pauseDue = resolve;
  });
  const venue: Venue = {
    transport,
    identity: { mode: settings.identity, hmacSecret: settings.hmacSecret },
    concertId: concert.id,
    concertDateId: performance.id,
    log,
    onSold: (count) => {
      if (count >= settings.pauseAfter) pauseDue();
    },
  };
  const crowd = Array.from(
    { length: settings.fans },
    (_, i) => new Fan(`fan-${run}-${String(i + 1).padStart(2, "0")}`, venue, sold),
  );
  for (const fan of crowd) {
    const { status } = await fan.arrive();
    const place = status?.position ? `position ${status.position}` : "position unknown";
    const opens = status?.opensAt ? timestampDate(status.opensAt).toISOString() : "not scheduled";
    log(
      `${fan.name}: IssueQueueToken → ${QueueTokenState[status?.state ?? 0]}, ${place}, opens at ${opens}`,
    );
  }
  const { seats } = await anonymous.catalog.listAvailableSeats({ concertDateId: performance.id });
  const favourite = [...seats].sort((a, b) => a.number - b.number)[0];
  if (favourite) {
    log(
      `every fan studied the seat map and wants seat ${favourite.number} (${favourite.grade}, ${won(favourite.price)})`,
    );
  }
  const sales: Purchase[] = [];
  let failures = 0;
  const buy = (fan: Fan, first: Seat | undefined) =>
    fan.buy(first).then(
      (purchase) => {
        if (purchase) sales.push(purchase);
      },
      (error: unknown) => {
        failures += 1;
        log(`${fan.name}: failed: ${describe(error)}`);
      },
    );
  // Every fan watches their place from now on: in the lobby, then in line.
  const lobbyDone = Promise.all(crowd.map((fan) => buy(fan, favourite)));
  void lobbyDone.then(() => pauseDue());

  heading("4. The opening and the draw");
  log(`waiting for the opening at ${opensAt.toISOString()}`);
  await sleep(Math.max(0, opensAt.getTime() - Date.now()));
  const draw = await readDraw(admin, concert.id);
  log(
    `GetOpeningDraw: drawn at ${draw.drawnAt ? timestampDate(draw.drawnAt).toISOString() : "?"}, lobby of ${draw.lobbySize}, seed ${draw.seed}`,
  );
  log(`  drawn order (token ids): ${draw.order.map((id) => id.slice(0, 8)).join(" ")}`);

  heading("5. Sales");
  await pauseReady;

  heading(`6. The emergency brake after ${sold.count} tickets`);
  const paused = await admin.pauseAdmission({
    requestId: randomUUID(),
    concertId: concert.id,
    reason: "scripted: the payment provider is slow",
  });
  log(`PauseAdmission: paused ${paused.settings?.paused ? "yes" : "no"}`);
  const drained = await until("the end of every running admission", 60_000, async () => {
    const { stats } = await admin.getSaleStats({ concertId: concert.id });
    return stats && stats.admittedCount === 0 ? stats : undefined;
  });
  log(
    `every fan admitted before the brake has finished: admitted ${drained.admittedCount}, waiting ${drained.waitingCount}`,
  );
  const late = new Fan(`fan-${run}-late`, venue, sold);
  const arrival = await late.arrive();
  log(
    `${late.name}: IssueQueueToken → ${QueueTokenState[arrival.status?.state ?? 0]}, position ${arrival.status?.position} of ${arrival.status?.waitingCount}, admission paused: ${arrival.status?.admissionPaused ? "yes" : "no"}`,
  );
  const lateDone = buy(late, undefined);
  // Nobody is admitted while paused: look again after a moment.
  await sleep(2000);
  const { status: stillWaiting } = await late.client.queue.getQueueStatus({});
  const { stats: whilePaused } = await admin.getSaleStats({ concertId: concert.id });
  log(
    `${late.name} after 2 s: ${QueueTokenState[stillWaiting?.state ?? 0]} at position ${stillWaiting?.position}; GetSaleStats: admitted ${whilePaused?.admittedCount}, waiting ${whilePaused?.waitingCount}`,
  );
  const resumed = await admin.resumeAdmission({ requestId: randomUUID(), concertId: concert.id });
  log(`ResumeAdmission: paused ${resumed.settings?.paused ? "yes" : "no"}`);
  await Promise.all([lobbyDone, lateDone]);
  log(`every fan is done: ${sales.length} tickets sold, ${failures} fans failed`);

  heading("7. A refund");
  const refunded = sales[0];
  let refundAmount = 0n;
  if (refunded) {
    const refund = await admin.refundTicket({
      reservationId: refunded.reservation.id,
      requestId: randomUUID(),
      note: "scripted: the fan cannot come",
    });
    refundAmount = refund.entry?.amount ?? 0n;
    log(
      `RefundTicket ${refunded.reservation.id} (${refunded.fan}, seat ${refunded.reservation.seatNumber}): reservation ${ReservationState[refund.reservation?.state ?? 0]}, payment ${PaymentState[refund.payment?.state ?? 0]}`,
    );
    const { wallet } = await createStagedoorClient({
      transport,
      token: refunded.token,
    }).wallet.getWallet({});
    log(`${refunded.fan}: ${won(refundAmount)} back, wallet balance ${won(wallet?.balance ?? 0n)}`);
    const { seat } = await anonymous.catalog.getSeat({ seatId: refunded.reservation.seatId });
    log(`seat ${seat?.number} is ${SeatState[seat?.state ?? 0]} again`);
  }

  heading("8. The sale's figures (GetSaleStats)");
  const { stats } = await admin.getSaleStats({ concertId: concert.id });
  printStats(stats);
  const paidTotal = sales.reduce((sum, sale) => sum + sale.reservation.price, 0n);
  const checks: [string, boolean, string][] = [
    [
      "sold seats = tickets bought − refunds",
      stats?.soldSeats === sales.length - (refunded ? 1 : 0),
      `${stats?.soldSeats} = ${sales.length} − ${refunded ? 1 : 0}`,
    ],
    [
      "revenue = paid − refunded",
      stats?.revenue === paidTotal - refundAmount,
      `${won(stats?.revenue ?? 0n)} = ${won(paidTotal)} − ${won(refundAmount)}`,
    ],
    [
      "no seat sold twice",
      new Set(sales.map((sale) => sale.reservation.seatId)).size === sales.length,
      `${sales.length} tickets on ${new Set(sales.map((sale) => sale.reservation.seatId)).size} seats`,
    ],
    ["every fan finished", failures === 0, `${failures} failed`],
  ];

  heading("9. Events");
  if (receiver) {
    const arrived = await receiver.waitUntil(
      () => receiver.eventsOf(concert.id).some((event) => event.type === "ticket.refunded"),
      settings.eventsTimeoutMs,
    );
    const events = receiver.eventsOf(concert.id);
    for (const event of events) console.log(eventLine(event));
    const valid = events.filter((event) => event.signatureValid).length;
    const gapless = events.every((event, i) => event.sequence === i + 1);
    log(
      `${events.length} events on the webhook receiver, sequence 1..${events.length} ${gapless ? "without gaps" : "WITH GAPS"}, ${valid}/${events.length} signatures valid`,
    );
    checks.push([
      "webhooks arrived, signed and in order",
      arrived && gapless && valid === events.length,
      arrived ? `${events.length} events` : "no ticket.refunded event in time",
    ]);
  } else {
    log(
      "no webhook receiver: set ONSALE_WEBHOOK_PORT and WEBHOOK_SECRET, and the server's WEBHOOK_URLS",
    );
  }

  heading("10. Metrics");
  if (settings.metricsUrl) {
    const response = await fetch(settings.metricsUrl);
    if (!response.ok) throw new Error(`${settings.metricsUrl} answered HTTP ${response.status}`);
    for (const line of metricLines(await response.text(), concert.id)) console.log(`  ${line}`);
  } else {
    log("no metrics: set STAGEDOOR_METRICS_URL to the server's /metrics (METRICS_PORT)");
  }

  heading("Checks");
  for (const [name, ok, detail] of checks) {
    console.log(`check ${name}: ${ok ? "OK" : "FAILED"} (${detail})`);
  }
  return checks.every(([, ok]) => ok) ? 0 : 1;
}

async function main(): Promise<number> {
  const settings = readOnSaleSettings();
  const transport = createNodeTransport({ baseUrl: settings.baseUrl });
  const admin = createAdminClient({ transport, apiKey: settings.adminKey });
  const receiver =
    settings.webhookPort !== undefined && settings.webhookSecret !== undefined
      ? await WebhookReceiver.listen(settings.webhookPort, settings.webhookSecret)
      : undefined;
  try {
    return await onSale(settings, transport, admin, receiver);
  } finally {
    await receiver?.close();
  }
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error(
    `on-sale failed: ${error instanceof SettingsError ? error.message : describe(error)}`,
  );
  process.exitCode = 1;
}
