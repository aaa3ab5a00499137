import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  AdminService as AdminApi,
  CreateConcertRequest,
  CreatePerformanceRequest,
  CreditWalletRequest,
  GetOpeningDrawRequest,
  GetSaleSettingsRequest,
  GetSaleStatsRequest,
  ImportSeatMapRequest,
  PauseAdmissionRequest,
  RefundTicketRequest,
  ResumeAdmissionRequest,
  UpdateConcertRequest,
  UpdateSaleSettingsRequest,
} from "@stagedoor/sdk";
import type {
  AdminService,
  CatalogAdminService,
  SaleSettingsService,
  SaleStatsReader,
} from "../../modules/admin/index.js";
import { adminOf } from "../context.js";
import {
  fromSeatMapFormat,
  toCreditWalletResponse,
  toImportSeatMapResponse,
  toRefundTicketResponse,
  toSaleStats,
} from "../mappers/admin.mapper.js";
import { toConcert, toConcertDate } from "../mappers/catalog.mapper.js";
import {
  durationMs,
  timestampOrNull,
  toDrawState,
  toOpeningDraw,
  toSaleSettings,
} from "../mappers/sale-settings.mapper.js";

/** The operator API over Connect, gRPC and gRPC-Web. */
export class AdminHandler implements ServiceImpl<typeof AdminApi> {
  constructor(
    private readonly admin: AdminService,
    private readonly catalog: CatalogAdminService,
    private readonly stats: SaleStatsReader,
    private readonly sale: SaleSettingsService,
  ) {}

  async getSaleStats(req: GetSaleStatsRequest) {
    return { stats: toSaleStats(await this.stats.read(req.concertId)) };
  }

  async refundTicket(req: RefundTicketRequest, ctx: HandlerContext) {
    const result = await this.admin.refundTicket(adminOf(ctx.values), {
      reservationId: req.reservationId,
      requestId: req.requestId,
      note: req.note,
    });
    return toRefundTicketResponse(result);
  }

  async creditWallet(req: CreditWalletRequest, ctx: HandlerContext) {
    const result = await this.admin.creditWallet(adminOf(ctx.values), {
      userId: req.userId,
      amount: req.amount,
      requestId: req.requestId,
      note: req.note,
    });
    return toCreditWalletResponse(result);
  }

  async createConcert(req: CreateConcertRequest, ctx: HandlerContext) {
    const concert = await this.catalog.createConcert(adminOf(ctx.values), {
      title: req.title,
      venue: req.venue,
      timeZone: req.timeZone,
      requestId: req.requestId,
    });
    return { concert: toConcert(concert) };
  }

  async updateConcert(req: UpdateConcertRequest, ctx: HandlerContext) {
    const concert = await this.catalog.updateConcert(adminOf(ctx.values), {
      concertId: req.concertId,
      title: req.title,
      venue: req.venue,
      timeZone: req.timeZone,
      requestId: req.requestId,
    });
    return { concert: toConcert(concert) };
  }

  async createPerformance(req: CreatePerformanceRequest, ctx: HandlerContext) {
    const date = await this.catalog.createPerformance(adminOf(ctx.values), {
      concertId: req.concertId,
      startsAt: req.startTime && timestampDate(req.startTime),
      salesCloseAt: req.salesCloseTime && timestampDate(req.salesCloseTime),
      requestId: req.requestId,
    });
    return { performance: toConcertDate({ date, availableSeats: 0 }) };
  }

  async importSeatMap(req: ImportSeatMapRequest, ctx: HandlerContext) {
    const result = await this.catalog.importSeatMap(adminOf(ctx.values), {
      concertDateId: req.concertDateId,
      format: fromSeatMapFormat(req.format),
      text: req.text,
      validateOnly: req.validateOnly,
      requestId: req.requestId,
    });
    return toImportSeatMapResponse(result);
  }

  async updateSaleSettings(req: UpdateSaleSettingsRequest, ctx: HandlerContext) {
    const settings = await this.sale.update(adminOf(ctx.values), {
      concertId: req.concertId,
      requestId: req.requestId,
      fields: req.updateMask?.paths ?? [],
      opensAt: timestampOrNull(req.settings?.opensAt),
      maxAdmitted: req.settings?.maxAdmitted ?? 0,
      admissionMs: durationMs(req.settings?.admissionDuration),
      holdMs: durationMs(req.settings?.holdDuration),
    });
    return { settings: toSaleSettings(settings) };
  }

  async pauseAdmission(req: PauseAdmissionRequest, ctx: HandlerContext) {
    const settings = await this.sale.pause(adminOf(ctx.values), {
      concertId: req.concertId,
      requestId: req.requestId,
      reason: req.reason,
    });
    return { settings: toSaleSettings(settings) };
  }

  async resumeAdmission(req: ResumeAdmissionRequest, ctx: HandlerContext) {
    const settings = await this.sale.resume(adminOf(ctx.values), {
      concertId: req.concertId,
      requestId: req.requestId,
    });
    return { settings: toSaleSettings(settings) };
  }

  async getSaleSettings(req: GetSaleSettingsRequest) {
    const { settings, drawState } = await this.sale.get(req.concertId);
    return { settings: toSaleSettings(settings), drawState: toDrawState(drawState) };
  }

  async getOpeningDraw(req: GetOpeningDrawRequest) {
    return toOpeningDraw(
      await this.sale.openingDraw({
        concertId: req.concertId,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      }),
    );
  }
}
