import type { Logger } from "../logger.js";
import type { QueueService } from "../modules/queue/index.js";
import type { Clock } from "../shared/clock.js";
import { DomainError } from "../shared/domain-error.js";
import { createIntervalJob, type IntervalJob } from "./interval-job.js";

/** How long a simulated fan stays admitted ("shopping") before leaving, in ms. */
export const DEMO_STAY_MS = { min: 3_000, max: 8_000 } as const;
/** How long a simulated fan who left waits before joining the back of the line again, in ms. */
export const DEMO_REST_MS = { min: 0, max: 5_000 } as const;
/** How often the crowd moves; well within QUEUE_IDLE_SECONDS, so waiting fans keep their places. */
export const DEMO_TICK_MS = 1_000;

/** The user id of the n-th simulated fan (1-based), recognisable in logs and listings. */
export const demoFanId = (n: number) => `demo-fan-${String(n).padStart(2, "0")}`;

/** What the demo crowd needs. */
export interface DemoCrowdDeps {
  readonly queue: QueueService;
  /** The concert the crowd queues for (the demo concert). */
  readonly concertId: () => Promise<string>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How many simulated fans there are. */
  readonly size: number;
  /** A number in [0, 1); tests pass their own. */
  readonly random?: () => number;
}

/** One simulated fan between two ticks. */
interface DemoFan {
  readonly userId: string;
  token: string | undefined;
  /** Local ms when this fan leaves again, once admitted. */
  leavesAt: number | undefined;
  /** Local ms before which a fan who left does not join again. */
  restUntil: number;
}

/**
 * The demo's crowd: simulated fans who keep the waiting room of the embedded
 * default busy, so a new user sees the line, their place in it and their turn
 * coming (`DEMO_CROWD`, with a small `QUEUE_MAX_ACTIVE`). Each fan joins
 * through the same queue service as everyone, keeps their place by checking
 * their status every tick (as a fan's page does), stays a few seconds once
 * admitted, leaves (freeing the slot at once), rests, and joins the back of
 * the line again. They never hold, pay or top up, so they take no seats and
 * no money; they only take places in line and admission slots.
 */
export function createDemoCrowd(deps: DemoCrowdDeps): IntervalJob {
  const random = deps.random ?? Math.random;
  const between = (range: { min: number; max: number }) =>
    range.min + Math.floor(random() * (range.max - range.min + 1));
  const fans: DemoFan[] = Array.from({ length: deps.size }, (_, i) => ({
    userId: demoFanId(i + 1),
    token: undefined,
    leavesAt: undefined,
    restUntil: 0,
  }));

  async function move(fan: DemoFan, concertId: string, now: number): Promise<void> {
    if (fan.token === undefined) {
      if (now < fan.restUntil) return;
      const issued = await deps.queue.issueToken({
        concertId,
        userId: fan.userId,
        assertion: undefined,
      });
      fan.token = issued.token;
      fan.leavesAt = undefined;
      return;
    }
    let session: Awaited<ReturnType<QueueService["authenticate"]>>;
    try {
      session = await deps.queue.authenticate(fan.token);
    } catch (error) {
      // The place or admission is gone (expired, or the store forgot it): join again.
      if (error instanceof DomainError && error.kind === "unauthenticated") {
        fan.token = undefined;
        return;
      }
      throw error;
    }
    if (session.status.state === "waiting") return;
    fan.leavesAt ??= now + between(DEMO_STAY_MS);
    if (now < fan.leavesAt) return;
    await deps.queue.leave(session.principal);
    fan.token = undefined;
    fan.restUntil = now + between(DEMO_REST_MS);
  }

  return createIntervalJob(
    "demo-crowd",
    DEMO_TICK_MS,
    async () => {
      const concertId = await deps.concertId();
      const now = deps.clock.now().getTime();
      // In order, so the crowd's places in line follow its numbering.
      for (const fan of fans) await move(fan, concertId, now);
    },
    deps.logger,
  );
}
