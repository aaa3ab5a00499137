import type { connectNodeAdapter } from "@connectrpc/connect-node";

type NodeHandler = ReturnType<typeof connectNodeAdapter>;
/** A request as both the HTTP/1.1 and the HTTP/2 compatibility servers hand it over. */
export type NodeRequest = Parameters<NodeHandler>[0];
/** A response of either server, typed as Connect's Node adapter takes it. */
export type NodeResponse = Parameters<NodeHandler>[1];

/** An HTTP failure with the seed's `{"error": "..."}` body. */
export class HttpError extends Error {
  override readonly name = "HttpError";

  constructor(
    readonly status: number,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** The largest JSON body the REST routes accept. */
const MAX_BODY_BYTES = 16 * 1024;

/** Reads a JSON object body, refusing anything too large, malformed or not an object. */
export async function readJsonObject(req: NodeRequest): Promise<Record<string, unknown>> {
  const type = String(req.headers["content-type"] ?? "");
  if (!/^application\/json\b/i.test(type)) {
    throw new HttpError(415, "the body must be JSON (Content-Type: application/json)");
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, "the body is too large");
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "the body is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new HttpError(400, "the body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

/** A JSON body already serialised and encoded (for bodies that are rendered once and reused). */
export class JsonBytes {
  constructor(readonly bytes: Buffer) {}
}

/** Writes a JSON response that no cache keeps. */
export function sendJson(
  res: NodeResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const payload = body instanceof JsonBytes ? body.bytes : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(
      typeof payload === "string" ? Buffer.byteLength(payload) : payload.length,
    ),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(payload);
}
