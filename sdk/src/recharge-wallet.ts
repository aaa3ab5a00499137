import { callIdempotently, type MutationOptions } from "./call-idempotently.js";
import type { StagedoorClient } from "./clients.js";
import type { RechargeWalletResponse } from "./gen/stagedoor/wallet/v1/wallet_service_pb.js";
import { minorUnits } from "./money.js";

/** How much to add. */
export interface RechargeWalletInput {
  /** The amount in minor units (whole won); a number must be a safe integer. */
  readonly amount: bigint | number;
}

/**
 * Adds money to the caller's wallet, safely retried: one request id for the
 * whole operation, reused on every retry, so a retry after a timeout or a
 * dropped connection never adds the amount twice. Resolves with the new
 * balance and the ledger entry.
 *
 * @example
 * ```ts
 * const { wallet } = await rechargeWallet(stagedoor, { amount: 200_000n });
 * console.log(wallet?.balance);
 * ```
 */
export async function rechargeWallet(
  client: StagedoorClient,
  request: RechargeWalletInput,
  options: MutationOptions = {},
): Promise<RechargeWalletResponse> {
  const amount = minorUnits(request.amount);
  const headers = options.token ? { authorization: `Bearer ${options.token}` } : undefined;
  return callIdempotently(
    (requestId) =>
      client.wallet.rechargeWallet(
        { amount, requestId },
        { signal: options.signal, timeoutMs: options.timeoutMs, headers },
      ),
    options,
  );
}
