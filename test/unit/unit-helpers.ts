import { expect } from "chai";
import { DomainError, type ErrorKind } from "../../server/src/shared/domain-error.js";
import type { ErrorReason } from "../../server/src/shared/error-reasons.js";

/** Narrows away null/undefined, failing the test instead of using `!`. */
export function must<T>(value: T | null | undefined, what = "value"): T {
  if (value === null || value === undefined) throw new Error(`expected ${what} to be present`);
  return value;
}

/** Runs `fn` and returns what it threw; fails the test when it did not throw. */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to throw, but it returned");
}

/** Awaits `promise` and returns what it rejected with; fails the test when it resolved. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the promise to reject, but it resolved");
}

/** Asserts that `error` is a DomainError of the given kind and reason, and returns it. */
export function expectDomainError(
  error: unknown,
  kind: ErrorKind,
  reason: ErrorReason,
): DomainError {
  expect(error, String(error)).to.be.instanceOf(DomainError);
  const domainError = error as DomainError;
  expect({ kind: domainError.kind, reason: domainError.reason }).to.deep.equal({ kind, reason });
  return domainError;
}

/** Asserts that `fn` throws a DomainError of the given kind and reason, and returns it. */
export function expectThrowsDomain(
  fn: () => unknown,
  kind: ErrorKind,
  reason: ErrorReason,
): DomainError {
  return expectDomainError(thrownBy(fn), kind, reason);
}

/** Asserts that `promise` rejects with a DomainError of the given kind and reason. */
export async function expectRejectsDomain(
  promise: Promise<unknown>,
  kind: ErrorKind,
  reason: ErrorReason,
): Promise<DomainError> {
  return expectDomainError(await rejectionOf(promise), kind, reason);
}
