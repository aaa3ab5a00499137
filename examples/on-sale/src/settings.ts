import { fileURLToPath } from "node:url";

/** How fans prove who they are when they take a queue token (the server's `AUTH_MODE`). */
export type FanIdentityMode = "trust" | "hmac";

/** Everything the on-sale script reads from its environment. */
export interface OnSaleSettings {
  /** The Stagedoor server (`STAGEDOOR_URL`). */
  readonly baseUrl: string;
  /** The operator API key (`STAGEDOOR_ADMIN_KEY`); never printed. */
  readonly adminKey: string;
  /** `STAGEDOOR_AUTH_MODE`: `trust` (user ids as given) or `hmac` (signed assertions). */
  readonly identity: FanIdentityMode;
  /** `STAGEDOOR_AUTH_HMAC_SECRET`: the server's `AUTH_HMAC_SECRET`, to sign fans' assertions. */
  readonly hmacSecret: string | undefined;
  /** `ONSALE_FANS`: the crowd that arrives before the opening. */
  readonly fans: number;
  /** `ONSALE_MAX_ADMITTED`: the most fans admitted at once (the concert's sale setting). */
  readonly maxAdmitted: number;
  /** `ONSALE_OPENS_IN_SECONDS`: how far ahead the opening is scheduled. */
  readonly opensInSeconds: number;
  /** `ONSALE_PAUSE_AFTER`: tickets sold before the operator pulls the emergency brake. */
  readonly pauseAfter: number;
  /** `ONSALE_SEAT_MAP`: the seat map file (CSV or JSON). */
  readonly seatMapPath: string;
  /** `ONSALE_WEBHOOK_PORT`: where the script's own webhook receiver listens (unset: none). */
  readonly webhookPort: number | undefined;
  /** `WEBHOOK_SECRET`: the server's webhook secret, to check each delivery's signature. */
  readonly webhookSecret: string | undefined;
  /** `STAGEDOOR_METRICS_URL`: the server's `/metrics` (on `METRICS_PORT`); unset: not scraped. */
  readonly metricsUrl: string | undefined;
  /** `ONSALE_EVENTS_TIMEOUT_SECONDS`: how long to wait for the last webhook. */
  readonly eventsTimeoutMs: number;
}

/** A bad setting: the script names it and exits 1 without starting. */
export class SettingsError extends Error {
  override readonly name = "SettingsError";
}

const DEFAULT_SEAT_MAP = fileURLToPath(new URL("../seat-map.csv", import.meta.url));

function integer(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new SettingsError(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function optional(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

/** Reads and checks the settings; throws a {@link SettingsError} naming the first bad one. */
export function readOnSaleSettings(env: NodeJS.ProcessEnv = process.env): OnSaleSettings {
  const adminKey = optional(env, "STAGEDOOR_ADMIN_KEY");
  if (adminKey === undefined) {
    throw new SettingsError("set STAGEDOOR_ADMIN_KEY to an operator API key of the server");
  }
  const identity = optional(env, "STAGEDOOR_AUTH_MODE") ?? "trust";
  if (identity !== "trust" && identity !== "hmac") {
    throw new SettingsError(`STAGEDOOR_AUTH_MODE must be trust or hmac, got "${identity}"`);
  }
  const hmacSecret = optional(env, "STAGEDOOR_AUTH_HMAC_SECRET");
  if (identity === "hmac" && (hmacSecret ?? "").length < 32) {
    throw new SettingsError(
      "STAGEDOOR_AUTH_MODE=hmac needs STAGEDOOR_AUTH_HMAC_SECRET (the server's AUTH_HMAC_SECRET)",
    );
  }
  const fans = integer(env, "ONSALE_FANS", 8, 2, 200);
  const webhookPort = optional(env, "ONSALE_WEBHOOK_PORT");
  const webhookSecret = optional(env, "WEBHOOK_SECRET");
  if (webhookPort !== undefined && webhookSecret === undefined) {
    throw new SettingsError("ONSALE_WEBHOOK_PORT needs WEBHOOK_SECRET (the server's)");
  }
  return {
    baseUrl: optional(env, "STAGEDOOR_URL") ?? "http://127.0.0.1:8080",
    adminKey,
    identity,
    hmacSecret,
    fans,
    maxAdmitted: integer(env, "ONSALE_MAX_ADMITTED", 2, 1, 1000),
    opensInSeconds: integer(env, "ONSALE_OPENS_IN_SECONDS", 5, 2, 3600),
    pauseAfter: integer(env, "ONSALE_PAUSE_AFTER", Math.ceil(fans / 2), 1, fans - 1),
    seatMapPath: optional(env, "ONSALE_SEAT_MAP") ?? DEFAULT_SEAT_MAP,
    webhookPort:
      webhookPort === undefined ? undefined : integer(env, "ONSALE_WEBHOOK_PORT", 0, 1, 65535),
    webhookSecret,
    metricsUrl: optional(env, "STAGEDOOR_METRICS_URL"),
    eventsTimeoutMs: integer(env, "ONSALE_EVENTS_TIMEOUT_SECONDS", 30, 1, 600) * 1000,
  };
}
