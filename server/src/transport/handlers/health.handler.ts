import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  type HealthCheckRequest,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@stagedoor/sdk";

/** Tells whether the server can do its work right now (database and queue store reachable, not draining). */
export interface ServingProbe {
  isServing(): Promise<boolean>;
}

/** How often Watch re-probes; also how stale a cached probe may be. */
const PROBE_INTERVAL_MS = 2_000;

/**
 * The standard `grpc.health.v1.Health` service, so load balancers and
 * orchestrators can probe the server with stock tooling. The empty service
 * name means the whole server; each Stagedoor service can be asked for too.
 */
export class HealthHandler implements ServiceImpl<typeof Health> {
  private cached: { at: number; serving: boolean } | undefined;

  constructor(
    private readonly probe: ServingProbe,
    private readonly services: readonly string[],
  ) {}

  async check(req: HealthCheckRequest) {
    if (!this.knows(req.service)) {
      throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
    }
    return { status: await this.status() };
  }

  async *watch(req: HealthCheckRequest, ctx: HandlerContext) {
    if (!this.knows(req.service)) {
      yield { status: ServingStatus.SERVICE_UNKNOWN };
      return;
    }
    let last: ServingStatus | undefined;
    while (!ctx.signal.aborted) {
      const status = await this.status();
      if (status !== last) {
        last = status;
        yield { status };
      }
      await sleep(PROBE_INTERVAL_MS, ctx.signal);
    }
  }

  async list() {
    const status = await this.status();
    const statuses: Record<string, { status: ServingStatus }> = { "": { status } };
    for (const service of this.services) statuses[service] = { status };
    return { statuses };
  }

  private knows(service: string): boolean {
    return service === "" || this.services.includes(service);
  }

  private async status(): Promise<ServingStatus> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at >= PROBE_INTERVAL_MS) {
      this.cached = { at: now, serving: await this.probe.isServing() };
    }
    return this.cached.serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
