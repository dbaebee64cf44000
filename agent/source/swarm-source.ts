/**
 * SwarmBlobSource: large blobs come from peers, everything else (and every failure) from the origin.
 *
 * open(request, 0):
 *   1. HEAD the blob at the origin as the client (its size). An answer other than 200 → the origin GET reports it;
 *      no answer in time (unreachable, timeout: an overloaded origin) → the size comes from the tracker's metainfo.
 *   2. size ≤ originDirectMaxBytes → origin (not worth a swarm; the seeder's policy must use the same threshold).
 *   3. metainfo from the tracker within metainfoTimeoutMs (it may ask a seeder to produce it) → else origin
 *      (reason tracker_unreachable or no_metainfo).
 *   4. SwarmEngine.download: pieces from peers, each sha256-checked on arrival and written at its offset into a partial
 *      file, then the whole file's sha256 compared with the digest. A watchdog aborts it when for noPeerTimeoutMs (at
 *      least 20 piece latencies) no connected peer held a piece we lack, no piece was in flight, none was verified and
 *      no connected peer announced a new piece (Have) (reason no_peers: the tracker is gone, the seeder is gone, nobody
 *      has the blob; at the start of a large rollout neighbours that hold nothing yet but are receiving pieces keep the
 *      download in the swarm, and before the first piece came only "no connection at all, and no peer answering our
 *      dials, not even to refuse them for capacity" counts), or when peers are there but no new piece was verified for
 *      stallTimeoutMs (at least 8 piece latencies; reason stalled; also when stallTimeoutMs ≤ noPeerTimeoutMs and no peer came); any other failure
 *      is reason swarm_error. All → origin; with `originRange` the verified pieces are kept and only the missing ones
 *      are fetched, with one Range request per run of missing pieces (origin-repair.ts; each piece hashed before it is
 *      written, then the whole file); an origin that ignores Range (200), nothing kept, or a failed repair → the whole
 *      blob from the origin, as without `originRange`.
 *   5. The complete file is handed to the BlobFetcher as the body, which hashes it again while writing it into the
 *      store and commits only on a match: nothing unverified is ever served.
 * A resume (offset > 0) always goes to the origin.
 *
 * Authorization: every successful open() was confirmed by the origin for this request's identity, repository and
 * digest (the HEAD of step 1 succeeded, or the origin GET itself did), so the prefetcher's access.record() after a
 * fetch stays sound; the registry endpoint additionally runs the access check before serving whenever the source is
 * not the origin (blob-routes.ts).
 *
 * settled(request, info) (the fetcher's post-commit hook): a committed blob with metainfo is seeded from the store
 * (the engine deletes its download file and re-announces periodically) until it leaves the store (storeChanged →
 * stopSeeding), the engine's torrent cap needs room (oldest seed stopped first), or the agent shuts down. A failed
 * fetch drops the download's file. With `metaStore`, the metainfo of every committed blob is persisted (and deleted
 * when the blob leaves the store), and resumeSeeding() at start seeds the stored blobs that have metainfo, newest
 * first, up to the engine's torrent cap minus one (a slot stays free for downloads).
 */
