import {
  connect,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  RetentionPolicy,
} from "nats";
import type { Clock } from "../../shared/clock.js";
import { EVENT_ID_HEADER, SIGNATURE_HEADER, signWebhook } from "./signature.js";

/** An event as it leaves the box office: the JSON body of a webhook and of a NATS message. */
export interface PublishedEvent {
  /** The stable event id: the same on every delivery of the event, to every destination. */
  readonly id: string;
  readonly type: string;
  readonly concert_id: string;
  /** 1, 2, 3... per concert, in commit order, without gaps. */
  readonly sequence: number;
  /** ISO 8601, UTC. */
  readonly occurred_at: string;
  readonly data: unknown;
}

/** Where the relay sends events. `deliver` resolves once the destination has accepted the event. */
export interface EventDestination {
  /** Names the destination in `outbox_delivery` and to operators (`nats`, `webhook:<url>`). */
  readonly key: string;
  deliver(event: PublishedEvent): Promise<void>;
  close(): Promise<void>;
}

/** A delivery the destination refused or did not answer in time; the message is short and safe to store. */
export class DeliveryFailed extends Error {
  override readonly name = "DeliveryFailed";
}

/** What a webhook destination needs. */
export interface WebhookOptions {
  readonly url: string;
  readonly secret: string;
  readonly timeoutMs: number;
  readonly clock: Clock;
}

/**
 * POSTs each event as JSON to one URL, signed (see signature.ts). Any 2xx
 * answer is an acceptance; anything else, a network error or no answer
 * within the timeout is a failure the relay retries.
 */
export class WebhookDestination implements EventDestination {
  readonly key: string;

  constructor(private readonly options: WebhookOptions) {
    this.key = `webhook:${options.url}`;
  }

  async deliver(event: PublishedEvent): Promise<void> {
    const body = JSON.stringify(event);
    const t = Math.floor(this.options.clock.now().getTime() / 1000);
    let status: number;
    try {
      const response = await fetch(this.options.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "stagedoor-webhooks/1",
          [EVENT_ID_HEADER]: event.id,
          [SIGNATURE_HEADER]: signWebhook(this.options.secret, body, t),
        },
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      status = response.status;
      // Drain the answer so the connection can be reused; its content is not needed.
      await response.arrayBuffer().catch(() => undefined);
    } catch (error) {
      const name = error instanceof Error ? error.name : "Error";
      if (name === "TimeoutError") {
        throw new DeliveryFailed(`no answer within ${this.options.timeoutMs} ms`);
      }
      const cause = (error as { cause?: { code?: unknown } }).cause?.code;
      throw new DeliveryFailed(`request failed: ${typeof cause === "string" ? cause : name}`);
    }
    if (status < 200 || status > 299) throw new DeliveryFailed(`answered HTTP ${status}`);
  }

  async close(): Promise<void> {}
}

/** What the NATS destination needs. */
export interface NatsOptions {
  readonly url: string;
  readonly stream: string;
  readonly subjectPrefix: string;
  /** How long to wait for a connection and for each publish acknowledgement. */
  readonly timeoutMs: number;
}

/**
 * Publishes each event to JetStream on `<prefix>.<concert id>.<type>`, with
 * the event id as `Nats-Msg-Id`, so the stream itself drops a redelivery
 * inside its duplicate window (two minutes by default). Connects on first
 * use and creates the stream (subjects `<prefix>.>`) when it is missing; a
 * lost connection makes deliveries fail (and be retried) until it is back.
 */
export class NatsDestination implements EventDestination {
  readonly key = "nats";
  private connecting: Promise<{ nc: NatsConnection; js: JetStreamClient }> | undefined;

  constructor(private readonly options: NatsOptions) {}

  /** The subject of an event. */
  subjectOf(event: Pick<PublishedEvent, "concert_id" | "type">): string {
    return `${this.options.subjectPrefix}.${event.concert_id}.${event.type}`;
  }

  async deliver(event: PublishedEvent): Promise<void> {
    const { nc, js } = await this.connection();
    // A connection that gave up reconnecting is replaced on the next delivery.
    if (nc.isClosed()) this.connecting = undefined;
    try {
      await js.publish(this.subjectOf(event), JSON.stringify(event), {
        msgID: event.id,
        timeout: this.options.timeoutMs,
        expect: { streamName: this.options.stream },
      });
    } catch (error) {
      throw new DeliveryFailed(
        `JetStream refused: ${error instanceof Error ? error.message : String(error)}`.slice(
          0,
          300,
        ),
      );
    }
  }

  private connection(): Promise<{ nc: NatsConnection; js: JetStreamClient }> {
    this.connecting ??= (async () => {
      const nc = await connect({
        servers: this.options.url,
        timeout: this.options.timeoutMs,
        name: "stagedoor-outbox-relay",
      });
      try {
        await ensureStream(await nc.jetstreamManager(), this.options);
      } catch (error) {
        await nc.close();
        throw error;
      }
      return { nc, js: nc.jetstream() };
    })().catch((error: unknown) => {
      this.connecting = undefined;
      throw new DeliveryFailed(
        `NATS unavailable: ${error instanceof Error ? error.message : String(error)}`.slice(0, 300),
      );
    });
    return this.connecting;
  }

  async close(): Promise<void> {
    const current = this.connecting;
    this.connecting = undefined;
    const connected = await current?.catch(() => undefined);
    await connected?.nc.drain().catch(() => undefined);
  }
}

/** Creates the stream when it does not exist yet (an existing one is left as the operator set it). */
async function ensureStream(jsm: JetStreamManager, options: NatsOptions): Promise<void> {
  try {
    await jsm.streams.info(options.stream);
    return;
  } catch (error) {
    if (!/not found/i.test(error instanceof Error ? error.message : "")) throw error;
  }
  await jsm.streams.add({
    name: options.stream,
    subjects: [`${options.subjectPrefix}.>`],
    retention: RetentionPolicy.Limits,
  });
}
