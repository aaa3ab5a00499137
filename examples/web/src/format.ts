import type { Lang, MessageKey, MessageParams } from "./i18n.js";

const LOCALES: Record<Lang, string> = { ko: "ko-KR", en: "en-US" };

const wonFormats = new Map<Lang, Intl.NumberFormat>();

/**
 * Formats whole won as the fan expects to read a price: "₩150,000". Amounts
 * are int64 in the API (bigint here) and never pass through floating point.
 */
export function formatWon(amount: bigint, lang: Lang): string {
  let format = wonFormats.get(lang);
  if (format === undefined) {
    format = new Intl.NumberFormat(LOCALES[lang], {
      style: "currency",
      currency: "KRW",
      currencyDisplay: "symbol",
      maximumFractionDigits: 0,
    });
    wonFormats.set(lang, format);
  }
  return format.format(amount);
}

/** A whole number with the locale's grouping, e.g. a queue position. */
export function formatCount(value: bigint | number, lang: Lang): string {
  return new Intl.NumberFormat(LOCALES[lang]).format(value);
}

/**
 * A countdown as m:ss (h:mm:ss past an hour), rounded up so "0:00" only shows
 * once the time is really over.
 */
export function formatCountdown(remainingMs: number): string {
  const total = Math.max(0, Math.ceil(remainingMs / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours > 0
    ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}`
    : `${minutes}:${seconds}`;
}

/** An estimated wait in words: "less than a minute" or "about 3 min". */
export function formatWait(waitMs: number): { key: MessageKey; params: MessageParams } {
  if (waitMs < 60_000) return { key: "waitUnderMinute", params: {} };
  return { key: "waitMinutes", params: { minutes: Math.round(waitMs / 60_000) } };
}

/**
 * A performance's calendar date (YYYY-MM-DD, already in the venue's time
 * zone) in words, e.g. "2026년 12월 3일 목요일". It is formatted as a UTC
 * date so the viewer's own time zone can never shift it by a day.
 */
export function formatCalendarDate(date: string, lang: Lang): string {
  const parsed = new Date(`${date}T00:00:00Z`);
  if (Number.isNaN(parsed.getTime())) return date;
  return new Intl.DateTimeFormat(LOCALES[lang], { dateStyle: "full", timeZone: "UTC" }).format(
    parsed,
  );
}

/** A start time in the viewer's time zone, with the zone named so it is never ambiguous. */
export function formatStartTime(at: Date, lang: Lang): string {
  return new Intl.DateTimeFormat(LOCALES[lang], {
    hour: "numeric",
    minute: "2-digit",
    timeZoneName: "short",
  }).format(at);
}

/**
 * A performance start as the venue's clock shows it, from the server's
 * venue-local rendering (`2026-12-24T19:30:00+09:00`): the date in words, the
 * time, and the venue's zone, e.g. "Thursday, December 24, 2026 19:30
 * (Asia/Seoul)". Never converted to the viewer's zone: the ticket says when
 * to be at the venue.
 */
export function formatVenueStart(localStart: string, timeZone: string, lang: Lang): string {
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(localStart);
  if (match === null) return localStart;
  return `${formatCalendarDate(match[1] ?? "", lang)} ${match[2] ?? ""} (${timeZone})`;
}

/** An instant (a payment, say) as date and time on the viewer's clock. */
export function formatDateTime(at: Date, lang: Lang): string {
  return new Intl.DateTimeFormat(LOCALES[lang], { dateStyle: "medium", timeStyle: "short" }).format(
    at,
  );
}