import { open as openFile, rm } from 'node:fs/promises';
import { parseDigest } from '../../shared/digest.ts';
import { isAbortError, isLayerswarmError, LayerswarmError, toLayerswarmError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { Metainfo } from '../../shared/swarm/metainfo.ts';
import { isTrackerError } from '../../tracker/errors.ts';
import type { MetainfoLookup } from '../../tracker/client.ts';
import type { BlobInfo, BlobStore } from '../store/blob-store.ts';
import type { DownloadResult, SeedSource } from '../swarm/engine/index.ts';
import type { TorrentStats } from '../swarm/engine/stats.ts';
import type { UpstreamClient, UpstreamRegistry } from '../upstream/types.ts';
import type { BlobRequest, BlobSource, BlobStreamResult } from './blob-source.ts';
import { repairFromOrigin } from './origin-repair.ts';
import type { OriginRangeOpener } from './origin-source.ts';
import type { SeedMetaStore } from '../swarm/seed-meta-store.ts';

export type SwarmFallbackReason = 'tracker_unreachable' | 'no_metainfo' | 'no_peers' | 'stalled' | 'swarm_error';
export const SWARM_FALLBACK_REASONS: readonly SwarmFallbackReason[] = ['tracker_unreachable', 'no_metainfo', 'no_peers', 'stalled', 'swarm_error'];

/** The no-peer watchdog waits at least this many piece latencies (TorrentStats.pieceLatencyMs) before it gives up. */
const NO_PEER_LATENCIES = 20;
/**
 * The stall watchdog waits at least this many piece latencies for a new verified piece: the scheduler itself cancels a
 * request after 4 latencies and asks another peer, whose answer takes about one more; 8 leaves room for that.
 */
const STALL_LATENCIES = 8;

/** Starts a periodic callback; returns the function that stops it (default: setInterval/clearInterval). */
export type WatchdogTimer = (tick: () => void, periodMs: number) => () => void;

const intervalTimer: WatchdogTimer = (tick, periodMs) => {
  const timer = setInterval(tick, periodMs);
  return () => clearInterval(timer);
};

/** The parts of SwarmEngine the source uses. */
export interface SwarmEngineLike {
  download(meta: Metainfo, options: { signal: AbortSignal; keepPartial?: boolean }): Promise<DownloadResult>;
  /** The download file of `digest` (kept after an abort with keepPartial). */
  pathOf(digest: string): string;
  seed(meta: Metainfo, source: SeedSource, signal: AbortSignal): Promise<void>;
  stopSeeding(digest: string): Promise<boolean>;
  torrentStats(digest: string): TorrentStats | undefined;
  stats(): TorrentStats[];
}

export interface MetainfoProvider {
  getMetainfo(lookup: MetainfoLookup, signal?: AbortSignal): Promise<Metainfo>;
}

export interface SwarmBlobSourceOptions {
  origin: BlobSource;
  /**
   * Bounded Range requests to the origin (OriginBlobSource.openRange). Set: an abandoned swarm download keeps its
   * verified pieces and only the missing ones come from the origin. Unset: the whole blob comes from the origin.
   */
  originRange?: OriginRangeOpener;
  upstream: Pick<UpstreamClient, 'headBlob'>;
  tracker: MetainfoProvider;
  engine: SwarmEngineLike;
  /** The verified store committed blobs are seeded from. */
  store: BlobStore;
  /** Where the metainfo of committed blobs is kept across restarts (unset: not kept). */
  metaStore?: Pick<SeedMetaStore, 'put' | 'delete' | 'list'>;
  /** True for the agent's default origin registry (the tracker is then asked without a registry name). */
  isDefaultRegistry: (registry: UpstreamRegistry) => boolean;
  originDirectMaxBytes: number;
  metainfoTimeoutMs: number;
  stallTimeoutMs: number;
  /** Abort (reason no_peers) when for this long no connected peer held a piece we lack and nothing was in flight. */
  noPeerTimeoutMs: number;
  /** Torrents (downloads + seeds) the engine runs at most; the oldest seeds are stopped to stay below. */
  maxTorrents: number;
  logger: Logger;
  /** Aborted when the agent shuts down. */
  lifetime: AbortSignal;
  /** A swarm download was not possible (`digest` came from the origin instead, or in part). */
  onFallback?: (reason: SwarmFallbackReason, digest: string) => void;
  /** Bytes of swarm-eligible blobs committed, by where they came from (a repaired blob counts its part of each). */
  onBytes?: (source: 'peers' | 'origin', bytes: number) => void;
  now?: () => number;
  /** The watchdog's timer (tests drive it by hand together with `now`). */
  timer?: WatchdogTimer;
}

interface Pending {
  /** Present once the tracker gave metainfo: the blob can be seeded after commit. */
  meta?: Metainfo;
  via: 'peers' | 'origin' | 'mixed';
  /** With via 'mixed': bytes of pieces from peers and from the origin. */
  peerBytes?: number;
  originBytes?: number;
  /** A repaired download file handed to the fetcher, deleted once it settled. */
  repairedPath?: string;
}

export class SwarmBlobSource implements BlobSource {
  readonly name = 'swarm';
  readonly #o: SwarmBlobSourceOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  /** Swarm-eligible downloads in progress, by digest. */
  readonly #pending = new Map<string, Pending>();
  /** Digests seeded from the store, oldest first. */
  readonly #seeding = new Map<string, Metainfo>();
  /** Digests whose metainfo is in the metaStore. */
  readonly #persisted = new Set<string>();
  #sweep: Promise<void> | undefined;
  #sweepAgain = false;

  constructor(options: SwarmBlobSourceOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
  }

  /** Digests currently seeded from the store (tests, metrics). */
  get seeding(): readonly string[] {
    return [...this.#seeding.keys()];
  }

  async open(request: BlobRequest, offset: number, signal: AbortSignal): Promise<BlobStreamResult> {
    const { origin } = this.#o;
    if (offset > 0) return origin.open(request, offset, signal);
    const digest = request.digest.value;
    const log = this.#log.child({ digest, name: request.name });

    // The origin's size decides small blob (origin) or swarm. When the origin does not answer the HEAD in time (an
    // overloaded origin, the moment the swarm matters most) the tracker's metainfo decides instead: falling back to
    // a whole-blob GET here sent 382 × the image from the origin in a CPU-starved 500-agent emulation.
    let size: number | undefined;
    try {
      ({ size } = await this.#o.upstream.headBlob(request.registry, request.name, digest, { identity: request.identity, signal: AbortSignal.any([signal, AbortSignal.timeout(this.#o.metainfoTimeoutMs)]) }));
    } catch (err) {
      if (signal.aborted) throw err;
      // An answer (401, 403, 404, ...) is the origin's word: its GET reports it to the client.
      if (!isLayerswarmError(err, 'UPSTREAM_UNAVAILABLE') && !isLayerswarmError(err, 'UPSTREAM_TIMEOUT')) return origin.open(request, 0, signal);
      log.warn({ err }, 'origin HEAD failed; asking the tracker for the blob\'s metainfo');
    }
    if (size !== undefined && size <= this.#o.originDirectMaxBytes) return origin.open(request, 0, signal);

    const pending: Pending = { via: 'origin' };
    this.#pending.set(digest, pending);
    const meta = await this.#metainfo(request, size, signal, log);
    if (meta === undefined) return origin.open(request, 0, signal);
    if (meta.size <= this.#o.originDirectMaxBytes) return origin.open(request, 0, signal); // small after all (size from the tracker)
    pending.meta = meta;

    const downloaded = await this.#download(meta, signal, log);
    if (downloaded === undefined) return this.#fromOrigin(request, meta, pending, signal, log);
    let fh;
    try {
      fh = await openFile(downloaded.path, 'r');
    } catch (err) {
      this.#fallback('swarm_error', meta.digest, log, err);
      return origin.open(request, 0, signal);
    }
    pending.via = 'peers';
    log.info({ size: meta.size, pieces: meta.pieceHashes.length, peers: Object.keys(downloaded.stats.peers).length, bytesDown: downloaded.stats.bytesDown }, 'blob downloaded from the swarm');
    return { size: meta.size, body: fh.createReadStream({ autoClose: true }) };
  }

  settled(request: BlobRequest, info: BlobInfo | undefined): void {
    const digest = request.digest.value;
    const pending = this.#pending.get(digest);
    if (pending === undefined) return;
    this.#pending.delete(digest);
    const log = this.#log.child({ digest });
    if (pending.repairedPath !== undefined) void removeDownloadFile(pending.repairedPath);
    if (info === undefined) {
      // The fetch failed after all (e.g. store full): do not keep the download's file outside the store's cap.
      if (pending.meta !== undefined) void this.#o.engine.stopSeeding(digest).catch((err: unknown) => log.warn({ err }, 'could not stop a failed download'));
      return;
    }
    if (pending.via === 'mixed') {
      this.#o.onBytes?.('peers', pending.peerBytes ?? 0);
      this.#o.onBytes?.('origin', pending.originBytes ?? 0);
    } else {
      this.#o.onBytes?.(pending.via, info.size);
    }
    if (pending.meta !== undefined) void this.#persist(pending.meta, log).then(() => this.#seed(pending.meta as Metainfo, log));
  }

  /**
   * At start: seed the stored blobs whose metainfo was persisted, newest first, up to the torrent cap minus one.
   * Metainfo of blobs no longer in the store (or of another size) is deleted. Returns how many are seeded.
   */
  async resumeSeeding(signal: AbortSignal): Promise<number> {
    const metaStore = this.#o.metaStore;
    if (metaStore === undefined) return 0;
    const records = await metaStore.list(signal);
    const chosen: Metainfo[] = [];
    for (const { metainfo } of records) {
      const info = await this.#o.store.stat(parseDigest(metainfo.digest));
      if (info === undefined || info.size !== metainfo.size) {
        this.#log.info({ digest: metainfo.digest }, 'dropping the metainfo of a blob no longer in the store');
        await metaStore.delete(metainfo.digest).catch((err: unknown) => this.#log.warn({ err, digest: metainfo.digest }, 'could not delete metainfo'));
        continue;
      }
      this.#persisted.add(metainfo.digest);
      if (chosen.length < this.#o.maxTorrents - 1) chosen.push(metainfo);
    }
    // Oldest first into #seeding (the oldest seed is the first stopped for room).
    let seeded = 0;
    for (const meta of chosen.reverse()) {
      if (signal.aborted) break;
      if (await this.#seed(meta, this.#log.child({ digest: meta.digest }))) seeded++;
    }
    this.#log.info({ seeded, known: records.length }, 'seeding stored blobs after start');
    return seeded;
  }

  /** The store changed (commit, eviction, delete): stop seeding blobs that left it. */
  storeChanged(): void {
    if (this.#sweep !== undefined) {
      this.#sweepAgain = true;
      return;
    }
    this.#sweep = (async () => {
      do {
        this.#sweepAgain = false;
        for (const digest of new Set([...this.#seeding.keys(), ...this.#persisted])) {
          if (this.#o.lifetime.aborted) return;
          if ((await this.#o.store.stat(parseDigest(digest))) !== undefined) continue;
          if (this.#persisted.delete(digest)) {
            await this.#o.metaStore?.delete(digest).catch((err: unknown) => this.#log.warn({ err, digest }, 'could not delete metainfo'));
          }
          if (!this.#seeding.delete(digest)) continue;
          this.#log.info({ digest }, 'blob left the store; stopped seeding it');
          await this.#o.engine.stopSeeding(digest).catch((err: unknown) => this.#log.warn({ err, digest }, 'could not stop seeding'));
        }
      } while (this.#sweepAgain);
    })().finally(() => {
      this.#sweep = undefined;
    });
  }

  // --- internals ---------------------------------------------------------------------------------------------

  /** After a failed swarm download: the missing pieces from the origin when possible, else the whole blob. */
  async #fromOrigin(request: BlobRequest, meta: Metainfo, pending: Pending, signal: AbortSignal, log: Logger): Promise<BlobStreamResult> {
    const { origin, originRange, engine } = this.#o;
    if (originRange === undefined) return origin.open(request, 0, signal);
    const path = engine.pathOf(meta.digest);
    try {
      const outcome = await repairFromOrigin({ meta, path, request, openRange: originRange, signal, log });
      if (outcome.kind === 'not_ranged') {
        log.info('the origin ignored the Range request; using its whole-blob answer');
        return outcome.result;
      }
      if (outcome.kind === 'repaired') {
        Object.assign(pending, { via: 'mixed', peerBytes: outcome.peerBytes, originBytes: outcome.originBytes, repairedPath: path });
        const fh = await openFile(path, 'r');
        return { size: meta.size, body: fh.createReadStream({ autoClose: true }) };
      }
    } catch (err) {
      if (signal.aborted) throw err;
      log.warn({ err: toLayerswarmError(err) }, 'could not fetch the missing pieces from the origin; fetching the whole blob');
      await removeDownloadFile(path);
    }
    return origin.open(request, 0, signal);
  }

  /** `size`: the origin's, undefined when its HEAD failed or did not say (then the metainfo's size stands). */
  async #metainfo(request: BlobRequest, size: number | undefined, signal: AbortSignal, log: Logger): Promise<Metainfo | undefined> {
    const deadline = AbortSignal.timeout(this.#o.metainfoTimeoutMs);
    const lookup: MetainfoLookup = {
      digest: request.digest.value, repository: request.name,
      ...(this.#o.isDefaultRegistry(request.registry) ? {} : { registry: request.registry.host }),
    };
    let meta: Metainfo;
    try {
      meta = await this.#o.tracker.getMetainfo(lookup, AbortSignal.any([signal, deadline]));
    } catch (err) {
      if (signal.aborted) throw err;
      const unreachable = isTrackerError(err, 'TRACKER_UNAVAILABLE') || isTrackerError(err, 'SHUTTING_DOWN');
      this.#fallback(unreachable ? 'tracker_unreachable' : 'no_metainfo', request.digest.value, log, err);
      return undefined;
    }
    if (size !== undefined && meta.size !== size) {
      this.#fallback('swarm_error', request.digest.value, log, new LayerswarmError('SIZE_MISMATCH', `tracker metainfo says ${meta.size} bytes, the origin ${size}`));
      return undefined;
    }
    return meta;
  }

  /** Download through the swarm with a stall / no-peer watchdog. Undefined (after the fallback is recorded) on failure. */
  async #download(meta: Metainfo, signal: AbortSignal, log: Logger): Promise<DownloadResult | undefined> {
    const { engine, stallTimeoutMs, noPeerTimeoutMs } = this.#o;
    await this.#makeRoom();
    const stall = new AbortController();
    let stallReason: SwarmFallbackReason = 'stalled';
    /** What the watchdog saw when it gave up (logged with the fallback). */
    let seen: Record<string, unknown> = {};
    let have = -1;
    let haves = 0;
    let answers = 0;
    // Fed: a piece came. Until then, connected neighbours that hold nothing yet are not a reason to leave (a big
    // rollout takes a while to reach every node); the stall timeout still applies. (A peer that merely held a piece
    // for us, or a request in flight, is not enough: in the N = 500 emulation nodes whose only holder, the seeder,
    // turned them away sat among empty neighbours and left with no_peers after 5 s.)
    let fed = false;
    let changed = this.#now();
    let usable = changed;
    const stopWatchdog = (this.#o.timer ?? intervalTimer)(() => {
      if (stall.signal.aborted) return;
      const now = this.#now();
      const stats = engine.torrentStats(meta.digest);
      const current = stats?.have ?? 0;
      if (current !== have) {
        have = current;
        changed = now;
      }
      if (stats !== undefined) {
        if (stats.usefulPeers > 0 || stats.inFlight > 0) usable = now;
        if (stats.have > 0) fed = true;
        // Neighbours announcing new pieces: the swarm around us is alive, pieces for us will follow.
        if (stats.havesReceived !== haves) {
          haves = stats.havesReceived;
          usable = now;
        }
        // Before we are fed: peers that answer (a handshake, or "no capacity") show a swarm that is there but busy; in
        // a big rollout the last nodes to start find every peer full for a while (N = 500 emulation: 143 no_peers
        // fallbacks). Once fed, only pieces and Haves count: new empty neighbours do not help.
        if (stats.peerAnswers !== answers) {
          answers = stats.peerAnswers;
          if (!fed) usable = now;
        }
        // Before the tracker's first answer (or failure) nobody can have been dialled: that wait is not "no peers".
        if (!fed && stats.announcesSettled === 0) usable = now;
      }
      // A new verified piece counts as well (it may have come from a peer that is gone already).
      usable = Math.max(usable, changed);
      // Never less than NO_PEER_LATENCIES piece latencies: on slow links (pieces of seconds) neighbours that hold
      // nothing new for 5 s are normal early in a big rollout (an N = 500 emulation at 32 KiB/s, 1 s pieces: 289
      // fed downloads left for the origin in the first 30 s with a fixed 5 s).
      const noPeerWindow = Math.max(noPeerTimeoutMs, NO_PEER_LATENCIES * (stats?.pieceLatencyMs ?? 0));
      const noPeers = now - usable >= noPeerWindow && (fed || (stats?.connected ?? 0) === 0);
      // Never less than STALL_LATENCIES piece latencies: with a full download limiter a piece can take half a minute
      // to arrive (N = 50 emulation at 32 KiB/s: a node 122 of 129 pieces in, 9 useful peers, 7 requests in flight,
      // piece latency 36 s, left for the origin after 30 s without a new piece).
      const stallWindow = Math.max(stallTimeoutMs, STALL_LATENCIES * (stats?.pieceLatencyMs ?? 0));
      if (!noPeers && now - changed < stallWindow) return;
      seen = { windowMs: Math.round(noPeerWindow), stallWindowMs: Math.round(stallWindow), fed, connected: stats?.connected, usefulPeers: stats?.usefulPeers, inFlight: stats?.inFlight, havesReceived: stats?.havesReceived, peerAnswers: stats?.peerAnswers, rejected: stats?.rejected, msSinceUsable: now - usable, msSinceNewPiece: now - changed };
      if (noPeers) {
        stallReason = 'no_peers';
        stall.abort(new LayerswarmError('ABORTED', `no connected peer held a missing piece for ${Math.round(noPeerWindow)} ms`));
      } else {
        stall.abort(new LayerswarmError('ABORTED', `no new verified piece for ${Math.round(stallWindow)} ms`));
      }
    }, Math.max(10, Math.min(1000, Math.floor(Math.min(stallTimeoutMs, noPeerTimeoutMs) / 4))));
    try {
      return await engine.download(meta, { signal: AbortSignal.any([signal, stall.signal]), keepPartial: this.#o.originRange !== undefined });
    } catch (err) {
      if (signal.aborted) throw err;
      const reason: SwarmFallbackReason = stall.signal.aborted && isAbortError(err) ? stallReason : 'swarm_error';
      this.#fallback(reason, meta.digest, log, stall.signal.aborted ? stall.signal.reason : err, { have: Math.max(have, 0), pieces: meta.pieceHashes.length, watchdog: seen });
      // The engine stops a download nobody waits for (keeping its file for #fromOrigin with originRange); make sure
      // no torrent stays behind.
      await engine.stopSeeding(meta.digest).catch(() => undefined);
      return undefined;
    } finally {
      stopWatchdog();
    }
  }

  async #persist(meta: Metainfo, log: Logger): Promise<void> {
    const metaStore = this.#o.metaStore;
    if (metaStore === undefined) return;
    try {
      await metaStore.put(meta);
      this.#persisted.add(meta.digest);
    } catch (err) {
      log.warn({ err }, 'could not persist metainfo; the blob will not be seeded after a restart');
    }
  }

  async #seed(meta: Metainfo, log: Logger): Promise<boolean> {
    try {
      await this.#makeRoom();
      await this.#o.engine.seed(meta, { store: this.#o.store }, this.#o.lifetime);
      this.#seeding.delete(meta.digest);
      this.#seeding.set(meta.digest, meta);
      log.debug('seeding from the store');
      // It may have been evicted while the seed was starting.
      this.storeChanged();
      return true;
    } catch (err) {
      if (!this.#o.lifetime.aborted) log.warn({ err }, 'could not seed a stored blob');
      return false;
    }
  }

  /** Keep one torrent slot free for a new download: stop the oldest seeds when the engine is at its cap. */
  async #makeRoom(): Promise<void> {
    let excess = this.#o.engine.stats().length - (this.#o.maxTorrents - 1);
    for (const digest of [...this.#seeding.keys()]) {
      if (excess <= 0) return;
      this.#seeding.delete(digest);
      if (await this.#o.engine.stopSeeding(digest)) excess--;
      this.#log.info({ digest }, 'stopped seeding the oldest blob to make room for a new download');
    }
  }

  #fallback(reason: SwarmFallbackReason, digest: string, log: Logger, err: unknown, extra: Record<string, unknown> = {}): void {
    this.#o.onFallback?.(reason, digest);
    log.warn({ reason, err: toLayerswarmError(err), ...extra }, 'swarm download not possible; fetching from the origin');
  }
}

/** Delete a download file and its piece sidecar (best effort). */
async function removeDownloadFile(path: string): Promise<void> {
  await Promise.all([rm(path, { force: true }), rm(`${path}.pieces`, { force: true }), rm(`${path}.pieces.tmp`, { force: true })]).catch(() => undefined);
}
