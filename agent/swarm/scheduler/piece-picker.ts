/**
 * Piece selection: availability counts (how many connected peers have each piece) and the policy that turns
 * "pieces this peer could give us" into "pieces to request". Kraken's dispatch/piecerequest split: the policy is an
 * interface so that the simulator can compare policies; rarest-first is the default.
 */
import type { Bitfield } from './bitfield.ts';
import type { Rng } from './types.ts';

/** How many connected peers have each piece. */
export class Availability {
  readonly #counts: Uint32Array;

  constructor(pieceCount: number) {
    this.#counts = new Uint32Array(pieceCount);
  }

  get(piece: number): number {
    return this.#counts[piece] ?? 0;
  }

  increment(piece: number): void {
    this.#counts[piece] = this.get(piece) + 1;
  }

  decrement(piece: number): void {
    this.#counts[piece] = Math.max(0, this.get(piece) - 1);
  }

  add(bitfield: Bitfield): void {
    for (const p of bitfield.pieces()) this.increment(p);
  }

  remove(bitfield: Bitfield): void {
    for (const p of bitfield.pieces()) this.decrement(p);
  }
}

export interface PickInput {
  /** The pieces to consider (typically: the ones we still miss), in any order. */
  readonly pieces: readonly number[];
  /** At most this many pieces. */
  readonly limit: number;
  /** True for a piece we may ask this peer for now (it has it, we need it, not excluded). */
  readonly isCandidate: (piece: number) => boolean;
  readonly availability: Availability;
  readonly rng: Rng;
}

export interface PiecePickerPolicy {
  readonly name: string;
  /** Up to `limit` distinct candidate pieces, best first. */
  pick(input: PickInput): number[];
}

/**
 * Rarest first: the candidates with the fewest holders among connected peers. Ties are broken uniformly at random
 * with the injected RNG (each candidate that could still make the cut draws a random key), which keeps peers that
 * see the same availability from all asking for the same piece. One pass over the pieces, O(pieceCount + k·hits).
 */
export const rarestFirst: PiecePickerPolicy = {
  name: 'rarest_first',
  pick({ pieces, limit, isCandidate, availability, rng }: PickInput): number[] {
    if (limit <= 0) return [];
    // Best `limit` so far, sorted by (availability, key) ascending.
    const best: Array<{ piece: number; availability: number; key: number }> = [];
    for (const piece of pieces) {
      const a = availability.get(piece);
      const worst = best.length === limit ? best[best.length - 1] : undefined;
      if (worst !== undefined && a > worst.availability) continue;
      if (!isCandidate(piece)) continue;
      const key = rng.next();
      if (worst !== undefined && a === worst.availability && key >= worst.key) continue;
      let i = best.length;
      while (i > 0) {
        const prev = best[i - 1];
        if (prev === undefined || prev.availability < a || (prev.availability === a && prev.key <= key)) break;
        i--;
      }
      best.splice(i, 0, { piece, availability: a, key });
      if (best.length > limit) best.pop();
    }
    return best.map((b) => b.piece);
  },
};

/** Lowest index first: the baseline policy for simulations (and for streaming a blob in order). */
export const sequential: PiecePickerPolicy = {
  name: 'sequential',
  pick({ pieces, limit, isCandidate }: PickInput): number[] {
    const chosen: number[] = [];
    for (const piece of pieces) if (isCandidate(piece)) chosen.push(piece);
    return chosen.sort((a, b) => a - b).slice(0, Math.max(0, limit));
  },
};
