import type { Config, EventsConfig } from "./config.js";
import { createBackgroundJobs } from "./jobs/background-jobs.js";
import { createIntervalJob, type IntervalJob } from "./jobs/interval-job.js";
import type { Logger } from "./logger.js";
import {
  AdminService,
  CatalogAdminService,
  EventAdminService,
  SaleSettingsService,
  SaleStatsReader,
} from "./modules/admin/index.js";
import { CatalogService } from "./modules/catalog/index.js";
import {
  type EventDestination,
  NatsDestination,
  OutboxRelay,
  WebhookDestination,
} from "./modules/events/index.js";
import type { AdminKey, UserVerifier } from "./modules/identity/index.js";
import { AdminKeyring, TokenCodec } from "./modules/identity/index.js";
import { PaymentsService } from "./modules/payments/index.js";
import type { QueueLimits, QueueStore } from "./modules/queue/index.js";
import {
  QueueService,
  QueueWatchHub,
  SeatGateWriter,
  type WatchHubOptions,
} from "./modules/queue/index.js";
import { ReservationsService } from "./modules/reservations/index.js";
import { EntryCodes, ReadSessions, TicketsService } from "./modules/tickets/index.js";
import type { WalletLimits } from "./modules/wallet/index.js";
import { WalletService } from "./modules/wallet/index.js";
import type { Database } from "./persistence/database.js";
import { POOL_ACQUIRE_TIMEOUT_MS } from "./persistence/orm.js";
import { WriteBatcher, type WriteBatchSettings } from "./persistence/write-batcher.js";
import type { Clock } from "./shared/clock.js";
import type { QueueEvents } from "./shared/queue-events.js";
import { IGNORED_SALE_EVENTS, type SaleEvents } from "./shared/sale-events.js";
import type { HttpLimits } from "./transport/http-server.js";

/** The rules' tunables, resolved from configuration. */
export interface Settings {
  readonly queue: QueueLimits;
  readonly holdTtlMs: number;
  readonly wallet: WalletLimits;
  readonly watch: WatchHubOptions;
  readonly http: HttpLimits;
  /** The operator API keys (hashes only); none disables the operator API. */
  readonly adminKeys: readonly AdminKey[];
  /** Where the outbox relay publishes events, and its retry and retention settings. */
  readonly events: EventsConfig;
  /** How recharges and payments share transactions (group commit). */
  readonly writes: WriteBatchSettings;
}

/** Derives the rules' tunables from the configuration. */
export function settingsFromConfig(config: Config): Settings {
  const idleMs = config.queueIdleSeconds * 1000;
  const { limits } = config;
  return {
    queue: {
      maxActive: config.queueMaxActive,
      admissionTtlMs: config.tokenTtlSeconds * 1000,
      idleMs,
      // Dead tokens are remembered for an hour so callers learn why they stopped working.
      graceMs: 3_600_000,
    },
    holdTtlMs: config.holdTtlSeconds * 1000,
    wallet: { maxRecharge: config.walletMaxRecharge, maxBalance: config.walletMaxBalance },
    // Open streams count as activity three times per idle window, so a
    // watcher never loses their place to a late tick. The fans who may be
    // admitted next (twice the admission limit) see their position move
    // within a second, everyone else within five.
    watch: {
      tickMs: 250,
      heartbeatMs: 10_000,
      touchEveryMs: Math.floor(idleMs / 3),
      maxPerToken: limits.watchStreamsPerToken,
      maxStreams: limits.watchStreamsMax,
      frontSize: 2 * config.queueMaxActive,
      frontEveryMs: 1000,
      farEveryMs: 5000,
    },
    http: {
      sniffTimeoutMs: limits.sniffTimeoutSeconds * 1000,
      headersTimeoutMs: limits.headersTimeoutSeconds * 1000,
      requestTimeoutMs: limits.requestTimeoutSeconds * 1000,
      keepAliveTimeoutMs: limits.keepAliveTimeoutSeconds * 1000,
      http1MaxPipelinedRequests: limits.http1MaxPipelinedRequests,
      sendTimeoutMs: limits.sendTimeoutSeconds * 1000,
      http2MaxConcurrentStreams: limits.http2MaxConcurrentStreams,
      http2IdleTimeoutMs: limits.http2IdleTimeoutSeconds * 1000,
    },
    adminKeys: config.adminKeys,
    events: config.events,
    writes: { ...config.writeBatch, maxWaitMs: POOL_ACQUIRE_TIMEOUT_MS },
  };
}

/** Everything the services are built from. */
export interface ServiceDeps {
  readonly db: Database;
  /**
   * Where catalog reads go (a read replica, DATABASE_READ_URL); `db` when
   * omitted. Only the catalog's immutable facts are read from it.
   */
  readonly readDb?: Database;
  readonly store: QueueStore;
  readonly tokenSecret: Buffer;
  /** Keys the MACs of tickets' entry codes (TICKET_SIGNING_KEY, or one kept in PostgreSQL). */
  readonly ticketKey: Buffer;
  readonly verifier: UserVerifier;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly settings: Settings;
  /** Told of holds, sales and refunds once committed (the metrics); nobody when omitted. */
  readonly saleEvents?: SaleEvents;
  /** Told of admissions as the admitter drains them (the metrics); nobody when omitted. */
  readonly queueEvents?: QueueEvents;
}

