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

/**
 * The heap lives in parallel arrays (times and sequence numbers in Float64Arrays, callbacks in a plain array): no
 * object per event, and the comparisons read contiguous memory.
 */
export class EventQueue {
  #at = new Float64Array(1024);
  #seqs = new Float64Array(1024);
  #runs: Array<() => void> = [];
  #n = 0;
  #seq = 0;
  /** Events run so far. */
  executed = 0;

  get size(): number {
    return this.#n;
  }

  /** Time of the next event, Infinity when none. */
  peekTime(): number {
    return this.#n > 0 ? (this.#at[0] as number) : Number.POSITIVE_INFINITY;
  }

  at(at: number, run: () => void): void {
    if (this.#n === this.#at.length) this.#grow();
    const times = this.#at;
    const seqs = this.#seqs;
    const runs = this.#runs;
    const seq = this.#seq++;
    let i = this.#n++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pt = times[parent] as number;
      if (pt < at || (pt === at && (seqs[parent] as number) < seq)) break;
      times[i] = pt;
      seqs[i] = seqs[parent] as number;
      runs[i] = runs[parent] as () => void;
      i = parent;
    }
    times[i] = at;
    seqs[i] = seq;
    runs[i] = run;
  }

  /** Remove the earliest event and return its callback (the caller checks peekTime first). */
  popRun(): () => void {
    const times = this.#at;
    const seqs = this.#seqs;
    const runs = this.#runs;
    const top = runs[0] as () => void;
    const n = --this.#n;
    if (n > 0) {
      const lastAt = times[n] as number;
      const lastSeq = seqs[n] as number;
      const lastRun = runs[n] as () => void;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let m = l;
        let ct = times[l] as number;
        let cs = seqs[l] as number;
        if (r < n) {
          const rt = times[r] as number;
          const rs = seqs[r] as number;
          if (rt < ct || (rt === ct && rs < cs)) {
            m = r;
            ct = rt;
            cs = rs;
          }
        }
        if (lastAt < ct || (lastAt === ct && lastSeq < cs)) break;
        times[i] = ct;
        seqs[i] = cs;
        runs[i] = runs[m] as () => void;
        i = m;
      }
      times[i] = lastAt;
      seqs[i] = lastSeq;
      runs[i] = lastRun;
    }
    runs[n] = noop; // drop the reference
    this.executed++;
    return top;
  }

  /** Remove and return the earliest event (tests; the loop uses popRun). */
  pop(): Scheduled {
    const at = this.#at[0] as number;
    const seq = this.#seqs[0] as number;
    return { at, seq, run: this.popRun() };
  }

  #grow(): void {
    const at = new Float64Array(this.#at.length * 2);
    at.set(this.#at);
    this.#at = at;
    const seqs = new Float64Array(this.#seqs.length * 2);
    seqs.set(this.#seqs);
    this.#seqs = seqs;
  }
}

const noop = (): void => {};

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
