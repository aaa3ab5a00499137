import type { NodeProtocol } from "@stagedoor/sdk/node";

/** What one rush run does, read from the environment. */
export interface RushSettings {
  /** The server, `STAGEDOOR_URL` (default http://127.0.0.1:8080). */
  readonly baseUrl: string;
  /** `STAGEDOOR_PROTOCOL`: connect (default), grpc or grpc-web. */
  readonly protocol: NodeProtocol;
  /** `RUSH_FANS` (default 300): how many fans arrive, all at once. */
  readonly fans: number;
  /** `RUSH_CONCURRENCY` (default 50): the most unary calls in flight at once. */
  readonly concurrency: number;
  /** `RUSH_HOLD_ATTEMPTS` (default 8): seats a fan tries before giving up on collisions. */
  readonly holdAttempts: number;
  /** `RUSH_CONCERT_ID`: the concert (default: the first one listed). */
  readonly concertId: string | undefined;
  /** `RUSH_DATE` (YYYY-MM-DD): the date (default: the one with the most free seats). */
  readonly date: string | undefined;
}

const PROTOCOLS: readonly NodeProtocol[] = ["connect", "grpc", "grpc-web"];

function positiveInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/**
 * Reads the rush's settings from the environment, refusing bad values with a
 * message naming the variable, so a typo never silently runs a different rush.
 */
export function readRushSettings(env: NodeJS.ProcessEnv = process.env): RushSettings {
  const protocol = env.STAGEDOOR_PROTOCOL || "connect";
  if (!PROTOCOLS.includes(protocol as NodeProtocol)) {
    throw new Error(`STAGEDOOR_PROTOCOL must be one of ${PROTOCOLS.join(", ")}, got ${protocol}`);
  }
  return {
    baseUrl: env.STAGEDOOR_URL || "http://127.0.0.1:8080",
    protocol: protocol as NodeProtocol,
    fans: positiveInteger(env, "RUSH_FANS", 300),
    concurrency: positiveInteger(env, "RUSH_CONCURRENCY", 50),
    holdAttempts: positiveInteger(env, "RUSH_HOLD_ATTEMPTS", 8),
    concertId: env.RUSH_CONCERT_ID || undefined,
    date: env.RUSH_DATE || undefined,
  };
}
