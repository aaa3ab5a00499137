import type { StagedoorClient } from "@stagedoor/sdk";
import { withRetry } from "./retry.js";

/**
 * Reads the fan's wallet balance. A fan who has never topped up has an empty
 * wallet (balance 0, version 0), which `exists: false` reports so the wallet
 * screen can say the first top-up starts it.
 */
export async function loadBalance(
  stagedoor: StagedoorClient,
  signal: AbortSignal,
): Promise<{ balance: bigint; exists: boolean }> {
  const { wallet } = await withRetry(() => stagedoor.wallet.getWallet({}, { signal }), {
    signal,
  });
  return { balance: wallet?.balance ?? 0n, exists: (wallet?.version ?? 0n) > 0n };
}
