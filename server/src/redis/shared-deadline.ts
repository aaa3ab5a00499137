import { setMaxListeners } from "node:events";

/** The command options a {@link SharedCommandDeadline} sets (part of node-redis's `CommandOptions`). */
export interface DeadlineOptions {
  /** 0: no timer of the command's own. */
  readonly timeout: number;
  readonly abortSignal: AbortSignal;
}

/** A Redis client (of one primary or of a cluster) that hands out views with other command options. */
export interface WithCommandOptions<C> {
  withCommandOptions(options: DeadlineOptions): C;
}

/** How long a command may wait to be sent, at least, before it fails. */
export const COMMAND_DEADLINE_MS = 5_000;

/** How long one shared deadline is handed out before the next one is made. */
const EPOCH_MS = 1_000;

/**
 * Bounds how long a Redis command may wait to be sent (5 to 6 s), without a
 * timer per command. node-redis's own per-command timeout (5 s by default)
 * bounds the same wait, and only that (it is dropped once the command is
 * written to the socket), but makes an `AbortSignal.timeout`, with its timer,
 * for every command: measured at 5–7% of the CPU of a token or a refused
 * hold, which are one Redis call each. Instead, the commands sent within one
 * epoch of a second share one abort signal, which fires `COMMAND_DEADLINE_MS`
 * after the end of that epoch: a command still queued behind a socket that
 * does not drain (Redis stopped reading) fails with `AbortError` after 5 to
 * 6 s, which the callers answer as "unavailable".
 *
 * `commands()` is the client to send commands with: a view of the client
 * (node-redis's `withCommandOptions`, no new connection) made once per epoch.
 */
export class SharedCommandDeadline<C> {
  private view: C | undefined;
  private nextEpochAt = 0;

  constructor(
    private readonly client: WithCommandOptions<C>,
    private readonly now: () => number = Date.now,
  ) {}

  /** The client to send a command with now. */
  commands(): C {
    const now = this.now();
    if (this.view === undefined || now >= this.nextEpochAt) {
      this.nextEpochAt = now + EPOCH_MS;
      const abortSignal = AbortSignal.timeout(EPOCH_MS + COMMAND_DEADLINE_MS);
      // Every command waiting to be sent listens to the shared signal (node-redis
      // removes its listener once the command is written), so a busy second has
      // many listeners by design: without this, Node warns of a leak past 10.
      setMaxListeners(0, abortSignal);
      this.view = this.client.withCommandOptions({ timeout: 0, abortSignal });
    }
    return this.view;
  }
}
