/**
 * Uploads: the serving side of one blob. At most `maxSlots` pieces are being sent at once (a `sendPiece` without
 * its `uploadDone`); further requests wait in one FIFO queue of at most `maxQueue`, the rest are rejected so the
 * remote asks someone else. A peer that closes frees its slots and loses its queued requests. maxSlots 0 = download
 * only: every request is rejected.
 *
 * Fresh first (when `freshFirst()` is true: we are complete and config.seedFreshFirst is on): new pieces enter a
 * swarm only through the nodes that have them, so a complete node's slots should carry pieces its peers lack. A
 * piece's copies = max(times we started sending it, connected peers that have it). The queue is served fewest copies
 * first (FIFO among equals), and whenever we start a piece with no copies, queued requests for pieces that have
 * copies (including the one being started) are rejected: those requesters fetch them from the peers that have them
 * and ask us for something new. Without any zero-copy request queued, duplicates are served (better than idling).
 */
import type { PeerId, SchedulerCommand } from './types.ts';

interface UploadRequest {
  readonly peerId: PeerId;
  readonly piece: number;
}

const key = (peerId: PeerId, piece: number): string => `${piece}\u0000${peerId}`;

export class Uploads {
  readonly #maxSlots: number;
  readonly #maxQueue: number;
  readonly #active = new Map<string, UploadRequest>();
  #queue: UploadRequest[] = [];
  /** Times we started sending each piece. */
  readonly #sent: Uint32Array;
  readonly #freshFirst: () => boolean;
  readonly #holders: (piece: number) => number;
  /** Most uploads ever in progress at once (for tests and metrics). */
  peakActive = 0;

  /**
   * `freshFirst`: whether to apply the fresh-first order now; `holders`: how many connected peers have a piece.
   * Both default to off (plain FIFO).
   */
  constructor(maxSlots: number, maxQueue: number, pieceCount = 0, freshFirst: () => boolean = () => false, holders: (piece: number) => number = () => 0) {
    this.#maxSlots = maxSlots;
    this.#maxQueue = maxQueue;
    this.#sent = new Uint32Array(pieceCount);
    this.#freshFirst = freshFirst;
    this.#holders = holders;
  }

  get active(): number {
    return this.#active.size;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** True while we send to or hold queued requests of `peerId`. */
  busyWith(peerId: PeerId): boolean {
    for (const r of this.#active.values()) if (r.peerId === peerId) return true;
    return this.#queue.some((r) => r.peerId === peerId);
  }

  /** A remote asked for `piece`; `have` says whether we hold it verified. */
  request(peerId: PeerId, piece: number, have: boolean): SchedulerCommand[] {
    if (!have || this.#maxSlots === 0) return [{ type: 'rejectRequest', peerId, piece }];
    const k = key(peerId, piece);
    if (this.#active.has(k) || this.#queue.some((r) => r.peerId === peerId && r.piece === piece)) return [];
    if (this.#active.size < this.#maxSlots) return [this.#start({ peerId, piece })];
    if (this.#queue.length < this.#maxQueue) {
      this.#queue.push({ peerId, piece });
      return [];
    }
    return [{ type: 'rejectRequest', peerId, piece }];
  }

  /** The remote cancelled: drop it if still queued (a piece already being sent finishes; uploadDone follows). */
  cancel(peerId: PeerId, piece: number): void {
    this.#queue = this.#queue.filter((r) => r.peerId !== peerId || r.piece !== piece);
  }

  /** A send finished. Returns true when it was one of ours (false: unknown or already released), plus next sends. */
  done(peerId: PeerId, piece: number): { known: boolean; commands: SchedulerCommand[] } {
    const known = this.#active.delete(key(peerId, piece));
    return { known, commands: this.#drain() };
  }

  /** The peer went away: free its slots, forget its queued requests, start the next ones. */
  peerGone(peerId: PeerId): SchedulerCommand[] {
    for (const [k, r] of this.#active) if (r.peerId === peerId) this.#active.delete(k);
    this.#queue = this.#queue.filter((r) => r.peerId !== peerId);
    return this.#drain();
  }

  #drain(): SchedulerCommand[] {
    const commands: SchedulerCommand[] = [];
    while (this.#active.size < this.#maxSlots) {
      const next = this.#freshFirst() ? this.#takeFreshest(commands) : this.#queue.shift();
      if (next === undefined) break;
      commands.push(this.#start(next));
    }
    return commands;
  }

  /** Copies of `piece` we know of in our neighbourhood: sent by us or held by a connected peer. */
  #copies(piece: number): number {
    return Math.max(this.#sent[piece] ?? 0, this.#holders(piece));
  }

  /** The queued request with the fewest copies (FIFO among equals); starting a fresh one rejects queued duplicates. */
  #takeFreshest(commands: SchedulerCommand[]): UploadRequest | undefined {
    let best = -1;
    let bestCopies = Infinity;
    this.#queue.forEach((r, i) => {
      const copies = this.#copies(r.piece);
      if (copies < bestCopies) {
        best = i;
        bestCopies = copies;
      }
    });
    const [next] = best < 0 ? [] : this.#queue.splice(best, 1);
    if (next === undefined) return undefined;
    if (bestCopies === 0) {
      const keep: UploadRequest[] = [];
      for (const r of this.#queue) {
        if (r.piece === next.piece || this.#copies(r.piece) > 0) commands.push({ type: 'rejectRequest', peerId: r.peerId, piece: r.piece });
        else keep.push(r);
      }
      this.#queue = keep;
    }
    return next;
  }

  #start(r: UploadRequest): SchedulerCommand {
    this.#sent[r.piece] = (this.#sent[r.piece] ?? 0) + 1;
    this.#active.set(key(r.peerId, r.piece), r);
    this.peakActive = Math.max(this.peakActive, this.#active.size);
    return { type: 'sendPiece', peerId: r.peerId, piece: r.piece };
  }
}
