/**
 * Scheduler: the piece-exchange brain for one blob. A pure state machine: `handle(event)` returns the commands the
 * shell must execute. No I/O, no timers, no Date.now(), no Math.random(): time and randomness are injected.
 *
 * DEV DOCS
 * --------
 * Layout (Kraken's lib/torrent/scheduler split, one concept per file):
 *   types.ts         events, commands, Clock, Rng (+ seededRng, ManualClock for tests and the simulator)
 *   config.ts        SchedulerConfig, documented defaults, validation
 *   bitfield.ts      compact piece set with count and wire form
 *   piece-picker.ts  Availability counts + PiecePickerPolicy (rarestFirst default, sequential)
 *   piece-set.ts     O(1) set of missing pieces with a dense array the picker scans
 *   request-table.ts per-piece outstanding requests + endgame rule
 *   peer-state.ts    per connected peer: bitfield, in-flight requests with deadlines, pipeline depth, stats
 *   downloads.ts     requesting side: picking, pipelining, endgame duplicates + cancels, timeouts, verification set
 *   conn-state.ts    discovered / dialing / connected peers, connection cap, blacklist with expiry
 *   uploads.ts       upload slots + bounded FIFO queue
 *   scheduler.ts     this file: routes events to the parts above, owns peers/connections/announces, emits commands
 *
 * Contract with the shell (agent sockets or simulator):
 *   - Feed every event for this blob through `handle`, in the order it happened; execute the returned commands in
 *     order. `handle` never throws on network input it can reason about (unknown peers, stale pieces are ignored);
 *     it throws RangeError on programming errors (a bitfield of the wrong size, a piece index out of range): the
 *     wire decoder must check indices and bitfield lengths against pieceCount and close a peer that sends bad ones.
 *   - One connection per peer pair: the shell resolves simultaneous dials before `peerConnected` (a second
 *     `peerConnected` for a connected peer is answered with close 'duplicate').
 *   - Tick regularly (e.g. every 100–500 ms). Request timeouts, announces, redials and backoff expiry happen only on
 *     ticks. The first tick announces ('started').
 *   - `connect` reserves a connection slot; answer it with `peerConnected` or `peerClosed` (dial failed).
 *   - `close`: the scheduler forgets the peer at once; a later `peerClosed` for it is ignored.
 *   - Every received piece is hashed by the shell, which answers `pieceVerified` (stored) or `pieceFailed`. A piece
 *     that arrives after we already have it is counted as waste; the shell may still hash it (verified duplicates
 *     are ignored, failed ones still blacklist their sender).
 *   - `sendPiece` occupies an upload slot until `uploadDone` (or `peerClosed`) for it. A remote `cancel` only drops a
 *     queued request; a piece already being written is finished (the shell may abort it and send uploadDone).
 *   - `sendHave` is emitted per peer, only to peers whose bitfield lacks the piece (no broadcast command).
 *   - A piece we need is accepted from any connected or just-closed peer even if unrequested (verification is the
 *     guard); the shell caps frame sizes.
 *
 * Download policy:
 *   - Complete peers never request. Requests go to every connected peer with free pipeline slots
 *     (depth ≤ pipelineDepth), pieces chosen by the picker policy (rarest first, RNG tie-break) among pieces the peer
 *     has, we lack, are not being verified, are not already requested, and the peer is not avoided for.
 *   - Endgame: once ≤ endgameThreshold pieces are missing, a piece may be requested from up to
 *     endgameMaxRequestsPerPiece peers; when one copy arrives the other requests are cancelled.
 *   - Piece latency L: the smoothed time from request to arrival over all peers of this blob (downloads.ts). The
 *     time constants below follow it, so one configuration fits pieces of 30 ms and of 3 s.
 *   - Timeout (tick): a request unanswered for max(requestTimeoutMs, 4·L) is cancelled, that piece avoided on that
 *     peer for as long, the peer's depth halved (it grows back by one per delivered piece), and someone else asked.
 *     maxConsecutiveTimeouts in a row → close 'unresponsive' and keep the peer away for slowPeerBackoffMs.
 *   - Rejected request: back off from that peer for min(rejectBackoffMs, L/4); when others have the piece, ask them
 *     and avoid it on the rejecting peer for min(requestTimeoutMs, 4·L). Before the first piece: the configured
 *     times.
 *   - Failed piece: close 'bad_piece', blacklist for blacklistMs (no reconnect, inbound refused), re-request elsewhere.
 * Upload policy (uploads.ts): at most maxUploadSlots sends, then a queue of maxUploadQueue, then rejections. Once
 *   complete, with seedFreshFirst (default on), the queue is served fewest copies first (copies = times we sent the
 *   piece, or connected peers holding it, whichever is more) and starting a zero-copy piece rejects queued requests
 *   for pieces with copies: a seeder spends its link on pieces the swarm does not have yet, the requesters get the
 *   others from the peers that have them (they back off from the seeder only). Measured: a 1 seeder + 8 agent
 *   rollout, seeder egress 1.75–2.0 × S → 1.3–1.45 × S (bench:swarm); 1.0–1.06 × S in the sim
 *   (scheduler-swarm.test.ts (i)).
 * Connections: dial discovered peers in tracker order while under maxConnections and, of those, at most
 *   maxOutboundConnections dialled by us (only while incomplete): the rest of the cap is kept for inbound, so a fresh
 *   swarm whose nodes all dial at once still connects; inbound beyond the cap is closed 'capacity'. When both sides are complete the connection is closed 'both_complete'.
 *   A connection on which no piece moved either way for idleTimeoutMs is closed 'idle' (tick) when its slot could
 *   serve someone else: we are seeding, or discovered peers wait for a slot. Closed peers are forgotten; the next
 *   announce rediscovers them.
 * Announce: every announceIntervalMs while downloading, seedAnnounceIntervalMs once complete, and at once on
 *   completion; early (minAnnounceIntervalMs after the last) while downloading with no discovered peer left to dial
 *   and outbound slots free.
 */
