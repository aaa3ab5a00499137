/** The waiting room: stores, rules, and the watch-stream fan-out. */
export { MemoryQueueStore, type MemoryQueueStoreOptions } from "./memory-queue-store.js";
export { drawOrder, newDrawSeed } from "./opening-draw.js";
export {
  type ConcertDirectory,
  QueueService,
  type QueueStatusView,
  type QueueTokenState,
  type Session,
} from "./queue.service.js";
export type {
  IssueInput,
  IssueResult,
  LineDigest,
  LineSettings,
  LookupWithSeat,
  OpeningDrawRecord,
  QueueLimits,
  QueueSnapshot,
  QueueStore,
  SeatRef,
  StoredTokenState,
} from "./queue-store.js";
export { QueueWatchHub, type WatchEvent, type WatchHubOptions } from "./queue-watch-hub.js";
export { type QueueScriptContext, queueScripts } from "./redis-queue-scripts.js";
export { type QueueRedis, type QueueRedisClient, RedisQueueStore } from "./redis-queue-store.js";
export {
  contiguous,
  type DateChanges,
  type DateChangesQuery,
  type GateDate,
  type GateSeatState,
  gateRefuses,
  SEAT_ENTRY_TTL_MS,
  SEAT_LOG_LIMIT,
  type SeatChange,
  type SeatGate,
  type SeatGateEntry,
  supersedes,
} from "./seat-gate.js";
export { SeatGateWriter } from "./seat-gate-writer.js";
