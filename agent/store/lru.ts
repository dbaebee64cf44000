/**
 * Bookkeeping shared by the blob stores: LRU order, pins, deferred deletes, in-progress reservations and the size cap.
 *
 * LruIndex is pure: no I/O, no timers, the clock is injected. Recency is the Map's insertion order (a use moves the
 * entry to the end), so eviction order is deterministic even when the clock does not advance between two uses; the
 * lastUse timestamps are kept so a store can persist them (FsBlobStore writes them as file mtimes) and reload the
 * order after a restart with load().
 *
 * Accounting: `bytes` counts committed blobs that still occupy storage (including ones whose delete is deferred
 * until their last reader closes); `reserved` counts bytes promised to writers in progress. makeRoom() keeps
 * bytes + reserved within the cap, so concurrent writers cannot overshoot it together.
 */
import { LayerswarmError } from '../../shared/errors.ts';

export interface LruEntry {
  readonly key: string;
  readonly size: number;
  /** Clock value of the last use (commit or open). */
  readonly lastUse: number;
  /** Open readers. A pinned entry is never evicted or removed. */
  readonly pins: number;
  /** Deleted while pinned: invisible, removed when the last pin is released. */
  readonly deleted: boolean;
}

interface MutableEntry {
  key: string;
  size: number;
  lastUse: number;
  pins: number;
  deleted: boolean;
}

export type DeleteResult = 'absent' | 'removed' | 'deferred';

export interface RoomResult {
  /** False when even evicting every unpinned entry would not make enough room; then nothing was evicted. */
  readonly fits: boolean;
  /** Entries evicted (already removed from the index), least recently used first. The caller frees their storage. */
  readonly victims: readonly LruEntry[];
}

export interface LruIndexOptions {
  readonly capBytes: number;
  readonly now: () => number;
}

export class LruIndex {
  readonly capBytes: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, MutableEntry>();
  #bytes = 0;
  #reserved = 0;

  constructor(options: LruIndexOptions) {
    if (!Number.isSafeInteger(options.capBytes) || options.capBytes <= 0) {
      throw new LayerswarmError('CONFIG_INVALID', `store capBytes must be a positive integer, got ${options.capBytes}`);
    }
    this.capBytes = options.capBytes;
    this.#now = options.now;
  }

  /** Bytes of committed entries, including deferred deletes. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Entries that occupy storage, including deferred deletes. */
  get count(): number {
    return this.#entries.size;
  }

  /** Bytes reserved by writers in progress. */
  get reserved(): number {
    return this.#reserved;
  }

  /** A visible entry (present and not deleted). */
  get(key: string): LruEntry | undefined {
    const e = this.#entries.get(key);
    return e && !e.deleted ? e : undefined;
  }

  /** Any entry, also one whose delete is deferred. */
  peek(key: string): LruEntry | undefined {
    return this.#entries.get(key);
  }

  /** Keys from least to most recently used. */
  keys(): string[] {
    return [...this.#entries.keys()];
  }

  /**
   * Publish `key` as the most recently used entry. If it is already present (the same content committed again) it is
   * refreshed and a deferred delete is cancelled. Returns true when the entry is new.
   */
  add(key: string, size: number, lastUse: number = this.#now()): boolean {
    const existing = this.#entries.get(key);
    if (existing) {
      existing.deleted = false;
      this.#moveToEnd(existing, lastUse);
      return false;
    }
    this.#entries.set(key, { key, size, lastUse, pins: 0, deleted: false });
    this.#bytes += size;
    return true;
  }

  /** Add entries found in storage, oldest lastUse first (ties by key), behind the current ones. */
  load(entries: Iterable<{ key: string; size: number; lastUse: number }>): void {
    const sorted = [...entries].sort((a, b) => a.lastUse - b.lastUse || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const e of sorted) this.add(e.key, e.size, e.lastUse);
  }

  /** Mark a use. Returns the new lastUse, or undefined when absent or deleted. */
  touch(key: string): number | undefined {
    const e = this.#entries.get(key);
    if (!e || e.deleted) return undefined;
    this.#moveToEnd(e, this.#now());
    return e.lastUse;
  }

  /** Pin a visible entry for a reader (counts as a use). Returns false when absent or deleted. */
  pin(key: string): boolean {
    const e = this.#entries.get(key);
    if (!e || e.deleted) return false;
    e.pins++;
    this.#moveToEnd(e, this.#now());
    return true;
  }

  /** Release one pin. Returns true when a deferred delete became due: the entry is removed, free its storage. */
  unpin(key: string): boolean {
    const e = this.#entries.get(key);
    if (!e || e.pins === 0) return false;
    e.pins--;
    if (e.pins > 0 || !e.deleted) return false;
    this.#remove(e);
    return true;
  }

  /** Delete: removed at once when unpinned, deferred while pinned ('absent' also for an already deferred one). */
  delete(key: string): DeleteResult {
    const e = this.#entries.get(key);
    if (!e || e.deleted) return 'absent';
    if (e.pins > 0) {
      e.deleted = true;
      return 'deferred';
    }
    this.#remove(e);
    return 'removed';
  }

  /** Drop an entry whatever its pins (its storage vanished). Returns false when absent. */
  forget(key: string): boolean {
    const e = this.#entries.get(key);
    if (!e) return false;
    this.#remove(e);
    return true;
  }

  /**
   * Reserve `more` bytes for a writer whose blob has reached `total` bytes, evicting as needed. Reserves nothing and
   * returns fits: false when the blob is larger than the cap or there is no room even after evicting all it may.
   */
  tryReserve(total: number, more: number): RoomResult {
    if (total > this.capBytes) return { fits: false, victims: [] };
    const room = this.makeRoom(more);
    if (room.fits) this.#reserved += more;
    return room;
  }

  reserve(bytes: number): void {
    this.#reserved += bytes;
  }

  release(bytes: number): void {
    this.#reserved = Math.max(0, this.#reserved - bytes);
  }

  /**
   * Evict least-recently-used unpinned entries until bytes + reserved + extra fits the cap. All or nothing: when it
   * cannot fit, nothing is evicted.
   */
  makeRoom(extra = 0): RoomResult {
    const over = this.#bytes + this.#reserved + extra - this.capBytes;
    if (over <= 0) return { fits: true, victims: [] };
    const victims: MutableEntry[] = [];
    let freed = 0;
    for (const e of this.#entries.values()) {
      if (e.pins > 0) continue;
      victims.push(e);
      freed += e.size;
      if (freed >= over) break;
    }
    if (freed < over) return { fits: false, victims: [] };
    for (const e of victims) this.#remove(e);
    return { fits: true, victims };
  }

  #moveToEnd(e: MutableEntry, lastUse: number): void {
    e.lastUse = lastUse;
    this.#entries.delete(e.key);
    this.#entries.set(e.key, e);
  }

  #remove(e: MutableEntry): void {
    this.#entries.delete(e.key);
    this.#bytes -= e.size;
  }
}
