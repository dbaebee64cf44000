/**
 * Torrent: one blob in the swarm engine. Owns the blob's Scheduler, its connections (PeerLinks), its piece storage
 * (a PieceFile while downloading, any PieceSource while seeding) and one tick timer, the only timer it starts.
 *
 * Wire → scheduler: have → have, request → requestReceived, cancel → cancelReceived (and requestRejected when we had
 * asked that peer for the piece: protocol v1 has no Reject message, so an uploader refuses a request by sending
 * Cancel for it), piece → pieceReceived, then sha256 against metainfo.pieceHashes, then the bytes are written to the
 * PieceFile and pieceVerified follows (or pieceFailed, and nothing is written). A piece of the wrong length fails too.
 * Scheduler → wire: request/cancel/sendHave/rejectRequest are single messages; sendPiece reads the verified piece and
 * sends it (bounded by uploadTimeoutMs), then uploadDone; connect dials + handshakes; close closes; announce calls
 * the injected Announce; complete hashes the whole file and settles `completed` (DIGEST_MISMATCH deletes the file).
 *
 * Events are fed through one queue, so a command never re-enters the scheduler while it is handling an event.
 */
import { performance } from 'node:perf_hooks';
import { raceAbort, scopedTimeout, withTimeout } from '../../../shared/abort.ts';
import { LayerswarmError, toLayerswarmError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/logging.ts';
import type { Metainfo } from '../../../shared/swarm/metainfo.ts';
import type { HandshakeMessage, Received } from '../../../shared/wire/codec.ts';
import { WireError } from '../../../shared/wire/errors.ts';
import type { Bitfield } from '../scheduler/bitfield.ts';
import { Scheduler } from '../scheduler/scheduler.ts';
import type { SchedulerCommand, SchedulerEvent } from '../scheduler/types.ts';
import { parseAddress } from './announce.ts';
import { Announcer } from './announcer.ts';
import { checkHandshake, dialPeer, makeHandshake, sendHandshake, type OpenedConnection, type RemoteHandshake } from './handshake.ts';
import { PeerConn, type PeerConnHandler } from './peer-conn.ts';
import { PeerLinks } from './peer-links.ts';
import type { PieceFile } from './piece-file.ts';
import type { PieceSource } from './piece-source.ts';
import type { TorrentHost, TorrentInit } from './torrent-host.ts';
import { TrafficTable, type PeerRole, type TorrentStats } from './stats.ts';
import { verifyPiece } from './verify.ts';

/**
 * TEST-ONLY fault injection, OFF unless the environment sets LAYERSWARM_TEST_CORRUPT_UPLOADS=1: every uploaded piece
 * gets its first byte flipped, so this node plays a peer serving corrupt data (test/integration/swarm-cluster.test.ts).
 * Never set it in production.
 */
const TEST_CORRUPT_UPLOADS = process.env['LAYERSWARM_TEST_CORRUPT_UPLOADS'] === '1';

/** Longest a closing torrent waits for its 'stopped' announce. */
const STOPPED_ANNOUNCE_MS = 1000;

export class Torrent {
  readonly meta: Metainfo;
  /** Resolves once every piece is verified and the whole file hashes to meta.digest; rejects on failure or close. */
  readonly completed: Promise<void>;
  readonly #host: TorrentHost;
  /** The download's file, until replaceSource moves seeding elsewhere (then deleted). */
  #file: PieceFile | undefined;
  #source: PieceSource;
  readonly #log: Logger;
  readonly #scheduler: Scheduler;
  readonly #links: PeerLinks;
  readonly #traffic = new TrafficTable();
  /** Peers the tracker handed out as the seeder role (metrics: events.pieceBytes' role). */
  readonly #seederIds = new Set<string>();
  /** Pieces whose bytes were credited to a peer (events.pieceBytes 'down'): each piece once. */
  readonly #credited: Bitfield;
  readonly #lifetime = new AbortController();
  /** When the first announce went out (a torrent that never announced has nothing to withdraw). */
  #announcedAt: number | undefined;
  /** Have messages received from any peer: the swarm around us is making progress (no-peer watchdog). */
  #havesReceived = 0;
  /** Peers that answered us: a completed handshake either way, or a polite refusal (e.g. no capacity) of our dial. */
  #peerAnswers = 0;
  readonly #queue: SchedulerEvent[] = [];
  readonly #handler: PeerConnHandler;
  #draining = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #announcer: Announcer;
  #settled = false;
  #resolve!: () => void;
  #reject!: (err: LayerswarmError) => void;
  #onClosed: ((torrent: Torrent) => void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(host: TorrentHost, init: TorrentInit) {
    this.meta = init.meta;
    this.#host = host;
    this.#file = init.file;
    const source = init.file ?? init.source;
    if (source === undefined) throw new LayerswarmError('INTERNAL', 'a torrent needs a file or a source');
    this.#source = source;
    this.#credited = source.have.clone();
    this.#log = init.log;
    this.#links = new PeerLinks(host.selfId);
    this.#scheduler = new Scheduler({
      selfId: host.selfId, blob: { size: init.meta.size, pieceLength: init.meta.pieceLength, pieceCount: init.meta.pieceHashes.length },
      have: source.have, config: host.config.scheduler, clock: performance, rng: host.rng,
    });
    this.completed = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.completed.catch(() => undefined);
    this.#announcer = new Announcer({
      announce: host.announce, timeoutMs: host.config.announceTimeoutMs, lifetime: this.#lifetime.signal, log: init.log,
      input: (reason) => {
        const have = this.#scheduler.stats().have;
        return { digest: this.digest, peerId: host.selfId, port: host.listenPort(), complete: have === this.meta.pieceHashes.length, pieces: have, reason, seeding: this.role === 'seed' };
      },
      onPeers: (peers) => {
        for (const p of peers) if (p.seeder === true) this.#seederIds.add(p.peerId);
        this.#feed({ type: 'peersDiscovered', peers });
      },
    });
    this.#handler = { onMessage: (conn, r) => this.#onMessage(conn, r), onEnded: (conn, err) => this.#onEnded(conn, err) };
  }

  get digest(): string {
    return this.meta.digest;
  }

  get role(): 'download' | 'seed' {
    return this.#file === undefined ? 'seed' : 'download';
  }

  get closed(): boolean {
    return this.#lifetime.signal.aborted;
  }

  /** Start ticking (the first tick announces). `onClosed` runs once the torrent has shut down for any reason. */
  start(onClosed: (torrent: Torrent) => void): void {
    this.#onClosed = onClosed;
    this.#timer = setInterval(() => this.#feed({ type: 'tick' }), this.#host.config.tickMs);
    this.#feed({ type: 'tick' });
    if (this.#source.have.complete) void this.#verifyWhole();
  }

  /** Seed from `source` from now on (e.g. the blob store after the download was committed there). Complete only. */
  async replaceSource(source: PieceSource): Promise<void> {
    if (!this.#scheduler.complete || !source.have.complete) throw new LayerswarmError('INTERNAL', 'replaceSource needs a complete torrent and source');
    const old = this.#source;
    const file = this.#file;
    this.#source = source;
    if (file !== undefined && old === file) {
      this.#file = undefined;
      await file.remove();
    } else {
      await old.close();
    }
  }

  stats(): TorrentStats {
    const t = this.#traffic.totals();
    const s = this.#scheduler.stats();
    return {
      digest: this.digest, role: this.role, pieceCount: this.meta.pieceHashes.length, have: s.have, complete: s.complete,
      connected: this.#links.conns.size, usefulPeers: this.#usefulPeers(), inFlight: s.requestsInFlight + s.verifying,
      havesReceived: this.#havesReceived, peerAnswers: this.#peerAnswers, announcesSettled: this.#announcer.settled, pieceLatencyMs: s.pieceLatencyMs, ...t,
    };
  }

  /** Connected peers holding a piece we lack. */
  #usefulPeers(): number {
    if (this.#scheduler.complete) return 0;
    const have = this.#scheduler.bitfield();
    let useful = 0;
    for (const conn of this.#links.conns.values()) {
      const theirs = conn.bitfield;
      if (theirs === undefined || theirs.count === 0) continue;
      if (theirs.count > have.count) {
        useful++;
        continue;
      }
      for (const piece of theirs.pieces()) {
        if (!have.has(piece)) {
          useful++;
          break;
        }
      }
    }
    return useful;
  }

  /** An inbound connection whose Handshake named our digest (the engine routed it here). */
  async acceptInbound(opened: OpenedConnection, handshake: HandshakeMessage): Promise<void> {
    let remote: RemoteHandshake;
    try {
      remote = checkHandshake(handshake, this.meta);
      if (remote.peerId === this.#host.selfId) throw new WireError('HANDSHAKE_MISMATCH', 'connected to ourselves');
      // Refuse a connection we would not keep before answering, so the dialler sees a failed dial, not a live one.
      if (this.#links.admit(remote.peerId, false).action === 'reject') throw new LayerswarmError('PEER_UNAVAILABLE', 'duplicate connection');
      await sendHandshake(opened.connection, makeHandshake(this.#host.selfId, this.meta, this.#source.have), this.#lifetime.signal, this.#host.config.handshakeTimeoutMs);
    } catch (err) {
      opened.connection.close(err instanceof WireError ? err : undefined);
      return;
    }
    this.#admit(opened, remote, false);
  }

  /** Stop: close connections, stop the timer, release storage (`removeFile` deletes a download's file). */
  close(reason: LayerswarmError = new LayerswarmError('ABORTED', 'torrent closed'), options: { removeFile?: boolean } = {}): Promise<void> {
    this.#closing ??= (async () => {
      // Leave the swarm at the tracker first (best effort, bounded) so peers stop being told about us.
      const stopped = this.#announcedAt === undefined ? Promise.resolve() : this.#announceStopped();
      this.#lifetime.abort(reason);
      clearInterval(this.#timer);
      const { conns, dials } = this.#links.all();
      this.#links.conns.clear();
      for (const d of dials) d.abort(reason);
      const bye = new WireError('SHUTTING_DOWN', 'torrent closed');
      for (const c of conns) c.close(bye);
      await Promise.all(conns.map((c) => c.connection.closed));
      if (this.#source !== this.#file) await this.#source.close();
      if (options.removeFile === true) await this.#file?.remove();
      else await this.#file?.close();
      await stopped;
      this.#settle(reason);
      this.#onClosed?.(this);
    })();
    return this.#closing;
  }

  // --- the scheduler loop ------------------------------------------------------------------------------------

  #feed(event: SchedulerEvent): void {
    if (this.closed) return;
    this.#queue.push(event);
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (let e = this.#queue.shift(); e !== undefined; e = this.#queue.shift()) {
        for (const command of this.#scheduler.handle(e)) this.#execute(command);
      }
    } catch (err) {
      this.#fail(toLayerswarmError(err));
    } finally {
      this.#draining = false;
    }
  }

  #execute(c: SchedulerCommand): void {
    const conn = 'peerId' in c ? this.#links.conns.get(c.peerId) : undefined;
    if (this.#log.isLevelEnabled('trace')) this.#log.trace({ command: c.type, peer: 'peerId' in c ? c.peerId : undefined, piece: 'piece' in c ? c.piece : undefined }, 'command');
    switch (c.type) {
      case 'connect':
        void this.#dial(c.peerId, c.address);
        return;
      case 'request':
        conn?.requested.add(c.piece);
        conn?.post({ kind: 'request', piece: c.piece });
        return;
      case 'cancel':
        conn?.requested.delete(c.piece);
        conn?.post({ kind: 'cancel', piece: c.piece });
        return;
      case 'sendHave':
        conn?.post({ kind: 'have', piece: c.piece });
        return;
      case 'rejectRequest':
        conn?.post({ kind: 'cancel', piece: c.piece });
        return;
      case 'sendPiece':
        if (conn === undefined) queueMicrotask(() => this.#feed({ type: 'uploadDone', peerId: c.peerId, piece: c.piece }));
        else void this.#upload(conn, c.piece);
        return;
      case 'close':
        this.#log.debug({ peer: c.peerId, reason: c.reason }, 'closing peer');
        if (conn !== undefined) {
          this.#links.conns.delete(c.peerId);
          conn.close();
        }
        if (c.reason === 'bad_piece') this.#host.events?.peerBanned?.();
        return;
      case 'announce':
        this.#announcedAt ??= performance.now();
        this.#announcer.request(c.reason);
        return;
      case 'complete':
        void this.#verifyWhole();
        return;
    }
  }

  // --- connections -------------------------------------------------------------------------------------------

  async #dial(peerId: string, address: string): Promise<void> {
    const ac = new AbortController();
    this.#links.dials.set(peerId, ac);
    const signal = AbortSignal.any([this.#lifetime.signal, ac.signal]);
    const { config } = this.#host;
    let result: { opened: OpenedConnection; remote: RemoteHandshake } | undefined;
    try {
      if (!this.#host.connectionAvailable()) throw new LayerswarmError('PEER_UNAVAILABLE', 'engine connection cap reached');
      result = await dialPeer({
        transport: this.#host.transport, address: parseAddress(address), peerId, handshake: makeHandshake(this.#host.selfId, this.meta, this.#source.have), meta: this.meta,
        signal, connectTimeoutMs: config.connectTimeoutMs, handshakeTimeoutMs: config.handshakeTimeoutMs, track: this.#host.track,
      });
    } catch (err) {
      if (err instanceof WireError && err.remote) this.#peerAnswers++;
      this.#log.debug({ err, peer: peerId, address }, 'dial failed');
    }
    if (this.#links.dials.get(peerId) === ac) this.#links.dials.delete(peerId);
    if (result === undefined) {
      if (!this.#links.conns.has(peerId)) this.#feed({ type: 'peerClosed', peerId });
      return;
    }
    this.#admit(result.opened, result.remote, true);
  }

  #admit(opened: OpenedConnection, remote: RemoteHandshake, outbound: boolean): void {
    if (this.closed) {
      opened.connection.close(new WireError('SHUTTING_DOWN', 'torrent closed'));
      return;
    }
    this.#peerAnswers++;
    const decision = this.#links.admit(remote.peerId, outbound);
    if (decision.action !== 'install') this.#log.debug({ peer: remote.peerId, outbound, action: decision.action }, 'second connection to a peer');
    if (decision.action === 'reject') {
      opened.connection.close();
      return;
    }
    if (decision.action === 'swap') {
      this.#links.conns.delete(remote.peerId);
      decision.old.close();
      this.#feed({ type: 'peerClosed', peerId: remote.peerId });
    }
    const conn = new PeerConn(opened, remote.peerId, outbound, this.#log, remote.bitfield);
    this.#links.conns.set(remote.peerId, conn);
    conn.run(this.#handler);
    this.#feed({ type: 'peerConnected', peerId: remote.peerId, bitfield: remote.bitfield });
  }

  #onEnded(conn: PeerConn, error: LayerswarmError | undefined): void {
    if (error !== undefined) this.#log.debug({ peer: conn.peerId, err: error }, 'connection ended');
    if (this.#links.conns.get(conn.peerId) !== conn) return;
    this.#links.conns.delete(conn.peerId);
    this.#feed({ type: 'peerClosed', peerId: conn.peerId });
  }

  /** The closing announce ('stopped'), bounded by STOPPED_ANNOUNCE_MS; failures only logged (the TTL expires us anyway). */
  async #announceStopped(): Promise<void> {
    const have = this.#scheduler.stats().have;
    const input = {
      digest: this.digest, peerId: this.#host.selfId, port: this.#host.listenPort(), complete: have === this.meta.pieceHashes.length, pieces: have,
      reason: 'stopped' as const, seeding: this.role === 'seed',
    };
    try {
      await this.#host.announce(input, AbortSignal.timeout(Math.min(STOPPED_ANNOUNCE_MS, this.#host.config.announceTimeoutMs)));
    } catch (err) {
      this.#log.debug({ err }, 'stopped announce failed');
    }
  }

  // --- messages ----------------------------------------------------------------------------------------------

  #onMessage(conn: PeerConn, { message, payload }: Received): Promise<void> | void {
    if (this.#links.conns.get(conn.peerId) !== conn) return;
    const peerId = conn.peerId;
    switch (message.kind) {
      case 'have':
        this.#havesReceived++;
        if (message.piece >= 0 && message.piece < this.meta.pieceHashes.length) conn.bitfield?.set(message.piece);
        this.#feed({ type: 'have', peerId, piece: message.piece });
        return;
      case 'request':
        this.#feed({ type: 'requestReceived', peerId, piece: message.piece });
        return;
      case 'cancel':
        if (conn.requested.delete(message.piece)) {
          this.#traffic.of(peerId).rejected++;
          this.#feed({ type: 'requestRejected', peerId, piece: message.piece });
        }
        this.#feed({ type: 'cancelReceived', peerId, piece: message.piece });
        return;
      case 'piece':
        return payload === undefined ? undefined : this.#onPiece(conn, message.piece, payload);
      case 'error':
        this.#log.debug({ peer: peerId, code: message.code, message: message.message }, 'peer sent error');
        return;
      default:
        return;
    }
  }

  /** Never trust a peer: hash first; only verified bytes are written and announced. */
  async #onPiece(conn: PeerConn, piece: number, payload: readonly Buffer[]): Promise<void> {
    const peerId = conn.peerId;
    conn.requested.delete(piece);
    this.#feed({ type: 'pieceReceived', peerId, piece });
    const traffic = this.#traffic.of(peerId);
    const { ok, length } = verifyPiece(this.meta, piece, payload);
    traffic.bytesDown += length;
    if (!ok) {
      traffic.badPieces++;
      this.#host.events?.badPiece?.();
      this.#log.warn({ peer: peerId, piece, length }, 'piece failed verification');
      this.#feed({ type: 'pieceFailed', peerId, piece });
      return;
    }
    traffic.piecesDown++;
    if (this.#credited.set(piece)) this.#host.events?.pieceBytes?.('down', conn.kind, length, this.#roleOf(conn.peerId));
    if (this.#file !== undefined && !this.#file.have.has(piece)) {
      const deadline = scopedTimeout(this.#lifetime.signal, this.#host.config.fileTimeoutMs);
      try {
        await this.#file.writePiece(piece, payload, deadline.signal);
      } catch (err) {
        this.#fail(toLayerswarmError(err, 'STORE_IO'));
        return;
      } finally {
        deadline.dispose();
      }
    }
    this.#feed({ type: 'pieceVerified', piece });
  }

  #roleOf(peerId: string): PeerRole {
    return this.#seederIds.has(peerId) ? 'seeder' : 'peer';
  }

  async #upload(conn: PeerConn, piece: number): Promise<void> {
    const deadline = scopedTimeout(this.#lifetime.signal, this.#host.config.uploadTimeoutMs);
    const { signal } = deadline;
    try {
      const bytes = await this.#source.readPiece(piece, signal);
      if (TEST_CORRUPT_UPLOADS && bytes.byteLength > 0) bytes[0] = (bytes[0] ?? 0) ^ 0xff; // test-only, see above
      await raceAbort(conn.send({ kind: 'piece', piece, length: bytes.byteLength }, bytes), signal, `upload piece ${piece}`);
      const traffic = this.#traffic.of(conn.peerId);
      traffic.bytesUp += bytes.byteLength;
      traffic.piecesUp++;
      this.#host.events?.pieceBytes?.('up', conn.kind, bytes.byteLength, this.#roleOf(conn.peerId));
    } catch (err) {
      if (!conn.closed && !this.closed) {
        this.#log.debug({ err, peer: conn.peerId, piece }, 'upload failed, closing the connection');
        conn.close();
      }
    } finally {
      deadline.dispose();
    }
    this.#feed({ type: 'uploadDone', peerId: conn.peerId, piece });
  }

  // --- completion --------------------------------------------------------------------------------

  async #verifyWhole(): Promise<void> {
    if (this.#file === undefined || this.#source !== this.#file) {
      this.#settle();
      return;
    }
    try {
      const actual = await this.#file.digest(withTimeout(this.#lifetime.signal, this.#host.config.fileTimeoutMs));
      if (actual !== this.meta.digest) {
        const err = new LayerswarmError('DIGEST_MISMATCH', `${this.meta.digest}: all pieces verified but the blob hashes to ${actual} (bad metainfo)`);
        this.#log.error({ actual }, 'whole-blob digest mismatch');
        await this.close(err, { removeFile: true });
        return;
      }
      this.#log.info({ stats: { ...this.stats(), peers: undefined } }, 'download complete');
      this.#settle();
    } catch (err) {
      this.#fail(toLayerswarmError(err));
    }
  }

  #settle(error?: LayerswarmError): void {
    if (this.#settled) return;
    this.#settled = true;
    if (error === undefined) this.#resolve();
    else this.#reject(error);
  }

  #fail(err: LayerswarmError): void {
    if (this.closed) return;
    this.#log.error({ err }, 'torrent failed');
    void this.close(err, { removeFile: true });
  }
}
