/**
 * A binary min-heap of (key, token id) pairs with lazy deletion: callers push
 * a new entry when a key changes and skip entries that no longer match the
 * token when they reach the top. Gives the "oldest activity" and "earliest
 * expiry" orders of Redis's sorted sets in O(log n).
 */
export class MinHeap {
  private keys: number[] = [];
  private ids: string[] = [];

  get size(): number {
    return this.keys.length;
  }

  peekKey(): number | undefined {
    return this.keys[0];
  }

  /** Removes and returns the id at the top. */
  pop(): string | undefined {
    const top = this.ids[0];
    const lastKey = this.keys.pop();
    const lastId = this.ids.pop();
    if (this.keys.length > 0 && lastKey !== undefined && lastId !== undefined) {
      this.keys[0] = lastKey;
      this.ids[0] = lastId;
      this.down(0);
    }
    return top;
  }

  push(key: number, id: string): void {
    this.keys.push(key);
    this.ids.push(id);
    this.up(this.keys.length - 1);
  }

  /** Replaces the content with the given live entries. */
  rebuild(entries: Iterable<readonly [number, string]>): void {
    this.keys = [];
    this.ids = [];
    for (const [key, id] of entries) {
      this.keys.push(key);
      this.ids.push(id);
    }
    for (let i = (this.keys.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.keys[parent] <= this.keys[i]) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.keys.length;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < n && this.keys[left] < this.keys[smallest]) smallest = left;
      if (right < n && this.keys[right] < this.keys[smallest]) smallest = right;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }

  private swap(a: number, b: number): void {
    const key = this.keys[a];
    const id = this.ids[a];
    this.keys[a] = this.keys[b];
    this.ids[a] = this.ids[b];
    this.keys[b] = key;
    this.ids[b] = id;
  }
}
