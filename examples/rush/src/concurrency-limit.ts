import type { Interceptor } from "@connectrpc/connect";

/**
 * An interceptor that lets at most `max` unary calls run at once and queues
 * the rest in order. Streams pass untouched: a fan waiting in line holds its
 * watch stream open for as long as it waits, and counting those would let
 * the waiting fans starve the admitted ones. This is how a few hundred
 * simulated fans share one client process without opening a few hundred
 * simultaneous requests.
 *
 * @example
 * ```ts
 * const transport = createNodeTransport({ baseUrl, interceptors: [limitUnaryCalls(50)] });
 * ```
 */
export function limitUnaryCalls(max: number): Interceptor {
  let running = 0;
  const queued: (() => void)[] = [];
  const release = () => {
    const next = queued.shift();
    if (next) next();
    else running -= 1;
  };
  return (next) => async (req) => {
    if (req.stream) return next(req);
    if (running < max) running += 1;
    // A released slot passes straight to the next queued call, so `running` stays put.
    else await new Promise<void>((resolve) => queued.push(resolve));
    try {
      return await next(req);
    } finally {
      release();
    }
  };
}
