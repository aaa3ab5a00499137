import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  endStreamFlag,
  endStreamFromJson,
  errorFromJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse } from "@connectrpc/connect/protocol-grpc-web";

/**
 * How a hand-made request is framed and labelled: Connect unary, Connect
 * streaming, gRPC (over h2c) and gRPC-Web (over HTTP/1.1).
 */
export type RawProtocol = "connect" | "connect-stream" | "grpc" | "grpc-web";

/** One hand-made request. */
export interface RawRequest {
  readonly protocol: RawProtocol;
  readonly path: string;
  /** The message bytes, framed here for the enveloped protocols. */
  readonly message: Uint8Array | string;
  /** "json" labels the body as JSON (`application/json`, `application/grpc-web+json`, …). */
  readonly codec?: "proto" | "json";
  /** The request's declared encoding, if any. */
  readonly encoding?: string;
  /** Frame flags; 1 marks a compressed frame (the default when `encoding` is given). */
  readonly flags?: number;
  /** The message is already framed (or deliberately not): send it as is. */
  readonly framed?: boolean;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One enveloped message (gRPC, gRPC-Web, Connect streaming). */
export function frame(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** Splits an enveloped body into its frames. */
export function frames(body: Uint8Array): { flags: number; payload: Uint8Array }[] {
  const out = [];
  let offset = 0;
  while (offset + 5 <= body.length) {
    const length = new DataView(body.buffer, body.byteOffset + offset + 1, 4).getUint32(0);
    out.push({
      flags: body[offset] ?? 0,
      payload: body.subarray(offset + 5, offset + 5 + length),
    });
    offset += 5 + length;
  }
  return out;
}

function bytesOf(message: Uint8Array | string): Uint8Array {
  return typeof message === "string" ? new TextEncoder().encode(message) : message;
}

/**
 * Sends a hand-made request and decodes the answer wherever its protocol puts
 * the status: "ok", or the error with its details as a client would read it.
 * An answer that is in no protocol at all becomes an `unknown` error naming
 * the HTTP status, so that assertions on the code fail with a clear message.
 */
export async function rawCall(baseUrl: string, request: RawRequest): Promise<"ok" | ConnectError> {
  const json = request.codec === "json";
  const message = bytesOf(request.message);
  const flags = request.flags ?? (request.encoding ? 1 : 0);
  const framed = (bytes: Uint8Array) => (request.framed ? bytes : frame(flags, bytes));
  if (request.protocol === "grpc") {
    return grpcCall(baseUrl, request.path, framed(message), {
      "content-type": json ? "application/grpc+json" : "application/grpc+proto",
      ...(request.encoding ? { "grpc-encoding": request.encoding } : {}),
      ...request.headers,
    });
  }
  const headers: Record<string, string> = { ...request.headers };
  let body = message;
  switch (request.protocol) {
    case "connect":
      headers["content-type"] = json ? "application/json" : "application/proto";
      headers["connect-protocol-version"] = "1";
      if (request.encoding) headers["content-encoding"] = request.encoding;
      break;
    case "connect-stream":
      headers["content-type"] = json ? "application/connect+json" : "application/connect+proto";
      if (request.encoding) headers["connect-content-encoding"] = request.encoding;
      body = framed(body);
      break;
    case "grpc-web":
      headers["content-type"] = json ? "application/grpc-web+json" : "application/grpc-web+proto";
      if (request.encoding) headers["grpc-encoding"] = request.encoding;
      body = framed(body);
      break;
  }
  const res = await fetch(`${baseUrl}${request.path}`, { method: "POST", headers, body });
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (request.protocol === "connect") {
    if (res.status === 200) return "ok";
    return errorFromJsonBytes(
      bytes,
      res.headers,
      new ConnectError(`HTTP ${res.status} without a Connect error body`, Code.Unknown),
    );
  }
  const last = frames(bytes).at(-1);
  if (request.protocol === "connect-stream") {
    if (last === undefined || (last.flags & endStreamFlag) !== endStreamFlag) {
      return new ConnectError(`HTTP ${res.status} without an end-stream message`, Code.Unknown);
    }
    return endStreamFromJson(last.payload).error ?? "ok";
  }
  // gRPC-Web: the status is in the trailer frame, or in the headers of a trailers-only answer.
  const trailer =
    last !== undefined && (last.flags & trailerFlag) === trailerFlag
      ? trailerParse(last.payload)
      : res.headers;
  return statusOf(trailer, res.status);
}

function statusOf(trailer: Headers, httpStatus: number): "ok" | ConnectError {
  if (!trailer.has("grpc-status")) {
    return new ConnectError(`HTTP ${httpStatus} without a grpc-status`, Code.Unknown);
  }
  return findTrailerError(trailer) ?? "ok";
}

/** A gRPC call over h2c; the status from the trailers (or the headers of a trailers-only answer). */
function grpcCall(
  baseUrl: string,
  path: string,
  body: Uint8Array,
  headers: Record<string, string>,
): Promise<"ok" | ConnectError> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      te: "trailers",
      ...headers,
    });
    const seen = new Headers();
    let httpStatus = 0;
    const read = (received: http2.IncomingHttpHeaders) => {
      for (const [key, value] of Object.entries(received)) {
        if (key === ":status") httpStatus = Number(value);
        else if (!key.startsWith(":") && typeof value === "string") seen.set(key, value);
      }
    };
    stream.on("response", read);
    stream.on("trailers", read);
    stream.on("data", () => {});
    stream.on("close", () => {
      session.close();
      resolve(statusOf(seen, httpStatus));
    });
    stream.on("error", () => {});
    stream.end(body);
  });
}
