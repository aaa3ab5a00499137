import * as grpc from "@grpc/grpc-js";
import type { UnaryMethod } from "./stagedoor-grpc.js";

/** Per-call settings: the deadline every call carries, and the caller's queue token. */
export interface CallSettings {
  /** How long the call may take; grpc-js fails it with DEADLINE_EXCEEDED after that. */
  readonly deadlineMs: number;
  /** Sent as `authorization: Bearer <token>` metadata for the token's user. */
  readonly token?: string;
}

/**
 * Makes one unary call with a deadline (and the bearer token when given) and
 * returns the response as a promise; a failure rejects with the grpc-js
 * `ServiceError` (code, details, and the trailers in `metadata`). A backend
 * should never call without a deadline: a stuck call would otherwise hold
 * its own request forever.
 *
 * @example
 * ```ts
 * const { dates } = await unaryCall(catalog, catalog.ListConcertDates, { concertId }, { deadlineMs: 2_000 });
 * ```
 */
export function unaryCall<Req, Res>(
  client: grpc.Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  settings: CallSettings,
): Promise<Res> {
  const metadata = new grpc.Metadata();
  if (settings.token !== undefined) metadata.set("authorization", `Bearer ${settings.token}`);
  return new Promise<Res>((resolve, reject) => {
    method.call(
      client,
      request,
      metadata,
      { deadline: Date.now() + settings.deadlineMs },
      (error, response) => {
        if (error) reject(error);
        else if (response === undefined) reject(new Error("the call ended without a response"));
        else resolve(response);
      },
    );
  });
}
