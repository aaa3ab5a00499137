import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * Reads a request's JSON object body, as the REST routes do. Shared by the
 * bare node:http floors so that each does the same per-request work.
 */
export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  if (typeof parsed !== "object" || parsed === null)
    throw new Error("the body must be a JSON object");
  return parsed as Record<string, unknown>;
}

/** Writes a JSON response with a content-length, as the REST routes do. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(payload),
  });
  res.end(payload);
}

/** The port a floor listens on: PORT, as the bench passes it. */
export function floorPort(): number {
  const port = Number(process.env.PORT);
  if (!Number.isInteger(port) || port <= 0) throw new Error("PORT must be set");
  return port;
}
