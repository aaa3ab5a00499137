/**
 * Shares one load among everyone who asks for the same key while it runs: the
 * first caller starts it, the others get the same promise, and the key is
 * free again once it settles (fulfilled or rejected: nothing is kept, so
 * caching stays the caller's business). In a rush, a cold or expired cache
 * entry then costs one query instead of one per request in flight.
 */
export class SingleFlight<K, V> {
  private readonly inFlight = new Map<K, Promise<V>>();

  run(key: K, load: () => Promise<V>): Promise<V> {
    const running = this.inFlight.get(key);
    if (running !== undefined) return running;
    const started = load().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, started);
    return started;
  }

  /** How many loads are running now. */
  get size(): number {
    return this.inFlight.size;
  }
}
