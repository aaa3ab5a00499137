import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createStagedoorClient, QueueTokenState, type StagedoorClient } from "@stagedoor/sdk";
import { createNodeTransport, type NodeProtocol } from "@stagedoor/sdk/node";
import { expect } from "chai";
import { uniqueUser } from "../rpc/rpc-kit.js";

/**
 * An SDK client built the way the README tells users to: the options form
 * with the Node transport factory, the token attached by the SDK.
 */
export function sdkClient(
  baseUrl: string,
  options: { token?: string; interceptors?: Interceptor[]; protocol?: NodeProtocol } = {},
): StagedoorClient {
  const { protocol = "connect", token, interceptors = [] } = options;
  return createStagedoorClient({
    baseUrl,
    transport: (factoryOptions) => createNodeTransport({ ...factoryOptions, protocol }),
    ...(token === undefined ? {} : { token }),
    interceptors,
  });
}

/** A fan with a queue token, and how to give the place up again. */
export interface Fan {
  readonly userId: string;
  readonly token: string;
  leave(): Promise<void>;
}

/**
 * Issues a queue token for a new user and checks where it stands. `leave()`
 * gives the place (or admission) up, ignoring a token that is already gone.
 */
export async function joinQueue(
  baseUrl: string,
  concertId: string,
  label: string,
  expected: "admitted" | "waiting",
): Promise<Fan> {
  const userId = uniqueUser(label);
  const { token, status } = await sdkClient(baseUrl).queue.issueQueueToken({ concertId, userId });
  const state = expected === "admitted" ? QueueTokenState.ADMITTED : QueueTokenState.WAITING;
  expect(status?.state, `${userId} ${expected}`).to.equal(state);
  return {
    userId,
    token,
    async leave() {
      await sdkClient(baseUrl, { token })
        .queue.leaveQueue({})
        .catch(() => undefined);
    },
  };
}

/** Counts the calls of each method that pass through a client. */
export class CallCounter {
  readonly counts = new Map<string, number>();

  readonly interceptor: Interceptor = (next) => (req) => {
    this.counts.set(req.method.name, this.of(req.method.name) + 1);
    return next(req);
  };

  of(method: string): number {
    return this.counts.get(method) ?? 0;
  }
}

/** The error a promise rejects with, failing if it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection, but the promise resolved");
}

/** Asserts a rejection is a ConnectError with the given code and returns it. */
export async function expectConnectError(
  promise: Promise<unknown>,
  code: Code,
): Promise<ConnectError> {
  const error = await rejectionOf(promise);
  expect(error, String(error)).to.be.instanceOf(ConnectError);
  const connectError = ConnectError.from(error);
  expect(Code[connectError.code], connectError.message).to.equal(Code[code]);
  return connectError;
}
