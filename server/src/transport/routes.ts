import type { DescMethod } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  AdminService as AdminApi,
  CatalogService as CatalogApi,
  Health,
  type HoldSeatRequest,
  PaymentService as PaymentApi,
  QueueService as QueueApi,
  ReservationService as ReservationApi,
  WalletService as WalletApi,
} from "@stagedoor/sdk";
import type { Services } from "../container.js";
import type { LimitedAction } from "../modules/ratelimit/index.js";
import { AdminHandler } from "./handlers/admin.handler.js";
import { CatalogHandler } from "./handlers/catalog.handler.js";
import { HealthHandler, type ServingProbe } from "./handlers/health.handler.js";
import { PaymentHandler } from "./handlers/payment.handler.js";
import { QueueHandler } from "./handlers/queue.handler.js";
import { ReservationHandler } from "./handlers/reservation.handler.js";
import { WalletHandler } from "./handlers/wallet.handler.js";
import type { SeatOfCall } from "./interceptors/auth.interceptor.js";

/** The Stagedoor services, by full name (what health checks may ask about). */
export const STAGEDOOR_SERVICES = [
  QueueApi.typeName,
  CatalogApi.typeName,
  ReservationApi.typeName,
  WalletApi.typeName,
  PaymentApi.typeName,
  AdminApi.typeName,
];

/**
 * Methods that need no queue token: issuing one, the public catalog, and
 * health. Held as the method descriptors Connect hands interceptors, so the
 * check per call is one set lookup.
 */
export const PUBLIC_METHODS: ReadonlySet<DescMethod> = new Set<DescMethod>([
  QueueApi.method.issueQueueToken,
  ...CatalogApi.methods,
  ...Health.methods,
]);

/**
 * The rate-limited methods and the kind of call each counts as (see
 * SECURITY.md, rate limits); the REST routes name theirs in rest-router.ts.
 */
export const LIMITED_METHODS: ReadonlyMap<DescMethod, LimitedAction> = new Map<
  DescMethod,
  LimitedAction
>([
  [QueueApi.method.issueQueueToken, "token"],
  [ReservationApi.method.holdSeat, "hold"],
  [PaymentApi.method.createPayment, "payment"],
  [WalletApi.method.rechargeWallet, "payment"],
]);

/**
 * The operator API's methods: they need an operator API key, which the admin
 * auth interceptor checks, and never a queue token.
 */
export const ADMIN_METHODS: ReadonlySet<DescMethod> = new Set<DescMethod>(AdminApi.methods);

/** Methods the queue-token interceptor leaves alone: the public ones and the operator's. */
export const NO_QUEUE_TOKEN_METHODS: ReadonlySet<DescMethod> = new Set<DescMethod>([
  ...PUBLIC_METHODS,
  ...ADMIN_METHODS,
]);

/**
 * The seat a call is about, when the auth interceptor should read its gate
 * entry with the token: a seat hold whose seat's facts are already in memory
 * (the first hold of a seat in a process reads the gate separately, so that
 * nothing reaches the database before the caller is authenticated).
 */
export function seatOfCall(catalog: Services["catalog"]): SeatOfCall {
  const holdSeat = ReservationApi.method.holdSeat;
  return (req) => {
    if (req.method !== holdSeat) return undefined;
    const seat = catalog.cachedSeat((req.message as HoldSeatRequest).seatId);
    return seat && { dateId: seat.concertDateId, seatId: seat.id };
  };
}

/** Registers every service with its handler. */
export function createRoutes(services: Services, probe: ServingProbe) {
  return (router: ConnectRouter) => {
    router.service(QueueApi, new QueueHandler(services.queue, services.watchHub));
    router.service(CatalogApi, new CatalogHandler(services.catalog));
    router.service(ReservationApi, new ReservationHandler(services.reservations));
    router.service(WalletApi, new WalletHandler(services.wallet));
    router.service(PaymentApi, new PaymentHandler(services.payments));
    router.service(
      AdminApi,
      new AdminHandler(
        services.admin,
        services.catalogAdmin,
        services.saleStats,
        services.saleSettings,
      ),
    );
    router.service(Health, new HealthHandler(probe, STAGEDOOR_SERVICES));
  };
}