/** The application services, wired once per process. */
export interface Services {
  readonly catalog: CatalogService;
  readonly queue: QueueService;
  readonly watchHub: QueueWatchHub;
  readonly reservations: ReservationsService;
  readonly wallet: WalletService;
  readonly payments: PaymentsService;
  /** The group commit recharges and payments share (its figures feed the metrics). */
  readonly writes: WriteBatcher;
  /** The group commit of holds (its figures feed the metrics, added to those of {@link writes}). */
  readonly holdWrites: WriteBatcher;
  readonly seatGate: SeatGateWriter;
  readonly admin: AdminService;
  readonly catalogAdmin: CatalogAdminService;
  readonly saleStats: SaleStatsReader;
  readonly adminKeys: AdminKeyring;
  readonly readSessions: ReadSessions;
  readonly tickets: TicketsService;
  /** Publishes the outbox (the "outbox-relay" job runs it). */
  readonly relay: OutboxRelay;
  readonly eventAdmin: EventAdminService;
  readonly jobs: readonly IntervalJob[];
  readonly saleSettings: SaleSettingsService;
}

/**
 * Wires the domain services together. Shared by `main.ts` and the tests, so
 * the tests exercise the same object graph production runs.
 */
export function buildServices(deps: ServiceDeps): Services {
  const { db, clock, logger, settings } = deps;
  const events = deps.saleEvents ?? IGNORED_SALE_EVENTS;
  const catalog = new CatalogService(db, deps.readDb ?? db, clock, deps.store.seats, logger);
  // Writes committed seat changes to the gate kept in the queue's store.
  const seatGate = new SeatGateWriter(deps.store.seats, clock, logger);
  const queue = new QueueService(
    deps.store,
    new TokenCodec(deps.tokenSecret),
    deps.verifier,
    catalog,
    clock,
    settings.queue,
    deps.queueEvents,
  );
  const watchHub = new QueueWatchHub(queue, deps.store, clock, settings.watch, logger);
  // Holds share transactions under load (group commit), as recharges and
  // payments do, in lanes of their own: a hold never waits behind a payment.
  const holdWrites = WriteBatcher.over(db, settings.writes);
  const reservations = new ReservationsService(
    db,
    catalog,
    deps.store.seats,
    seatGate,
    clock,
    settings.holdTtlMs,
    events,
    holdWrites,
  );
  // Recharges and payments share transactions under load (group commit).
  const writes = WriteBatcher.over(db, settings.writes);
  const wallet = new WalletService(db, writes, clock, settings.wallet);
  const payments = new PaymentsService(db, writes, catalog, queue, seatGate, clock, logger, events);
  const admin = new AdminService(db, seatGate, clock, settings.wallet.maxBalance, events);
  const catalogAdmin = new CatalogAdminService(db, catalog, clock);
  const saleStats = new SaleStatsReader(db, clock, queue);
  const adminKeys = new AdminKeyring(settings.adminKeys);
  const readSessions = new ReadSessions(db, deps.verifier, clock, deps.store);
  const tickets = new TicketsService(db, new EntryCodes(deps.ticketKey), clock);
  const relay = new OutboxRelay(
    db,
    eventDestinations(settings.events, clock),
    clock,
    settings.events,
    logger,
  );
  const eventAdmin = new EventAdminService(db, clock, settings.events.retryMs);
  const saleSettings = new SaleSettingsService(db, deps.store, clock);
  const jobs = [
    ...createBackgroundJobs({
      queue,
      reservations,
      db,
      clock,
      logger,
      relay,
      relayIntervalMs: settings.events.relayIntervalMs,
    }),
    // Persists each opening draw the store made (any instance; one record per concert).
    createIntervalJob("opening-draw-recorder", 2_000, () => saleSettings.recordDraws(), logger),
  ];
  return {
    catalog,
    queue,
    watchHub,
    reservations,
    wallet,
    payments,
    writes,
    holdWrites,
    seatGate,
    admin,
    catalogAdmin,
    saleStats,
    adminKeys,
    readSessions,
    tickets,
    relay,
    eventAdmin,
    jobs,
    saleSettings,
  };
}

/** The configured destinations of events: NATS JetStream, then each webhook URL. */
function eventDestinations(config: EventsConfig, clock: Clock): EventDestination[] {
  const destinations: EventDestination[] = [];
  if (config.natsUrl !== undefined) {
    destinations.push(
      new NatsDestination({
        url: config.natsUrl,
        stream: config.natsStream,
        subjectPrefix: config.natsSubjectPrefix,
        timeoutMs: config.webhookTimeoutMs,
      }),
    );
  }
  for (const url of config.webhookUrls) {
    destinations.push(
      new WebhookDestination({
        url,
        // Validated by the configuration: set whenever there are URLs.
        secret: config.webhookSecret ?? "",
        timeoutMs: config.webhookTimeoutMs,
        clock,
      }),
    );
  }
  return destinations;
}
