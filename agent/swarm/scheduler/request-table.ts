/**
 * RequestTable: which peers we have asked for each piece right now (the per-piece view; PeerState.inflight is the
 * per-peer view, and the scheduler keeps both in step). Also decides endgame: near the end the last pieces may be
 * requested from several peers at once, and the first copy to arrive cancels the others.
 */
import type { PeerId } from './types.ts';

export class RequestTable {
  readonly #byPiece = new Map<number, Set<PeerId>>();
  /** Requesters per piece (count() is on the picker's hot path). */
  readonly #counts: Uint32Array;

  constructor(pieceCount: number) {
    this.#counts = new Uint32Array(pieceCount);
  }

  count(piece: number): number {
    return this.#counts[piece] ?? 0;
  }

  requesters(piece: number): PeerId[] {
    return [...(this.#byPiece.get(piece) ?? [])];
  }

  add(piece: number, peerId: PeerId): void {
    let set = this.#byPiece.get(piece);
    if (set === undefined) this.#byPiece.set(piece, (set = new Set()));
    if (set.has(peerId)) return;
    set.add(peerId);
    this.#counts[piece] = set.size;
  }

  remove(piece: number, peerId: PeerId): void {
    const set = this.#byPiece.get(piece);
    if (set === undefined || !set.delete(peerId)) return;
    this.#counts[piece] = set.size;
    if (set.size === 0) this.#byPiece.delete(piece);
  }

  /** Pieces with at least one request out. */
  get size(): number {
    return this.#byPiece.size;
  }
}

/** Endgame policy: on when few enough pieces are missing; then up to `maxPerPiece` peers per piece. */
export interface EndgamePolicy {
  readonly threshold: number;
  readonly maxPerPiece: number;
}

export function inEndgame(missing: number, policy: EndgamePolicy): boolean {
  return missing > 0 && missing <= policy.threshold && policy.maxPerPiece > 1;
}

/** May a further peer be asked for a piece that `outstanding` peers are already asked for? */
export function mayRequest(outstanding: number, endgame: boolean, policy: EndgamePolicy): boolean {
  return outstanding === 0 || (endgame && outstanding < policy.maxPerPiece);
}
