/** The operator's changes (refunds, support credits) and their audit trail. */
export {
  AdminService,
  type CreditResult,
  MAX_NOTE_LENGTH,
  type RefundGate,
  type RefundResult,
} from "./admin.service.js";
export { type AuditJson, type AuditRecord, AuditTrail } from "./audit.js";
export {
  CatalogAdminService,
  type CatalogCaches,
  type SeatMapImport,
} from "./catalog-admin.service.js";
export {
  type DrawState,
  type OpeningDrawPage,
  SALE_SETTINGS_FIELDS,
  type SaleSettings,
  SaleSettingsService,
  type SaleSettingsUpdate,
} from "./sale-settings.service.js";
export { SALES_RATE_WINDOW_MS, type SaleStats, SaleStatsReader } from "./sale-stats.js";
