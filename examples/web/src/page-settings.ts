/**
 * What the server tells the page about itself, in the `stagedoor-settings`
 * meta tag of index.html (the page loads nothing else before it starts, and
 * runs no inline script).
 */
export interface PageSettings {
  /** `hmac`: fans join with a signed assertion handed over by the operator's site. */
  readonly auth: "trust" | "hmac";
  /** The operator's sign-in page, linked for fans who arrive without an assertion. */
  readonly loginUrl: string | undefined;
  /** Origins whose pages may hand an assertion over by `postMessage`. */
  readonly loginOrigins: readonly string[];
}

const TRUST: PageSettings = { auth: "trust", loginUrl: undefined, loginOrigins: [] };

/** Reads the settings the server filled in; a page served without them trusts user ids (the seed's mode). */
export function readPageSettings(doc: Document): PageSettings {
  const raw = doc.querySelector('meta[name="stagedoor-settings"]')?.getAttribute("content");
  let value: unknown;
  try {
    value = JSON.parse(raw ?? "{}");
  } catch {
    return TRUST;
  }
  if (typeof value !== "object" || value === null) return TRUST;
  const { auth, loginUrl, loginOrigins } = value as Record<string, unknown>;
  return {
    auth: auth === "hmac" ? "hmac" : "trust",
    loginUrl: typeof loginUrl === "string" && /^https?:\/\//.test(loginUrl) ? loginUrl : undefined,
    loginOrigins: Array.isArray(loginOrigins)
      ? loginOrigins.filter((origin): origin is string => typeof origin === "string")
      : [],
  };
}
