import http from "node:http";

/** The outcome of one load phase. */
export interface PhaseResult {
  readonly name: string;
  readonly requests: number;
  readonly ok: number;
  readonly failed: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Failures by HTTP status and Connect code, e.g. {"400 failed_precondition": 12}. */
  readonly failures: Readonly<Record<string, number>>;
}

/** A Connect-JSON request over HTTP/1.1 keep-alive: what browsers and curl speak. */
export interface ConnectCall {
  readonly path: string;
  readonly body: unknown;
  readonly token?: string;
}

/** A response: status and parsed JSON body. */
export interface ConnectReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/**
 * A tiny Connect-JSON client on a keep-alive agent. The load generator runs in
 * its own process and must stay cheap, so it skips the SDK's message
 * machinery: the server still does all of its protocol work.
 */
export class ConnectJsonClient {
  private readonly agent: http.Agent;

  constructor(
    private readonly host: string,
    private readonly port: number,
    sockets: number,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  }

  call(request: ConnectCall): Promise<ConnectReply> {
    const payload = JSON.stringify(request.body);
    const headers: http.OutgoingHttpHeaders = {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(payload),
    };
    if (request.token) headers.authorization = `Bearer ${request.token}`;
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.host,
          port: this.port,
          method: "POST",
          path: request.path,
          headers,
          agent: this.agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let body: Record<string, unknown> = {};
            try {
              body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
            } catch {
              body = { raw: text };
            }
            resolve({ status: res.statusCode ?? 0, body });
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? 0;
}

/**
 * Runs `count` calls with `concurrency` in flight and measures each one.
 * `makeCall(i)` builds call i; `isOk` decides what counts as success.
 */
export async function runPhase(
  name: string,
  client: ConnectJsonClient,
  count: number,
  concurrency: number,
  makeCall: (index: number) => ConnectCall,
  onReply: (index: number, reply: ConnectReply) => void = () => {},
  isOk: (reply: ConnectReply) => boolean = (reply) => reply.status === 200,
): Promise<PhaseResult> {
  const latencies = new Float64Array(count);
  const failures: Record<string, number> = {};
  let next = 0;
  let ok = 0;
  const started = performance.now();
  const worker = async () => {
    for (;;) {
      const index = next++;
      if (index >= count) return;
      const call = makeCall(index);
      const t0 = performance.now();
      let reply: ConnectReply;
      try {
        reply = await client.call(call);
      } catch (error) {
        reply = { status: 0, body: { code: (error as Error).message } };
      }
      latencies[index] = performance.now() - t0;
      onReply(index, reply);
      if (isOk(reply)) {
        ok++;
      } else {
        const key = `${reply.status} ${String(reply.body.code ?? "")}`.trim();
        failures[key] = (failures[key] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const seconds = (performance.now() - started) / 1000;
  const sorted = latencies.slice().sort();
  return {
    name,
    requests: count,
    ok,
    failed: count - ok,
    seconds,
    perSecond: count / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    failures,
  };
}
