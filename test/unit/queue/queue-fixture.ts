import { randomBytes } from "node:crypto";
import { TokenCodec } from "../../../server/src/modules/identity/token-codec.js";
import type { UserVerifier } from "../../../server/src/modules/identity/user-verifier.js";
import { TrustUserVerifier } from "../../../server/src/modules/identity/user-verifier.js";
import { MemoryQueueStore } from "../../../server/src/modules/queue/memory-queue-store.js";
import {
  type ConcertDirectory,
  QueueService,
} from "../../../server/src/modules/queue/queue.service.js";
import type { QueueLimits, QueueStore } from "../../../server/src/modules/queue/queue-store.js";
import type { QueueEvents } from "../../../server/src/shared/queue-events.js";
import { FakeClock } from "../../support/fake-clock.js";

export const CONCERT = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9e01";
export const OTHER_CONCERT = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9e02";
export const UNKNOWN_CONCERT = "0b6c1f0e-5d1a-4c39-9a4e-2f7d3c8b9eff";

export const DEFAULT_LIMITS: QueueLimits = {
  maxActive: 2,
  admissionTtlMs: 60_000,
  idleMs: 30_000,
  graceMs: 600_000,
};

/** A concert directory that knows a fixed set of concerts, and which of them have ended. */
export class FakeConcertDirectory implements ConcertDirectory {
  readonly calls: string[] = [];
  readonly ended = new Set<string>();
  constructor(private readonly ids: ReadonlySet<string>) {}
  async concertExists(concertId: string): Promise<boolean> {
    this.calls.push(concertId);
    return this.ids.has(concertId);
  }
  async saleEnded(concertId: string): Promise<boolean> {
    return this.ended.has(concertId);
  }
}

/** Everything a queue test needs, built around a real in-process store. */
export interface QueueFixture {
  readonly clock: FakeClock;
  readonly store: MemoryQueueStore;
  readonly codec: TokenCodec;
  readonly concerts: FakeConcertDirectory;
  readonly queue: QueueService;
  readonly limits: QueueLimits;
  /** Issues a token for a user of the default concert. */
  issue(userId: string, concertId?: string): ReturnType<QueueService["issueToken"]>;
}

export function queueFixture(
  options: {
    limits?: Partial<QueueLimits>;
    store?: (inner: MemoryQueueStore) => QueueStore;
    verifier?: UserVerifier;
    events?: QueueEvents;
  } = {},
): QueueFixture {
  const limits: QueueLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const clock = new FakeClock();
  const store = new MemoryQueueStore(limits);
  const codec = new TokenCodec(randomBytes(32));
  const concerts = new FakeConcertDirectory(new Set([CONCERT, OTHER_CONCERT]));
  const queue = new QueueService(
    options.store ? options.store(store) : store,
    codec,
    options.verifier ?? new TrustUserVerifier(),
    concerts,
    clock,
    limits,
    options.events,
  );
  return {
    clock,
    store,
    codec,
    concerts,
    queue,
    limits,
    issue: (userId, concertId = CONCERT) =>
      queue.issueToken({ concertId, userId, assertion: undefined }),
  };
}
