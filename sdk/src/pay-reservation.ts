import { callIdempotently, type MutationOptions } from "./call-idempotently.js";
import type { StagedoorClient } from "./clients.js";
import type { CreatePaymentResponse } from "./gen/stagedoor/payment/v1/payment_service_pb.js";
import { minorUnits } from "./money.js";

/** What to pay for. */
export interface PayReservationInput {
  /** The caller's held reservation. */
  readonly reservationId: string;
  /** The seat's price in minor units (whole won); a number must be a safe integer. */
  readonly amount: bigint | number;
}

/**
 * Pays for a held reservation from the wallet, safely retried: one request id
 * for the whole operation, reused on every retry, so a retry after a timeout
 * or a dropped connection returns the first payment instead of charging
 * twice. Resolves with the payment and the confirmed reservation.
 *
 * @example
 * ```ts
 * const { payment, reservation } = await payReservation(stagedoor, {
 *   reservationId: held.id,
 *   amount: held.price,
 * });
 * ```
 */
export async function payReservation(
  client: StagedoorClient,
  request: PayReservationInput,
  options: MutationOptions = {},
): Promise<CreatePaymentResponse> {
  const amount = minorUnits(request.amount);
  const headers = options.token ? { authorization: `Bearer ${options.token}` } : undefined;
  return callIdempotently(
    (requestId) =>
      client.payment.createPayment(
        { reservationId: request.reservationId, amount, requestId },
        { signal: options.signal, timeoutMs: options.timeoutMs, headers },
      ),
    options,
  );
}
