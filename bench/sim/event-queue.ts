/**
 * The simulator's clock and agenda: a binary min-heap of callbacks keyed by (virtual time, insertion order), so
 * events at the same instant run in the order they were scheduled (a message sent before another on the same link
 * arrives before it). Plus an indexed heap for flow completions, whose keys move whenever a flow's rate changes.
 */

export interface Scheduled {
  at: number;
  seq: number;
  run: () => void;
}

export class EventQueue {
  #heap: Scheduled[] = [];
  #seq = 0;
  /** Events run so far. */
  executed = 0;

  get size(): number {
    return this.#heap.length;
  }

  /** Time of the next event, Infinity when none. */
  peekTime(): number {
    return this.#heap[0]?.at ?? Number.POSITIVE_INFINITY;
  }

  at(at: number, run: () => void): void {
    const heap = this.#heap;
    const item: Scheduled = { at, seq: this.#seq++, run };
    let i = heap.length;
    heap.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Scheduled;
      if (p.at < at || (p.at === at && p.seq < item.seq)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = item;
  }

  /** Remove and return the earliest event (the caller checks peekTime first). */
  pop(): Scheduled {
    const heap = this.#heap;
    const top = heap[0] as Scheduled;
    const last = heap.pop() as Scheduled;
    const n = heap.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let m = l;
        let c = heap[l] as Scheduled;
        if (r < n) {
          const rc = heap[r] as Scheduled;
          if (rc.at < c.at || (rc.at === c.at && rc.seq < c.seq)) {
            m = r;
            c = rc;
          }
        }
        if (last.at < c.at || (last.at === c.at && last.seq < c.seq)) break;
        heap[i] = c;
        i = m;
      }
      heap[i] = last;
    }
    this.executed++;
    return top;
  }
}

/** An element of an IndexedHeap: the heap keeps `heapIndex` current (-1 when not in the heap). */
export interface HeapItem {
  key: number;
  readonly id: number;
  heapIndex: number;
}

/** Min-heap on (key, id) with O(log n) update and removal of any member. */
export class IndexedHeap<T extends HeapItem> {
  readonly #heap: T[] = [];

  get size(): number {
    return this.#heap.length;
  }

  peek(): T | undefined {
    return this.#heap[0];
  }

  /** Insert, or move an item already in the heap after its key changed. */
  upsert(item: T): void {
    if (item.heapIndex < 0) {
      item.heapIndex = this.#heap.length;
      this.#heap.push(item);
      this.#up(item.heapIndex);
    } else {
      this.#up(item.heapIndex);
      this.#down(item.heapIndex);
    }
  }

  remove(item: T): void {
    const i = item.heapIndex;
    if (i < 0) return;
    const last = this.#heap.pop() as T;
    item.heapIndex = -1;
    if (last === item) return;
    this.#heap[i] = last;
    last.heapIndex = i;
    this.#up(i);
    this.#down(last.heapIndex);
  }

  #less(a: T, b: T): boolean {
    return a.key < b.key || (a.key === b.key && a.id < b.id);
  }

  #up(i: number): void {
    const heap = this.#heap;
    const item = heap[i] as T;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as T;
      if (!this.#less(item, p)) break;
      heap[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    heap[i] = item;
    item.heapIndex = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const item = heap[i] as T;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let m = l;
      if (r < n && this.#less(heap[r] as T, heap[l] as T)) m = r;
      const c = heap[m] as T;
      if (!this.#less(c, item)) break;
      heap[i] = c;
      c.heapIndex = i;
      i = m;
    }
    heap[i] = item;
    item.heapIndex = i;
  }
}
