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

/** Weight of a new sample in the smoothed piece latency (an EWMA over about the last ten pieces). */
const LATENCY_WEIGHT = 0.1;
/** Floor of the latency-derived rejection times (ms): clock granularity, not policy. */
const MIN_REJECTION_MS = 5;
/** Request timeout and avoid windows last this many piece latencies; a reject backoff, 1/this of one. */
const LATENCY_MULTIPLE = 4;

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
  /** Smoothed time from request to piece arrival (ms), over all peers; undefined until the first piece. */
  #pieceLatencyMs: number | undefined;

  constructor(init: DownloadsInit) {
    this.#init = init;
    this.#endgame = { threshold: init.config.endgameThreshold, maxPerPiece: init.config.endgameMaxRequestsPerPiece };
    this.availability = new Availability(init.pieceCount);
    this.#requests = new RequestTable(init.pieceCount);
    this.#missing = new PieceSet(init.pieceCount);
    for (let p = 0; p < init.pieceCount; p++) if (!init.have.has(p)) this.#missing.add(p);
  }

  /** The piece latency L that the request timeout and the rejection times follow. */
  get pieceLatencyMs(): number | undefined {
    return this.#pieceLatencyMs;
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
      const requestedAt = peer.inflight.get(piece);
      if (requestedAt !== undefined) {
        peer.inflight.delete(piece);
        this.#unrequest(piece, peerId);
        this.#observeLatency(this.#init.clock.now() - requestedAt);
      }
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
   * The peer refused a request (busy, or it lacks the piece): back off from it and offer the piece to the others.
   * When someone else has the piece, this peer is not asked for it again for a while; when nobody else does, it is
   * asked again after the backoff. Both times follow the observed piece latency L (rejectionTimes()).
   */
  rejected(peer: PeerState, piece: number): void {
    if (!peer.inflight.delete(piece)) return;
    const now = this.#init.clock.now();
    this.#unrequest(piece, peer.id);
    peer.stats.rejected++;
    const { backoffMs, avoidMs } = this.rejectionTimes();
    peer.backoffUntil = now + backoffMs;
    const others = [...this.#init.peers.values()].filter((other) => other !== peer && other.bitfield.has(piece));
    if (others.length > 0) peer.avoid.set(piece, now + avoidMs);
    for (const other of others) this.fill(other);
  }

  /**
   * What a rejection costs the rejecting peer, from the piece latency L: no request for min(rejectBackoffMs, L/4),
   * and not the rejected piece for min(requestTimeoutMs, 4·L) when others have it. A busy peer frees a slot about
   * every L / slots, so a quarter of L retries soon without hammering it; after 4·L its queue has turned over. Fixed
   * times were wrong in one regime or the other (simulator, see bench/README.md): 0.5 s idles a link whose pieces
   * take 0.2 s, and a 10 s avoid window is longer than a whole fast rollout. Before any piece arrived: the maxima.
   */
  rejectionTimes(): { backoffMs: number; avoidMs: number } {
    const { rejectBackoffMs, requestTimeoutMs } = this.#init.config;
    const latency = this.#pieceLatencyMs;
    if (latency === undefined) return { backoffMs: rejectBackoffMs, avoidMs: requestTimeoutMs };
    return {
      backoffMs: Math.min(rejectBackoffMs, Math.max(MIN_REJECTION_MS, latency / LATENCY_MULTIPLE)),
      avoidMs: Math.min(requestTimeoutMs, Math.max(MIN_REJECTION_MS, latency * LATENCY_MULTIPLE)),
    };
  }

  #observeLatency(ms: number): void {
    const sample = Math.max(0, ms);
    this.#pieceLatencyMs = this.#pieceLatencyMs === undefined ? sample : this.#pieceLatencyMs + LATENCY_WEIGHT * (sample - this.#pieceLatencyMs);
  }

  /**
   * How long a request may stay unanswered: max(requestTimeoutMs, 4·L). With slow links and a full pipeline a piece
   * can take several seconds to arrive (the rollout emulation's scale: B = 64 KiB/s, ~6 flows per link, L ≈ 3 s), and
   * a fixed 10 s cancelled pieces that were arriving, then closed their peers as unresponsive (simulator, N = 500:
   * 1,180 such closes; p99 1.69 × T* with a fixed 10 s, 1.48 with 20 s).
   */
  requestTimeoutMs(): number {
    const { requestTimeoutMs } = this.#init.config;
    const latency = this.#pieceLatencyMs;
    return latency === undefined ? requestTimeoutMs : Math.max(requestTimeoutMs, latency * LATENCY_MULTIPLE);
  }

  /** Cancel expired requests, penalise their peers. Returns the peers that reached maxConsecutiveTimeouts. */
  expire(): PeerState[] {
    const now = this.#init.clock.now();
    const { config } = this.#init;
    const timeoutMs = this.requestTimeoutMs();
    const unresponsive: PeerState[] = [];
    for (const peer of this.#init.peers.values()) {
      const expired = peer.expired(now, timeoutMs);
      if (expired.length === 0) continue;
      for (const piece of expired) {
        peer.inflight.delete(piece);
        this.#unrequest(piece, peer.id);
        peer.avoid.set(piece, now + timeoutMs);
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
    const { have, policy, rng } = this.#init;
    const wanted = (piece: number): boolean =>
      peer.bitfield.has(piece) && !have.has(piece) && !this.#verifying.has(piece) && !peer.inflight.has(piece) && !peer.avoids(piece, now);
    const isCandidate = duplicates
      ? (p: number): boolean => wanted(p) && mayRequest(this.#requests.count(p), true, this.#endgame)
      : (p: number): boolean => wanted(p) && this.#requests.count(p) === 0;
    for (const piece of policy.pick({ pieces: this.#missing.items, limit: slots, isCandidate, availability: this.availability, rng })) {
      peer.inflight.set(piece, now);
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