import { pieceRange } from '../../../shared/swarm/metainfo.ts';
import { Bitfield } from './bitfield.ts';
import type { SchedulerConfig } from './config.ts';
import { ConnState } from './conn-state.ts';
import { Downloads } from './downloads.ts';
import { PeerState } from './peer-state.ts';
import { rarestFirst, type PiecePickerPolicy } from './piece-picker.ts';
import type { AnnounceReason, BlobShape, Clock, CloseReason, PeerId, Rng, SchedulerCommand, SchedulerEvent } from './types.ts';
import { Uploads } from './uploads.ts';

export interface SchedulerInit {
  /** Our own peer id (never dialled, even when the tracker lists it). */
  readonly selfId: PeerId;
  readonly blob: BlobShape;
  /** Pieces we already hold verified. Copied. Default: none. */
  readonly have?: Bitfield;
  readonly config: SchedulerConfig;
  readonly clock: Clock;
  readonly rng: Rng;
  /** Default: rarestFirst. */
  readonly policy?: PiecePickerPolicy;
}

export interface SchedulerStats {
  readonly have: number;
  readonly verifying: number;
  readonly connected: number;
  readonly requestsInFlight: number;
  readonly uploadsActive: number;
  readonly uploadsQueued: number;
  readonly peakUploads: number;
  readonly piecesUploaded: number;
  readonly bytesUploaded: number;
  readonly piecesDownloaded: number;
  readonly wastedPieces: number;
  readonly endgame: boolean;
  readonly complete: boolean;
  /** Smoothed request → arrival time of pieces (ms); undefined before the first piece. */
  readonly pieceLatencyMs: number | undefined;
}

