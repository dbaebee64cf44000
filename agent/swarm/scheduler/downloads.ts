/**
 * Downloads: the requesting side of one blob (Kraken's dispatch + piecerequest): which piece to ask which peer for,
 * pipelining, endgame duplicates and their cancels, request timeouts and the slow-peer penalty. Owns availability,
 * the request table and the set of pieces being verified; works on the PeerStates the scheduler owns. Emits
 * request/cancel commands through `emit`; decisions about connections (closing a peer) go back to the scheduler.
 */
import type { Bitfield } from './bitfield.ts';
import type { SchedulerConfig } from './config.ts';
import type { PeerState } from './peer-state.ts';
import { Availability, type PiecePickerPolicy } from './piece-picker.ts';
import { PieceSet } from './piece-set.ts';
import { RequestTable, inEndgame, mayRequest, type EndgamePolicy } from './request-table.ts';
import type { Clock, PeerId, Rng, SchedulerCommand } from './types.ts';

export interface DownloadsInit {
  readonly pieceCount: number;
  /** Our verified pieces: shared with the scheduler, which sets bits on pieceVerified. */
  readonly have: Bitfield;
  readonly peers: ReadonlyMap<PeerId, PeerState>;
  readonly config: SchedulerConfig;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly policy: PiecePickerPolicy;
  readonly emit: (command: SchedulerCommand) => void;
}

export class Downloads {
  readonly #init: DownloadsInit;
  readonly #endgame: EndgamePolicy;
  readonly availability: Availability;
  readonly #requests: RequestTable;
  /** Pieces received and handed to the shell for hashing: piece → sender. */
  readonly #verifying = new Map<number, PeerId>();
  /** Pieces we do not hold verified (including those being verified): what the picker scans. */
  readonly #missing: PieceSet;
  wastedPieces = 0;

  constructor(init: DownloadsInit) {
    this.#init = init;
    this.#endgame = { threshold: init.config.endgameThreshold, maxPerPiece: init.config.endgameMaxRequestsPerPiece };
    this.availability = new Availability(init.pieceCount);
    this.#requests = new RequestTable(init.pieceCount);
    this.#missing = new PieceSet(init.pieceCount);
    for (let p = 0; p < init.pieceCount; p++) if (!init.have.has(p)) this.#missing.add(p);
  }

  get verifying(): number {
    return this.#verifying.size;
  }

