import { invalidField } from "./domain-error.js";
import { isUuid } from "./ids.js";

/** The longest user id we accept; the seed's contract allows 1 to 128 characters. */
export const MAX_USER_ID_LENGTH = 128;
/** The longest client-chosen `request_id`. */
export const MAX_REQUEST_ID_LENGTH = 128;

// Control characters (C0, DEL and C1) would make ids unreadable in logs and ledgers.
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

/** Shared rules of client-chosen identifiers. */
function checkText(value: string, field: string): void {
  // A lone surrogate becomes U+FFFD on its way to PostgreSQL and Redis, so two
  // different ids could name one user there.
  if (!value.isWellFormed()) throw invalidField(field, "must be valid Unicode");
  if (CONTROL_CHARACTERS.test(value))
    throw invalidField(field, "must not contain control characters");
}

/** Checks a user id: 1 to 128 characters with no control characters. */
export function requireUserId(value: string, field = "user_id"): string {
  if (value.length === 0) throw invalidField(field, "must not be empty");
  if ([...value].length > MAX_USER_ID_LENGTH) {
    throw invalidField(field, `must be at most ${MAX_USER_ID_LENGTH} characters`);
  }
  checkText(value, field);
  return value;
}

/** Checks a client-chosen request id used for idempotency. */
export function requireRequestId(value: string, field = "request_id"): string {
  if (value.length === 0) throw invalidField(field, "must not be empty");
  if (value.length > MAX_REQUEST_ID_LENGTH) {
    throw invalidField(field, `must be at most ${MAX_REQUEST_ID_LENGTH} characters`);
  }
  checkText(value, field);
  return value;
}

/** Checks that an id is one we could have issued (a UUID). */
export function requireUuid(value: string, field: string): string {
  if (value.length === 0) throw invalidField(field, "must not be empty");
  if (!isUuid(value)) throw invalidField(field, "must be a UUID");
  return value;
}

/**
 * Resolves a requested page size: 0 means the default, and anything outside
 * 0..max is refused rather than silently clamped, so callers learn the limit.
 */
export function pageSize(
  value: number,
  defaultSize: number,
  max: number,
  field = "page_size",
): number {
  if (!Number.isInteger(value) || value < 0) throw invalidField(field, "must not be negative");
  if (value > max) throw invalidField(field, `must be at most ${max}`);
  return value === 0 ? defaultSize : value;
}

const DATE_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * Checks a calendar date written as YYYY-MM-DD, refusing impossible dates such
 * as 2025-02-30 that `Date` would silently roll over.
 */
export function requireCalendarDate(value: string, field = "date"): string {
  const match = DATE_PATTERN.exec(value);
  if (!match) throw invalidField(field, "must be a date written as YYYY-MM-DD");
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  if (
    year < 1 ||
    date.getUTCFullYear() !== year ||
    date.getUTCMonth() !== month - 1 ||
    date.getUTCDate() !== day
  ) {
    throw invalidField(field, "is not a real calendar date");
  }
  return value;
}

/**
 * Checks an IANA time zone name (such as "Asia/Seoul") against the zones
 * this runtime knows, and returns it.
 */
export function requireTimeZone(value: string, field = "time_zone"): string {
  if (value.length === 0) throw invalidField(field, "must not be empty");
  if (value.length > 64 || !/^[A-Za-z0-9/_+-]+$/.test(value)) {
    throw invalidField(field, "must be an IANA time zone such as Asia/Seoul");
  }
  try {
    new Intl.DateTimeFormat("en", { timeZone: value });
  } catch {
    throw invalidField(field, "must be an IANA time zone such as Asia/Seoul");
  }
  return value;
}

/** The calendar date (YYYY-MM-DD) of an instant in a time zone. */
export function calendarDateIn(instant: Date, timeZone: string): string {
  // en-CA writes dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat("en-CA", {
    timeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).format(instant);
}
