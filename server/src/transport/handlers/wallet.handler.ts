import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  GetWalletRequest,
  ListLedgerEntriesRequest,
  RechargeWalletRequest,
  WalletService as WalletApi,
} from "@stagedoor/sdk";
import type { WalletService } from "../../modules/wallet/index.js";
import { principalOf, readerOf } from "../context.js";
import { toLedgerEntry, toWallet } from "../mappers/wallet.mapper.js";

/** Prepaid balances over Connect, gRPC and gRPC-Web. */
export class WalletHandler implements ServiceImpl<typeof WalletApi> {
  constructor(private readonly wallets: WalletService) {}

  async rechargeWallet(req: RechargeWalletRequest, ctx: HandlerContext) {
    const { wallet, entry } = await this.wallets.recharge(principalOf(ctx.values), {
      amount: req.amount,
      requestId: req.requestId,
    });
    return { wallet: toWallet(wallet), entry: toLedgerEntry(entry) };
  }

  async getWallet(_req: GetWalletRequest, ctx: HandlerContext) {
    return { wallet: toWallet(await this.wallets.get(readerOf(ctx.values))) };
  }

  async listLedgerEntries(req: ListLedgerEntriesRequest, ctx: HandlerContext) {
    const page = await this.wallets.listEntries(readerOf(ctx.values), req.pageSize, req.pageToken);
    return { entries: page.entries.map(toLedgerEntry), nextPageToken: page.nextPageToken };
  }
}
