/**
 * PieceSet: a set of piece indices with O(1) add/delete/has and a dense array to scan, so the picker visits only
 * the pieces we still miss rather than the whole blob. Order is insertion order disturbed by swap-removal:
 * deterministic, but not sorted.
 */
export class PieceSet {
  readonly #items: number[] = [];
  /** piece → position in #items, -1 when absent. */
  readonly #position: Int32Array;

  constructor(capacity: number, initial: Iterable<number> = []) {
    this.#position = new Int32Array(capacity).fill(-1);
    for (const p of initial) this.add(p);
  }

  get size(): number {
    return this.#items.length;
  }

  /** The members, to scan (do not mutate). */
  get items(): readonly number[] {
    return this.#items;
  }

  has(piece: number): boolean {
    return (this.#position[piece] ?? -1) >= 0;
  }

  add(piece: number): void {
    if (this.has(piece)) return;
    this.#position[piece] = this.#items.length;
    this.#items.push(piece);
  }

  delete(piece: number): void {
    const at = this.#position[piece] ?? -1;
    if (at < 0) return;
    const last = this.#items.pop() as number;
    if (last !== piece) {
      this.#items[at] = last;
      this.#position[last] = at;
    }
    this.#position[piece] = -1;
  }
}
