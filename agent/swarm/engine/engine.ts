/**
 * SwarmEngine: the I/O shell around the per-blob Schedulers. One listener on a Transport; one Torrent per digest.
 *
 * DEV DOCS
 * --------
 * Layout (one concept per file):
 *   engine.ts        this file: listener, routing inbound connections by Handshake digest, download/seed/stop API,
 *                    engine-wide caps (torrents, connections), stats
 *   torrent.ts       one blob: Scheduler + connections + storage + tick timer; wire ⇄ scheduler mapping, hashing
 *   torrent-host.ts  what a torrent needs from the engine (TorrentHost) and is made from (TorrentInit)
 *   peer-links.ts    one connection per peer pair (dials in progress, the rule that picks between two connections)
 *   peer-conn.ts     one handshaken connection: read loop, pieces requested from it, sends that never throw
 *   handshake.ts     build / read / check the Handshake; dial + handshake
 *   piece-file.ts    a partial download on disk with a persisted, re-verified bitfield sidecar
 *   piece-source.ts  PieceSource (what uploads read) for a complete file or a BlobStore blob
 *   announce.ts      the injected Announce function, a TrackerClient adapter, "host:port" helpers
 *   announcer.ts     one announce at a time per torrent, none lost
 *   verify.ts        length + sha256 check of a received piece
 *   stats.ts         traffic by peer, TorrentStats, SwarmEngineEvents (per-piece traffic hooks for metrics)
 *   config.ts        SwarmEngineConfig (+ the scheduler's config), defaults
 *   peer-id.ts       20 random bytes ↔ 40 hex
 *
 * Inbound: the engine reads the first message (Handshake, within handshakeTimeoutMs), finds the torrent for its
 * digest (none → Error DIGEST_UNKNOWN and close) and hands the connection over; the torrent checks piece count and
 * length (Error HANDSHAKE_MISMATCH), answers with its own Handshake and tells its scheduler `peerConnected`.
 * Outbound: the torrent dials on the scheduler's `connect`, sends its Handshake first, checks the answer (and that the
 * peer id is the one the tracker named).
 * Trust: a received piece is hashed against metainfo.pieceHashes before anything else happens to it; a bad one is
 * `pieceFailed` (the scheduler closes and blacklists the sender) and is never written. A download completes only when
 * every piece is verified and the whole file's sha256 equals metainfo.digest.
 * Refusing a request: protocol v1 has no Reject message, so an uploader that will not serve a request (queue full,
 * piece missing) sends Cancel for that piece; a Cancel for a piece we asked that peer for reads as `requestRejected`
 * (see torrent.ts). Duplicate connections: peer-links.ts (the one dialled by the smaller peer id survives; an inbound
 * connection we would not keep is closed before we answer its Handshake).
 * Downloads live in `<dataDir>/<hex>` (+ `<hex>.pieces`); a download of the same digest after a crash resumes from
 * the verified pieces. After completion a download keeps seeding from its file until stopSeeding/close, or
 * `seed()` of the same digest moves it to another source (the file is then deleted).
 */
