import http from "node:http";
import type { AddressInfo } from "node:net";
import { createLogger } from "../../../server/src/logger.js";
import {
  type EventDestination,
  OutboxRelay,
  type PublishedEvent,
  type RelaySettings,
  verifyWebhookSignature,
  WebhookDestination,
} from "../../../server/src/modules/events/index.js";
import type { Database } from "../../../server/src/persistence/database.js";
import type { FakeClock } from "../../support/fake-clock.js";

/** The webhook secret of the tests (at least 32 characters, as the configuration demands). */
export const SECRET = "test-webhook-secret-0123456789abcdef";

/** One POST the receiver got. */
export interface Received {
  readonly event: PublishedEvent;
  readonly eventIdHeader: string | undefined;
  /** Whether the signature verified against the raw body and the test's clock. */
  readonly signed: boolean;
}

/**
 * A local webhook receiver (node:http on port 0) that verifies each
 * delivery's signature and records it. While `down`, it answers 503 and
 * records nothing but the attempt.
 */
export class WebhookReceiver {
  readonly received: Received[] = [];
  attempts = 0;
  down = false;
  private constructor(
    private readonly server: http.Server,
    readonly url: string,
  ) {}

  /** `clock` checks the signatures' times: a test's fake clock, or `{ ms: Date.now }`. */
  static async start(clock: Pick<FakeClock, "ms">): Promise<WebhookReceiver> {
    let self: WebhookReceiver | undefined;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const receiver = self;
        if (receiver === undefined) return;
        receiver.attempts += 1;
        if (receiver.down) {
          res.writeHead(503).end();
          return;
        }
        const body = Buffer.concat(chunks).toString("utf8");
        const header = req.headers["stagedoor-signature"];
        receiver.received.push({
          event: JSON.parse(body) as PublishedEvent,
          eventIdHeader: req.headers["stagedoor-event-id"] as string | undefined,
          signed: verifyWebhookSignature(
            SECRET,
            typeof header === "string" ? header : undefined,
            body,
            Math.floor(clock.ms() / 1000),
          ),
        });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    self = new WebhookReceiver(server, `http://127.0.0.1:${port}/hooks`);
    return self;
  }

  /** The event ids received for a concert, in arrival order. */
  idsOf(concertId: string): string[] {
    return this.received.filter((r) => r.event.concert_id === concertId).map((r) => r.event.id);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Relay settings for tests: the production defaults, fixed jitter. */
export const TEST_RELAY: RelaySettings = {
  retryMs: 72 * 3_600_000,
  retryBaseDelayMs: 1000,
  retryMaxDelayMs: 3_600_000,
  retentionMs: 168 * 3_600_000,
  random: () => 0,
};

/** A webhook destination for the receiver, signed with {@link SECRET}. */
export function webhookTo(receiver: WebhookReceiver, clock: FakeClock): WebhookDestination {
  return new WebhookDestination({ url: receiver.url, secret: SECRET, timeoutMs: 5000, clock });
}

/** A relay over `db` to `destinations`, on the test's clock. */
export function relayTo(
  db: Database,
  destinations: readonly EventDestination[],
  clock: FakeClock,
  settings: Partial<RelaySettings> = {},
): OutboxRelay {
  return new OutboxRelay(
    db,
    destinations,
    clock,
    { ...TEST_RELAY, ...settings },
    createLogger("silent"),
  );
}
