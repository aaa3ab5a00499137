import type { StagedoorClient } from "@stagedoor/sdk";
import { describeError } from "./fan-error.js";
import { withRetry } from "./retry.js";

/**
 * Reads the fan's wallet balance: 0 when they have never topped up, which the API
 * reports as `not_found` with reason WALLET_NOT_FOUND.
 */
export async function loadBalance(
  stagedoor: StagedoorClient,
  signal: AbortSignal,
): Promise<{ balance: bigint; exists: boolean }> {
  try {
    const { wallet } = await withRetry(() => stagedoor.wallet.getWallet({}, { signal }), {
      signal,
    });
    return { balance: wallet?.balance ?? 0n, exists: true };
  } catch (error) {
    if (!signal.aborted && describeError(error).reason === "WALLET_NOT_FOUND") {
      return { balance: 0n, exists: false };
    }
    throw error;
  }
}
