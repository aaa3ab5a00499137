/**
 * The Stagedoor SDK: every service descriptor, message schema, message type
 * and enum of the Stagedoor API, plus a client factory.
 *
 * @example
 * ```ts
 * import { createStagedoorClient } from "@stagedoor/sdk";
 * import { createConnectTransport } from "@connectrpc/connect-node";
 *
 * const transport = createConnectTransport({ baseUrl: "http://127.0.0.1:8080", httpVersion: "1.1" });
 * const stagedoor = createStagedoorClient(transport);
 * const { dates } = await stagedoor.catalog.listConcertDates({ concertId });
 * ```
 *
 * @packageDocumentation
 */

export { createStagedoorClient, type StagedoorClient } from "./clients.js";
export { ERROR_DOMAIN } from "./errors.js";
// The generated files are re-exported whole (the one place `export *` is
// allowed): tsc rejects clashing names, which keeps every name unique.
export * from "./gen/google/rpc/error_details_pb.js";
export * from "./gen/grpc/health/v1/health_pb.js";
export * from "./gen/stagedoor/catalog/v1/catalog_service_pb.js";
export * from "./gen/stagedoor/common/v1/error_reason_pb.js";
export * from "./gen/stagedoor/payment/v1/payment_service_pb.js";
export * from "./gen/stagedoor/queue/v1/queue_service_pb.js";
export * from "./gen/stagedoor/reservation/v1/reservation_service_pb.js";
export * from "./gen/stagedoor/wallet/v1/wallet_service_pb.js";
