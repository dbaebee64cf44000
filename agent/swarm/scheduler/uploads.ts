/**
 * Uploads: the serving side of one blob. At most `maxSlots` pieces are being sent at once (a `sendPiece` without
 * its `uploadDone`); further requests wait in one FIFO queue of at most `maxQueue`, the rest are rejected so the
 * remote asks someone else. A peer that closes frees its slots and loses its queued requests. maxSlots 0 = download
 * only: every request is rejected.
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
  /** Most uploads ever in progress at once (for tests and metrics). */
  peakActive = 0;

  constructor(maxSlots: number, maxQueue: number) {
    this.#maxSlots = maxSlots;
    this.#maxQueue = maxQueue;
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
      const next = this.#queue.shift();
      if (next === undefined) break;
      commands.push(this.#start(next));
    }
    return commands;
  }

  #start(r: UploadRequest): SchedulerCommand {
    this.#active.set(key(r.peerId, r.piece), r);
    this.peakActive = Math.max(this.peakActive, this.#active.size);
    return { type: 'sendPiece', peerId: r.peerId, piece: r.piece };
  }
}
