import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";

/** One event as a webhook delivers it (the JSON body). */
export interface ReceivedEvent {
  readonly id: string;
  readonly type: string;
  readonly concert_id: string;
  readonly sequence: number;
  readonly occurred_at: string;
  readonly data: Record<string, unknown>;
  /** Whether `Stagedoor-Signature` matched the raw body under the shared secret. */
  readonly signatureValid: boolean;
}

/** How far a delivery's signed time may be from this clock. */
const TOLERANCE_SECONDS = 300;

/**
 * What any receiver does with a delivery, as the server's README shows:
 * `Stagedoor-Signature: t=<unix seconds>,v1=<hex>` is HMAC-SHA256 of
 * `<t>.<raw body>` under the webhook secret; the time must be recent, and
 * the comparison takes constant time.
 */
function signatureMatches(secret: string, header: string | undefined, rawBody: string): boolean {
  const fields = new Map(
    (header ?? "").split(",").map((part) => {
      const at = part.indexOf("=");
      return [part.slice(0, at).trim(), part.slice(at + 1).trim()] as const;
    }),
  );
  const t = fields.get("t") ?? "";
  const v1 = fields.get("v1") ?? "";
  if (!/^\d+$/.test(t) || !/^[0-9a-f]{64}$/.test(v1)) return false;
  if (Math.abs(Date.now() / 1000 - Number(t)) > TOLERANCE_SECONDS) return false;
  const expected = createHmac("sha256", secret).update(`${t}.${rawBody}`).digest();
  return timingSafeEqual(Buffer.from(v1, "hex"), expected);
}

/**
 * A local webhook receiver: accepts every POST (2xx, so the server counts it
 * delivered), keeps each event once by its id (deliveries are at least once)
 * and records whether its signature was valid.
 */
export class WebhookReceiver {
  readonly #events = new Map<string, ReceivedEvent>();
  readonly #waiters = new Set<() => void>();

  private constructor(
    private readonly server: Server,
    private readonly secret: string,
  ) {}

  /** Starts listening on 127.0.0.1:`port`. */
  static async listen(port: number, secret: string): Promise<WebhookReceiver> {
    let receiver: WebhookReceiver | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        receiver?.accept(
          Buffer.concat(chunks).toString("utf8"),
          req.headers["stagedoor-signature"],
        );
        res.writeHead(204).end();
      });
    });
    receiver = new WebhookReceiver(server, secret);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    return receiver;
  }

  private accept(rawBody: string, signature: string | string[] | undefined): void {
    let event: Omit<ReceivedEvent, "signatureValid">;
    try {
      event = JSON.parse(rawBody) as Omit<ReceivedEvent, "signatureValid">;
    } catch {
      return;
    }
    if (typeof event.id !== "string" || this.#events.has(event.id)) return;
    const header = Array.isArray(signature) ? signature[0] : signature;
    this.#events.set(event.id, {
      ...event,
      signatureValid: signatureMatches(this.secret, header, rawBody),
    });
    for (const wake of this.#waiters) wake();
  }

  /** The events of one concert received so far, in sequence order. */
  eventsOf(concertId: string): ReceivedEvent[] {
    return [...this.#events.values()]
      .filter((event) => event.concert_id === concertId)
      .sort((a, b) => a.sequence - b.sequence);
  }

  /** Resolves true once `done` holds for the events received, false after `timeoutMs`. */
  async waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return true;
    return new Promise<boolean>((resolve) => {
      const finish = (result: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(result);
      };
      const check = () => {
        if (done()) finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.#waiters.add(check);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
