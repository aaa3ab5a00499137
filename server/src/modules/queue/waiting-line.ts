/**
 * One concert's line in arrival order. Each waiter occupies a slot; a Fenwick
 * tree over the slots counts live waiters, so a rank is a prefix sum in
 * O(log n) rather than a scan. Slots are renumbered (in order) when they run
 * out, which costs O(n) at most once per n/2 arrivals.
 */
export class WaitingLine {
  /** 1-based Fenwick tree over `capacity` slots. */
  private tree = new Int32Array(1025);
  private slots: (string | undefined)[] = [];
  private readonly slotOf = new Map<string, number>();
  /** No live slot lies below this one. */
  private head = 0;
  private next = 0;

  get size(): number {
    return this.slotOf.size;
  }

  has(tokenId: string): boolean {
    return this.slotOf.has(tokenId);
  }

  push(tokenId: string): void {
    if (this.next === this.tree.length - 1) this.reslot();
    const slot = this.next++;
    this.slots[slot] = tokenId;
    this.slotOf.set(tokenId, slot);
    this.add(slot, 1);
  }

  remove(tokenId: string): boolean {
    const slot = this.slotOf.get(tokenId);
    if (slot === undefined) return false;
    this.slotOf.delete(tokenId);
    this.slots[slot] = undefined;
    this.add(slot, -1);
    return true;
  }

  /** 1-based rank; 0 when not in line. */
  rank(tokenId: string): number {
    const slot = this.slotOf.get(tokenId);
    if (slot === undefined) return 0;
    let sum = 0;
    for (let i = slot + 1; i > 0; i -= i & -i) sum += this.tree[i];
    return sum;
  }

  /** The first waiter, if any. */
  first(): string | undefined {
    while (this.head < this.next && this.slots[this.head] === undefined) this.head++;
    return this.slots[this.head];
  }

  popFront(): string | undefined {
    while (this.head < this.next && this.slots[this.head] === undefined) this.head++;
    const tokenId = this.slots[this.head];
    if (tokenId !== undefined) this.remove(tokenId);
    return tokenId;
  }

  *inOrder(): Generator<string> {
    for (let slot = this.head; slot < this.next; slot++) {
      const tokenId = this.slots[slot];
      if (tokenId !== undefined) yield tokenId;
    }
  }

  private add(slot: number, delta: number): void {
    const tree = this.tree;
    for (let i = slot + 1; i < tree.length; i += i & -i) tree[i] += delta;
  }

  /** Packs the live waiters into slots 0..n-1, with room for as many again. */
  private reslot(): void {
    const live = [...this.inOrder()];
    let capacity = 1024;
    while (capacity < 2 * live.length) capacity *= 2;
    const tree = new Int32Array(capacity + 1);
    // Linear-time Fenwick construction: every node, filled or not, passes
    // its sum on to its parent.
    for (let i = 1; i <= capacity; i++) {
      if (i <= live.length) tree[i] += 1;
      const parent = i + (i & -i);
      if (parent <= capacity) tree[parent] += tree[i];
    }
    this.tree = tree;
    this.slots = live;
    this.slotOf.clear();
    for (const [slot, tokenId] of live.entries()) this.slotOf.set(tokenId, slot);
    this.head = 0;
    this.next = live.length;
  }
}
