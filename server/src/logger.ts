import { pino } from "pino";

/** The structured JSON logger every part of the server writes to. */
export type Logger = pino.Logger;

/**
 * Creates the server's logger. Credentials never reach the logs: the paths
 * below are censored wherever they appear, and the code never logs request
 * bodies or headers wholesale.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: "stagedoor" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: [
        "token",
        "*.token",
        "authorization",
        "*.authorization",
        "headers.authorization",
        "*.headers.authorization",
        "secret",
        "*.secret",
        "password",
        "*.password",
        "databaseUrl",
        "*.databaseUrl",
        "redisUrl",
        "*.redisUrl",
        "redisClusterUrls",
        "*.redisClusterUrls",
      ],
      censor: "[redacted]",
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