export class Scheduler {
  readonly #selfId: PeerId;
  readonly #blob: BlobShape;
  readonly #config: SchedulerConfig;
  readonly #clock: Clock;
  readonly #have: Bitfield;
  readonly #peers = new Map<PeerId, PeerState>();
  readonly #conns: ConnState;
  readonly #downloads: Downloads;
  readonly #uploads: Uploads;
  #nextAnnounceAt: number;
  #lastAnnounceAt = Number.NEGATIVE_INFINITY;
  #started = false;
  #completeEmitted: boolean;
  #out: SchedulerCommand[] = [];
  readonly #counters = { piecesUploaded: 0, bytesUploaded: 0, piecesDownloaded: 0 };

  constructor(init: SchedulerInit) {
    const { blob, config } = init;
    if (!Number.isSafeInteger(blob.pieceCount) || blob.pieceCount < 1) throw new RangeError(`pieceCount must be ≥ 1, got ${blob.pieceCount}`);
    if (init.have !== undefined && init.have.size !== blob.pieceCount) throw new RangeError(`have bitfield has ${init.have.size} pieces, blob ${blob.pieceCount}`);
    this.#selfId = init.selfId;
    this.#blob = blob;
    this.#config = config;
    this.#clock = init.clock;
    this.#have = init.have?.clone() ?? new Bitfield(blob.pieceCount);
    this.#conns = new ConnState(init.selfId, config.maxConnections, config.maxOutboundConnections);
    this.#downloads = new Downloads({
      pieceCount: blob.pieceCount, have: this.#have, peers: this.#peers, config, clock: init.clock, rng: init.rng, policy: init.policy ?? rarestFirst,
      emit: (command) => this.#out.push(command),
    });
    this.#uploads = new Uploads(config.maxUploadSlots, config.maxUploadQueue, blob.pieceCount, () => config.seedFreshFirst && this.#have.complete, (piece) =>
      this.#downloads.availability.get(piece));
    this.#nextAnnounceAt = init.clock.now();
    this.#completeEmitted = this.#have.complete;
  }

  get selfId(): PeerId {
    return this.#selfId;
  }

  get complete(): boolean {
    return this.#have.complete;
  }

  /** A copy of our verified pieces (for the handshake). */
  bitfield(): Bitfield {
    return this.#have.clone();
  }

  connectedPeers(): PeerId[] {
    return [...this.#peers.keys()];
  }

  /** Per-peer counters (bytes up/down, timeouts, rejections), undefined when not connected. */
  peerStats(peerId: PeerId): PeerState['stats'] | undefined {
    const stats = this.#peers.get(peerId)?.stats;
    return stats === undefined ? undefined : { ...stats };
  }

  stats(): SchedulerStats {
    let requestsInFlight = 0;
    for (const peer of this.#peers.values()) requestsInFlight += peer.inflight.size;
    return {
      have: this.#have.count,
      verifying: this.#downloads.verifying,
      connected: this.#peers.size,
      requestsInFlight,
      uploadsActive: this.#uploads.active,
      uploadsQueued: this.#uploads.queued,
      peakUploads: this.#uploads.peakActive,
      ...this.#counters,
      wastedPieces: this.#downloads.wastedPieces,
      endgame: this.#downloads.endgame,
      complete: this.#have.complete,
      pieceLatencyMs: this.#downloads.pieceLatencyMs,
    };
  }

  handle(event: SchedulerEvent): SchedulerCommand[] {
    this.#out = [];
    if ('piece' in event) this.#checkPiece(event.piece);
    if ('bitfield' in event) this.#checkBitfield(event.bitfield);
    switch (event.type) {
      case 'peersDiscovered':
        this.#conns.discover(event.peers, this.#clock.now());
        this.#dial();
        break;
      case 'peerConnected':
        this.#onConnected(event.peerId, event.bitfield);
        break;
      case 'peerClosed':
        if (this.#conns.closed(event.peerId)) this.#drop(event.peerId);
        this.#dial();
        break;
      case 'bitfield':
        this.#onPeerBitfieldChanged(event.peerId, (peer) => this.#downloads.bitfieldReplaced(peer, event.bitfield.clone()));
        break;
      case 'have':
        this.#onPeerBitfieldChanged(event.peerId, (peer) => this.#downloads.peerHas(peer, event.piece));
        break;
      case 'pieceReceived':
        this.#onPieceReceived(event.peerId, event.piece);
        break;
      case 'pieceVerified':
        this.#onPieceVerified(event.piece);
        break;
      case 'pieceFailed':
        this.#onPieceFailed(event.peerId, event.piece);
        break;
      case 'requestRejected': {
        const peer = this.#peers.get(event.peerId);
        if (peer !== undefined) this.#downloads.rejected(peer, event.piece);
        break;
      }
      case 'requestReceived':
        this.#out.push(...this.#uploads.request(event.peerId, event.piece, this.#peers.has(event.peerId) && this.#have.has(event.piece)));
        break;
      case 'cancelReceived':
        this.#uploads.cancel(event.peerId, event.piece);
        break;
      case 'uploadDone':
        this.#onUploadDone(event.peerId, event.piece);
        break;
      case 'tick':
        this.#onTick();
        break;
    }
    return this.#out;
  }

  // --- connections -------------------------------------------------------------------------------------------

  #onConnected(peerId: PeerId, bitfield: Bitfield): void {
    const refused = this.#conns.admit(peerId, this.#clock.now());
    if (refused !== undefined) {
      this.#out.push({ type: 'close', peerId, reason: refused });
      return;
    }
    if (this.#have.complete && bitfield.complete) {
      this.#conns.closed(peerId);
      this.#out.push({ type: 'close', peerId, reason: 'both_complete' });
      return;
    }
    const peer = new PeerState(peerId, bitfield.clone(), this.#config.pipelineDepth, this.#clock.now());
    this.#peers.set(peerId, peer);
    this.#downloads.peerAdded(peer);
    this.#downloads.fill(peer);
  }

  /** We close: forget the peer now; for a misbehaving one, refuse it for `blockMs`. */
  #close(peer: PeerState, reason: CloseReason, blockMs?: number): void {
    this.#out.push({ type: 'close', peerId: peer.id, reason });
    this.#conns.closed(peer.id);
    if (blockMs !== undefined && (reason === 'bad_piece' || reason === 'unresponsive')) {
      this.#conns.block(peer.id, { until: this.#clock.now() + blockMs, reason });
    }
    this.#drop(peer.id);
  }

  #drop(peerId: PeerId): void {
    const peer = this.#peers.get(peerId);
    if (peer === undefined) return;
    this.#peers.delete(peerId);
    if (this.#downloads.peerRemoved(peer)) this.#downloads.fillAll();
    this.#out.push(...this.#uploads.peerGone(peerId));
  }

  #dial(): void {
    if (this.#have.complete) return;
    for (const { peerId, address } of this.#conns.takeDials(this.#clock.now())) this.#out.push({ type: 'connect', peerId, address });
  }

  #closeIfBothComplete(peer: PeerState): boolean {
    if (!this.#have.complete || !peer.bitfield.complete) return false;
    this.#close(peer, 'both_complete');
    return true;
  }

  #onPeerBitfieldChanged(peerId: PeerId, change: (peer: PeerState) => unknown): void {
    const peer = this.#peers.get(peerId);
    if (peer === undefined) return;
    change(peer);
    if (!this.#closeIfBothComplete(peer)) this.#downloads.fill(peer);
  }

  // --- pieces ------------------------------------------------------------------------------------------------

  #onPieceReceived(peerId: PeerId, piece: number): void {
    const peer = this.#peers.get(peerId);
    if (peer !== undefined) {
      peer.lastActiveAt = this.#clock.now();
      peer.stats.piecesDown++;
      peer.stats.bytesDown += this.#pieceBytes(piece);
    }
    this.#downloads.received(peerId, peer, piece);
  }

  #onPieceVerified(piece: number): void {
    const wasEndgame = this.#downloads.endgame;
    if (!this.#have.set(piece)) {
      this.#downloads.verified(piece, wasEndgame);
      return;
    }
    this.#counters.piecesDownloaded++;
    this.#downloads.verified(piece, wasEndgame);
    for (const peer of this.#peers.values()) {
      if (!peer.bitfield.has(piece)) this.#out.push({ type: 'sendHave', peerId: peer.id, piece });
    }
    if (this.#have.complete && !this.#completeEmitted) {
      this.#completeEmitted = true;
      this.#out.push({ type: 'complete' });
      this.#announce('completed');
      for (const peer of [...this.#peers.values()]) this.#closeIfBothComplete(peer);
    }
  }

  #onPieceFailed(peerId: PeerId, piece: number): void {
    this.#downloads.failed(peerId, piece);
    const peer = this.#peers.get(peerId);
    if (peer !== undefined) this.#close(peer, 'bad_piece', this.#config.blacklistMs);
    else this.#conns.block(peerId, { until: this.#clock.now() + this.#config.blacklistMs, reason: 'bad_piece' });
    this.#downloads.fillAll(); // the piece is wanted again
  }

  #onUploadDone(peerId: PeerId, piece: number): void {
    const { known, commands } = this.#uploads.done(peerId, piece);
    if (known) {
      const bytes = this.#pieceBytes(piece);
      this.#counters.piecesUploaded++;
      this.#counters.bytesUploaded += bytes;
      const peer = this.#peers.get(peerId);
      if (peer !== undefined) {
        peer.lastActiveAt = this.#clock.now();
        peer.stats.piecesUp++;
        peer.stats.bytesUp += bytes;
      }
    }
    this.#out.push(...commands);
  }

  // --- time --------------------------------------------------------------------------------------------------

  #onTick(): void {
    for (const peer of this.#downloads.expire()) this.#close(peer, 'unresponsive', this.#config.slowPeerBackoffMs);
    this.#closeIdle();
    this.#downloads.fillAll();
    this.#dial();
    const now = this.#clock.now();
    if (now >= this.#nextAnnounceAt) this.#announce(this.#started ? 'periodic' : 'started');
    else if (this.#wantsPeers() && now - this.#lastAnnounceAt >= this.#config.minAnnounceIntervalMs) this.#announce('periodic');
  }

  /** Downloading, nobody left to dial, and room for more of our own connections. */
  #wantsPeers(): boolean {
    return this.#started && !this.#have.complete && this.#conns.waiting === 0 && this.#conns.outboundUsed < this.#config.maxOutboundConnections;
  }

  /** Free slots held by connections on which nothing moves, when someone else could use them. */
  #closeIdle(): void {
    if (!this.#have.complete && this.#conns.waiting === 0) return;
    const cutoff = this.#clock.now() - this.#config.idleTimeoutMs;
    for (const peer of [...this.#peers.values()]) {
      if (peer.lastActiveAt <= cutoff && peer.inflight.size === 0 && !this.#uploads.busyWith(peer.id)) this.#close(peer, 'idle');
    }
  }

  #announce(reason: AnnounceReason): void {
    this.#started = true;
    this.#lastAnnounceAt = this.#clock.now();
    const complete = this.#have.complete;
    this.#nextAnnounceAt = this.#clock.now() + (complete ? this.#config.seedAnnounceIntervalMs : this.#config.announceIntervalMs);
    this.#out.push({ type: 'announce', reason, complete });
  }

  // --- helpers -----------------------------------------------------------------------------------------------

  #pieceBytes(piece: number): number {
    return pieceRange(this.#blob, piece).length;
  }

  #checkPiece(piece: number): void {
    if (!Number.isInteger(piece) || piece < 0 || piece >= this.#blob.pieceCount) throw new RangeError(`piece ${piece} out of range 0..${this.#blob.pieceCount - 1}`);
  }

  #checkBitfield(bitfield: Bitfield): void {
    if (bitfield.size !== this.#blob.pieceCount) throw new RangeError(`bitfield has ${bitfield.size} pieces, blob ${this.#blob.pieceCount}`);
  }
}
