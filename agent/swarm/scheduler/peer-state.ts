/**
 * PeerState: what the scheduler knows about one connected peer of one blob. Plain bookkeeping, no policy: the
 * scheduler decides, this remembers. In-flight requests carry deadlines on the injected clock.
 */
import type { Bitfield } from './bitfield.ts';
import type { PeerId } from './types.ts';

export interface PeerStats {
  piecesDown: number;
  piecesUp: number;
  bytesDown: number;
  bytesUp: number;
  timeouts: number;
  rejected: number;
}

export class PeerState {
  readonly id: PeerId;
  bitfield: Bitfield;
  /** Our requests to this peer: piece → when it was requested (ms). */
  readonly inflight = new Map<number, number>();
  /** Current pipeline depth: 1..config.pipelineDepth; halved on a timeout, +1 per piece received. */
  depth: number;
  consecutiveTimeouts = 0;
  /** Last time piece bytes moved either way (or the connection opened). */
  lastActiveAt: number;
  /** Do not request anything from this peer before this time (after it rejected a request). */
  backoffUntil = 0;
  /** Pieces not to ask this peer for again before the given time (it timed out on them). */
  readonly avoid = new Map<number, number>();
  readonly stats: PeerStats = { piecesDown: 0, piecesUp: 0, bytesDown: 0, bytesUp: 0, timeouts: 0, rejected: 0 };
  /**
   * Pieces this peer has that are open (we miss them, none is being verified, nobody is asked for them): kept by
   * Downloads so that filling a peer with none skips the picker's scan (a cost shortcut, it decides nothing).
   */
  openPieces = 0;

  constructor(id: PeerId, bitfield: Bitfield, depth: number, now: number) {
    this.id = id;
    this.lastActiveAt = now;
    this.bitfield = bitfield;
    this.depth = depth;
  }

  /** Free pipeline slots right now. */
  freeSlots(now: number): number {
    if (now < this.backoffUntil) return 0;
    return Math.max(0, this.depth - this.inflight.size);
  }

  avoids(piece: number, now: number): boolean {
    const until = this.avoid.get(piece);
    if (until === undefined) return false;
    if (until > now) return true;
    this.avoid.delete(piece);
    return false;
  }

  /** Pieces requested at least `timeoutMs` ago, oldest first. */
  expired(now: number, timeoutMs: number): number[] {
    const before = now - timeoutMs;
    let due: Array<[number, number]> | undefined; // allocated only when something expired (the common case: nothing)
    for (const entry of this.inflight) if (entry[1] <= before) (due ??= []).push(entry);
    if (due === undefined) return [];
    return due.sort((a, b) => a[1] - b[1] || a[0] - b[0]).map(([p]) => p);
  }
}
