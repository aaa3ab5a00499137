import { invalidField } from "./domain-error.js";

/**
 * Opaque keyset page tokens. A token is the base64url JSON of the last row's
 * sort key; it is opaque to callers so the ordering can change without an API
 * change, and it is validated on the way back in because callers can send
 * anything.
 */
export function encodePageToken(key: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(key), "utf8").toString("base64url");
}

/**
 * Decodes a page token into the expected shape, or throws `invalid_argument`.
 * An empty token means "the first page" and yields `undefined`.
 */
export function decodePageToken<K extends Record<string, "string" | "number">>(
  token: string,
  shape: K,
  field = "page_token",
): { [P in keyof K]: K[P] extends "string" ? string : number } | undefined {
  if (token === "") return undefined;
  let parsed: unknown;
  try {
    if (token.length > 512 || !/^[A-Za-z0-9_-]+$/.test(token)) throw new Error("bad alphabet");
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw invalidField(field, "is not a page token this server issued");
  }
  if (typeof parsed !== "object" || parsed === null) {
    throw invalidField(field, "is not a page token this server issued");
  }
  const record = parsed as Record<string, unknown>;
  for (const [name, type] of Object.entries(shape)) {
    const value = record[name];
    if (typeof value !== type || (type === "number" && !Number.isSafeInteger(value))) {
      throw invalidField(field, "is not a page token this server issued");
    }
  }
  return record as { [P in keyof K]: K[P] extends "string" ? string : number };
}

/**
 * Cuts one page from rows fetched with `limit + 1` (the extra row only says
 * there is more) and derives the token of the next page from the page's last
 * row. Every keyset listing ends this way.
 */
export function pageOf<T>(
  rows: readonly T[],
  limit: number,
  keyOf: (last: T) => Record<string, string | number>,
): { items: T[]; nextPageToken: string } {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items,
    nextPageToken: rows.length > limit && last !== undefined ? encodePageToken(keyOf(last)) : "",
  };
}