import { join } from 'node:path';
import { raceAbort } from '../../../shared/abort.ts';
import { parseDigest } from '../../../shared/digest.ts';
import { isAbortError, LayerswarmError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/logging.ts';
import type { Metainfo } from '../../../shared/swarm/metainfo.ts';
import { WireError } from '../../../shared/wire/errors.ts';
import type { Connection, Listener, Transport, WireAddress } from '../../../shared/wire/transport.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import type { Rng } from '../scheduler/types.ts';
import type { Announce } from './announce.ts';
import type { SwarmEngineConfig } from './config.ts';
import { readHandshake } from './handshake.ts';
import { newPeerId } from './peer-id.ts';
import { PieceFile } from './piece-file.ts';
import { blobStoreSource, completeFileSource, type PieceSource } from './piece-source.ts';
import type { SwarmEngineEvents, TorrentStats } from './stats.ts';
import type { TorrentHost } from './torrent-host.ts';
import { Torrent } from './torrent.ts';

export interface SwarmEngineOptions {
  readonly transport: Transport;
  readonly announce: Announce;
  /** Where partial and completed downloads are written. */
  readonly dataDir: string;
  readonly config: SwarmEngineConfig;
  readonly logger: Logger;
  /** Default: a fresh random id. */
  readonly peerId?: string;
  /** Tie-breaks in piece picking. Default Math.random. */
  readonly rng?: Rng;
  /** Traffic hooks (metrics): per piece, never per byte. */
  readonly events?: SwarmEngineEvents;
}

export interface DownloadResult {
  /** The complete, verified blob (owned by the engine: valid until stopSeeding/close or seed() moves it). */
  readonly path: string;
  readonly digest: string;
  readonly size: number;
  readonly stats: TorrentStats;
}

/** What to seed: a complete, verified file, or a blob in a BlobStore. */
export type SeedSource = { readonly path: string } | { readonly store: BlobStore };

export class SwarmEngine {
  readonly peerId: string;
  readonly #options: SwarmEngineOptions;
  readonly #log: Logger;
  readonly #torrents = new Map<string, Torrent>();
  /** Torrents being set up (files opened): counted against the cap, joined by concurrent callers. */
  readonly #starting = new Map<string, Promise<Torrent>>();
  readonly #host: TorrentHost;
  /** Callers waiting on each download (the last one to abort stops it). */
  readonly #waiters = new WeakMap<Torrent, number>();
  #listener: Listener | undefined;
  #connections = 0;
  #closed = false;
  #accepting = true;

  constructor(options: SwarmEngineOptions) {
    this.#options = options;
    this.peerId = options.peerId ?? newPeerId();
    this.#log = options.logger.child({ component: 'swarm-engine', peerId: this.peerId.slice(0, 8) });
    const rng = options.rng ?? { next: Math.random };
    this.#host = {
      selfId: this.peerId, transport: options.transport, announce: options.announce, config: options.config, rng, events: options.events,
      listenPort: () => this.#listener?.address.port ?? 0,
      connectionAvailable: () => this.#connections < options.config.maxConnections,
      track: (connection) => this.#track(connection),
    };
  }

  /** Where peers reach us (after listen). */
  get address(): WireAddress | undefined {
    return this.#listener?.address;
  }

  async listen(address: WireAddress): Promise<WireAddress> {
    if (this.#listener !== undefined) throw new LayerswarmError('INTERNAL', 'already listening');
    this.#listener = await this.#options.transport.listen(address, (c) => void this.#onInbound(c));
    this.#log.info({ address: this.#listener.address }, 'swarm engine listening');
    return this.#listener.address;
  }

  /**
   * Download a blob through the swarm into `<dataDir>/<hex>`; resolves when every piece is verified and the file's
   * sha256 equals the digest. Concurrent calls for one digest share the download. Aborting `signal` stops waiting;
   * when no one else waits, the download is stopped and its files deleted (kept with `keepPartial`: the caller may
   * complete them, e.g. from the origin, reopening `pathOf(digest)` with PieceFile.open).
   */
  async download(meta: Metainfo, options: { signal: AbortSignal; keepPartial?: boolean }): Promise<DownloadResult> {
    const { signal } = options;
    const torrent = await this.#torrent(meta, async () => ({ file: await PieceFile.open(this.pathOf(meta.digest), meta, signal) }));
    if (torrent.role !== 'download') throw new LayerswarmError('INTERNAL', `${meta.digest} is already seeded from a complete source`);
    const waiters = this.#waiters.get(torrent) ?? 0;
    this.#waiters.set(torrent, waiters + 1);
    try {
      await raceAbort(torrent.completed, signal, `download ${meta.digest}`);
    } catch (err) {
      const left = (this.#waiters.get(torrent) ?? 1) - 1;
      this.#waiters.set(torrent, left);
      if (left === 0 && isAbortError(err) && !torrent.stats().complete) await torrent.close(new LayerswarmError('ABORTED', `download ${meta.digest}: aborted`), { removeFile: options.keepPartial !== true });
      throw err;
    }
    this.#waiters.set(torrent, (this.#waiters.get(torrent) ?? 1) - 1);
    if (torrent.closed) throw new LayerswarmError('ABORTED', `download ${meta.digest}: stopped`);
    return { path: this.pathOf(meta.digest), digest: meta.digest, size: meta.size, stats: torrent.stats() };
  }

  /**
   * Seed a complete blob until stopSeeding(digest) or close(). When the digest is already being seeded from a
   * completed download, its source moves to `source` (the download file is deleted).
   */
  async seed(meta: Metainfo, source: SeedSource, signal: AbortSignal): Promise<void> {
    const open = (): Promise<PieceSource> => ('path' in source ? completeFileSource(source.path, meta) : blobStoreSource(source.store, meta));
    const existing = this.#torrents.get(meta.digest);
    if (existing !== undefined && existing.role === 'download') {
      await raceAbort(existing.completed, signal, `seed ${meta.digest}`);
      await existing.replaceSource(await open());
      return;
    }
    await raceAbort(this.#torrent(meta, async () => ({ source: await open() })), signal, `seed ${meta.digest}`);
  }

  /** Stop the torrent of `digest` (seed or download); a download's files are deleted. Returns false when absent. */
  async stopSeeding(digest: string): Promise<boolean> {
    const torrent = this.#torrents.get(digest);
    if (torrent === undefined) return false;
    await torrent.close(new LayerswarmError('ABORTED', `stopped ${digest}`), { removeFile: true });
    return true;
  }

  stats(): TorrentStats[] {
    return [...this.#torrents.values()].map((t) => t.stats());
  }

  torrentStats(digest: string): TorrentStats | undefined {
    return this.#torrents.get(digest)?.stats();
  }

  get connectionCount(): number {
    return this.#connections;
  }

  /** The file a download of `digest` is written to. */
  pathOf(digest: string): string {
    return join(this.#options.dataDir, parseDigest(digest).hex);
  }

  /**
   * Graceful shutdown, first step: refuse new inbound connections (Error SHUTTING_DOWN) while the open ones go on
   * (uploads in progress finish, downloads a client still waits for keep their peers). close() ends the rest.
   */
  stopAccepting(): void {
    if (this.#accepting) this.#log.info('swarm engine no longer accepts peers');
    this.#accepting = false;
  }

  /** Stop listening and every torrent. Download files are kept (a later download resumes) unless removeFiles. */
  async close(options: { removeFiles?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled(this.#starting.values());
    const torrents = [...this.#torrents.values()];
    await Promise.all(torrents.map((t) => t.close(new LayerswarmError('ABORTED', 'swarm engine closed'), { removeFile: options.removeFiles === true })));
    await this.#listener?.close();
    this.#log.info('swarm engine closed');
  }

  // --- internals ---------------------------------------------------------------------------------------------

  /** The torrent for meta.digest, created with `make` when absent (under the torrent cap). */
  async #torrent(meta: Metainfo, make: () => Promise<{ file?: PieceFile; source?: PieceSource }>): Promise<Torrent> {
    if (this.#closed) throw new LayerswarmError('ABORTED', 'swarm engine closed');
    if (this.#listener === undefined) throw new LayerswarmError('INTERNAL', 'swarm engine: listen() before download() or seed()');
    const existing = this.#torrents.get(meta.digest) ?? (await this.#starting.get(meta.digest));
    if (existing !== undefined && !existing.closed) {
      const m = existing.meta;
      if (m.size !== meta.size || m.pieceLength !== meta.pieceLength || m.pieceHashes.some((h, i) => h !== meta.pieceHashes[i])) {
        throw new LayerswarmError('METAINFO_INVALID', `${meta.digest} is already running with different metainfo`);
      }
      return existing;
    }
    if (existing !== undefined) await existing.close(); // let a stopping torrent delete its files before a new one opens them
    if (this.#torrents.size + this.#starting.size >= this.#options.config.maxTorrents) {
      throw new LayerswarmError('TOOMANYREQUESTS', `swarm engine already runs ${this.#options.config.maxTorrents} torrents`);
    }
    const starting = (async () => {
      const storage = await make();
      const torrent = new Torrent(this.#host, { meta, ...storage, log: this.#log.child({ digest: meta.digest.slice(7, 19) }) });
      this.#torrents.set(meta.digest, torrent);
      torrent.start((t) => {
        if (this.#torrents.get(t.digest) === t) this.#torrents.delete(t.digest);
      });
      return torrent;
    })();
    this.#starting.set(meta.digest, starting);
    try {
      return await starting;
    } finally {
      this.#starting.delete(meta.digest);
    }
  }

  #track(connection: Connection): void {
    this.#connections++;
    void connection.closed.then(() => this.#connections--);
  }

  async #onInbound(connection: Connection): Promise<void> {
    if (this.#closed || !this.#accepting || this.#connections >= this.#options.config.maxConnections) {
      const stopping = this.#closed || !this.#accepting;
      connection.close(new WireError(stopping ? 'SHUTTING_DOWN' : 'OVERLOADED', stopping ? 'shutting down' : 'no capacity for another connection'));
      return;
    }
    this.#track(connection);
    try {
      const signal = AbortSignal.timeout(this.#options.config.handshakeTimeoutMs);
      const { opened, handshake } = await readHandshake(connection, signal, this.#options.config.handshakeTimeoutMs);
      const torrent = this.#torrents.get(handshake.digest);
      if (torrent === undefined || torrent.closed) throw new WireError('DIGEST_UNKNOWN', `not serving ${handshake.digest}`);
      await torrent.acceptInbound(opened, handshake);
    } catch (err) {
      this.#log.debug({ err, remote: connection.remote }, 'inbound connection refused');
      connection.close(err instanceof WireError && !err.remote ? err : undefined);
    }
  }
}
