import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type Duration,
  durationFromMs,
  type Timestamp,
  timestampFromDate,
} from "@bufbuild/protobuf/wkt";
import {
  type GetOpeningDrawResponseSchema,
  OpeningDrawState,
  type SaleSettingsSchema,
} from "@stagedoor/sdk";
import type { DrawState, OpeningDrawPage, SaleSettings } from "../../modules/admin/index.js";

const DRAW_STATES: Record<DrawState, OpeningDrawState> = {
  none: OpeningDrawState.NONE,
  pending: OpeningDrawState.PENDING,
  drawn: OpeningDrawState.DRAWN,
};

/** Maps a concert's sale settings to their API message (defaults as zero). */
export function toSaleSettings(
  settings: SaleSettings,
): MessageInitShape<typeof SaleSettingsSchema> {
  return {
    opensAt: settings.opensAt === null ? undefined : timestampFromDate(settings.opensAt),
    maxAdmitted: settings.maxAdmitted,
    admissionDuration:
      settings.admissionMs === 0 ? undefined : durationFromMs(settings.admissionMs),
    holdDuration: settings.holdMs === 0 ? undefined : durationFromMs(settings.holdMs),
    paused: settings.paused,
  };
}

/** Maps a draw state to its API enum. */
export function toDrawState(state: DrawState): OpeningDrawState {
  return DRAW_STATES[state];
}

/** Maps a page of an opening draw to its API response. */
export function toOpeningDraw(
  page: OpeningDrawPage,
): MessageInitShape<typeof GetOpeningDrawResponseSchema> {
  return {
    drawnAt: timestampFromDate(page.drawnAt),
    seed: page.seed,
    lobbySize: BigInt(page.lobbySize),
    order: [...page.order],
    nextPageToken: page.nextPageToken,
  };
}

/**
 * A request's duration in milliseconds: 0 when unset, NaN when it is not a
 * whole number of seconds (or too large to be one), so the service refuses it.
 */
export function durationMs(duration: Duration | undefined): number {
  if (duration === undefined) return 0;
  if (duration.nanos !== 0) return Number.NaN;
  const seconds = Number(duration.seconds);
  return Number.isSafeInteger(seconds * 1000) ? seconds * 1000 : Number.NaN;
}

/** A request's time; null when unset, an invalid Date when out of range. */
export function timestampOrNull(timestamp: Timestamp | undefined): Date | null {
  if (timestamp === undefined) return null;
  const ms = Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1_000_000);
  return new Date(Number.isFinite(ms) ? ms : Number.NaN);
}