  get endgame(): boolean {
    return inEndgame(this.#init.pieceCount - this.#init.have.count - this.#verifying.size, this.#endgame);
  }

  peerAdded(peer: PeerState): void {
    this.availability.add(peer.bitfield);
    this.#countOpen(peer);
  }

  /** The peer is gone: its requests are void. Returns true when it had requests out (the caller refills). */
  peerRemoved(peer: PeerState): boolean {
    this.availability.remove(peer.bitfield);
    for (const piece of peer.inflight.keys()) this.#unrequest(piece, peer.id);
    const had = peer.inflight.size > 0;
    peer.inflight.clear();
    return had;
  }

  bitfieldReplaced(peer: PeerState, bitfield: Bitfield): void {
    this.availability.remove(peer.bitfield);
    peer.bitfield = bitfield;
    this.availability.add(bitfield);
    this.#countOpen(peer);
  }

  /** Returns false when the peer already had it. */
  peerHas(peer: PeerState, piece: number): boolean {
    if (!peer.bitfield.set(piece)) return false;
    this.availability.increment(piece);
    if (this.#isOpen(piece)) peer.openPieces++;
    return true;
  }

  /**
   * Bytes of `piece` arrived from `peerId` (peer may be undefined: already closed). Refills the sender and any peer
   * whose duplicate request was cancelled (everyone, when this starts endgame).
   */
  received(peerId: PeerId, peer: PeerState | undefined, piece: number): void {
    const wasEndgame = this.endgame;
    if (peer !== undefined) {
      if (peer.inflight.delete(piece)) this.#unrequest(piece, peerId);
      peer.consecutiveTimeouts = 0;
      peer.depth = Math.min(this.#init.config.pipelineDepth, peer.depth + 1);
    }
    const refill = peer === undefined ? [] : [peer];
    if (this.#init.have.has(piece) || this.#verifying.has(piece)) {
      this.wastedPieces++;
    } else {
      const wasOpen = this.#isOpen(piece);
      this.#verifying.set(piece, peerId);
      this.#openChanged(piece, wasOpen);
      refill.push(...this.#cancelOthers(piece, peerId));
    }
    this.#refill(wasEndgame, refill);
  }

  /** The piece is stored (the scheduler has just set the have bit). */
  verified(piece: number, wasEndgame: boolean): void {
    const wasOpen = this.#isOpen(piece);
    this.#verifying.delete(piece);
    this.#missing.delete(piece);
    this.#openChanged(piece, wasOpen);
    this.#refill(wasEndgame, this.#cancelOthers(piece, undefined));
  }

  failed(peerId: PeerId, piece: number): void {
    if (this.#verifying.get(piece) !== peerId) return;
    const wasOpen = this.#isOpen(piece);
    this.#verifying.delete(piece);
    this.#openChanged(piece, wasOpen);
  }

  /**
   * The peer refused a request (busy, or it lacks the piece): back off from it for rejectBackoffMs and offer the
   * piece to the others. When someone else has the piece, this peer is not asked for it again for requestTimeoutMs;
   * when nobody else does, it is asked again after the backoff.
   */
  rejected(peer: PeerState, piece: number): void {
    if (!peer.inflight.delete(piece)) return;
    const now = this.#init.clock.now();
    this.#unrequest(piece, peer.id);
    peer.stats.rejected++;
    peer.backoffUntil = now + this.#init.config.rejectBackoffMs;
    const others = [...this.#init.peers.values()].filter((other) => other !== peer && other.bitfield.has(piece));
    if (others.length > 0) peer.avoid.set(piece, now + this.#init.config.requestTimeoutMs);
    for (const other of others) this.fill(other);
  }

  /** Cancel expired requests, penalise their peers. Returns the peers that reached maxConsecutiveTimeouts. */
  expire(): PeerState[] {
    const now = this.#init.clock.now();
    const { config } = this.#init;
    const unresponsive: PeerState[] = [];
    for (const peer of this.#init.peers.values()) {
      const expired = peer.expired(now);
      if (expired.length === 0) continue;
      for (const piece of expired) {
        peer.inflight.delete(piece);
        this.#unrequest(piece, peer.id);
        peer.avoid.set(piece, now + config.requestTimeoutMs);
        peer.stats.timeouts++;
        peer.consecutiveTimeouts++;
        this.#init.emit({ type: 'cancel', peerId: peer.id, piece });
      }
      peer.depth = Math.max(1, Math.floor(peer.depth / 2));
      if (peer.consecutiveTimeouts >= config.maxConsecutiveTimeouts) unresponsive.push(peer);
    }
    return unresponsive;
  }

  fillAll(): void {
    for (const peer of this.#init.peers.values()) this.fill(peer);
  }

  /** Top up one peer's pipeline: unrequested pieces first; in endgame, then duplicates of requested ones. */
  fill(peer: PeerState): void {
    const { have, clock } = this.#init;
    if (have.complete) return;
    const now = clock.now();
    let slots = peer.freeSlots(now);
    if (slots === 0) return;
    const endgame = this.endgame;
    // Every first-pass candidate is one of the peer's open pieces: with none, the scan would find nothing.
    if (peer.openPieces > 0) slots = this.#fillPass(peer, now, slots, false);
    if (endgame && slots > 0) this.#fillPass(peer, now, slots, true);
  }

  /** One picker pass over the missing pieces; returns the slots left. */
  #fillPass(peer: PeerState, now: number, slots: number, duplicates: boolean): number {
    const { have, config, policy, rng } = this.#init;
    const wanted = (piece: number): boolean =>
      peer.bitfield.has(piece) && !have.has(piece) && !this.#verifying.has(piece) && !peer.inflight.has(piece) && !peer.avoids(piece, now);
    const isCandidate = duplicates
      ? (p: number): boolean => wanted(p) && mayRequest(this.#requests.count(p), true, this.#endgame)
      : (p: number): boolean => wanted(p) && this.#requests.count(p) === 0;
    for (const piece of policy.pick({ pieces: this.#missing.items, limit: slots, isCandidate, availability: this.availability, rng })) {
      peer.inflight.set(piece, now + config.requestTimeoutMs);
      this.#request(piece, peer.id);
      this.#init.emit({ type: 'request', peerId: peer.id, piece });
      slots--;
    }
    return slots;
  }

  /** Fill only `peers`, unless endgame has just begun: then everyone may take duplicates. */
  #refill(wasEndgame: boolean, peers: readonly PeerState[]): void {
    if (!wasEndgame && this.endgame) this.fillAll();
    else for (const peer of peers) this.fill(peer);
  }

  /** Cancel every outstanding request for `piece` except to `keep`; returns the peers whose slot was freed. */
  #cancelOthers(piece: number, keep: PeerId | undefined): PeerState[] {
    const freed: PeerState[] = [];
    for (const other of this.#requests.requesters(piece)) {
      if (other === keep) continue;
      this.#unrequest(piece, other);
      const peer = this.#init.peers.get(other);
      if (peer !== undefined) {
        peer.inflight.delete(piece);
        freed.push(peer);
      }
      this.#init.emit({ type: 'cancel', peerId: other, piece });
    }
    return freed;
  }

  // --- open pieces (PeerState.openPieces) ----------------------------------------------------------------------

  /** Missing, not being verified, nobody asked: a piece a first fill pass could choose. */
  #isOpen(piece: number): boolean {
    return this.#missing.has(piece) && !this.#verifying.has(piece) && this.#requests.count(piece) === 0;
  }

  /** The piece became open or stopped being open: adjust the count of every connected peer that has it. */
  #openChanged(piece: number, wasOpen: boolean): void {
    const open = this.#isOpen(piece);
    if (open === wasOpen) return;
    const delta = open ? 1 : -1;
    for (const peer of this.#init.peers.values()) if (peer.bitfield.has(piece)) peer.openPieces += delta;
  }

  #countOpen(peer: PeerState): void {
    let n = 0;
    for (const piece of this.#missing.items) if (peer.bitfield.has(piece) && this.#isOpen(piece)) n++;
    peer.openPieces = n;
  }

  #request(piece: number, peerId: PeerId): void {
    const wasOpen = this.#isOpen(piece);
    this.#requests.add(piece, peerId);
    this.#openChanged(piece, wasOpen);
  }

  #unrequest(piece: number, peerId: PeerId): void {
    const wasOpen = this.#isOpen(piece);
    this.#requests.remove(piece, peerId);
    this.#openChanged(piece, wasOpen);
  }
}
