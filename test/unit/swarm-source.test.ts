// SwarmBlobSource with a fake engine, tracker and origin, driven through the real BlobFetcher and a memory store:
// which blobs go to the swarm, every fallback reason, seeding after commit, and stopping on eviction.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobFetcher } from '../../agent/blobs/blob-fetcher.ts';
import type { BlobRequest, BlobSource, BlobStreamResult } from '../../agent/source/blob-source.ts';
import { SwarmBlobSource, type MetainfoProvider, type SwarmEngineLike, type SwarmFallbackReason } from '../../agent/source/swarm-source.ts';
import { MemoryBlobStore } from '../../agent/store/memory-store.ts';
import { SeedMetaStore } from '../../agent/swarm/seed-meta-store.ts';
import type { DownloadResult, SeedSource } from '../../agent/swarm/engine/index.ts';
import type { TorrentStats } from '../../agent/swarm/engine/stats.ts';
import { sha256Digest } from '../../shared/digest.ts';
import { isLayerswarmError, LayerswarmError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logging.ts';
import { computeMetainfo, type Metainfo } from '../../shared/swarm/metainfo.ts';
import { TrackerError } from '../../tracker/errors.ts';
import { waitFor } from '../fixtures/process.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const registry = { host: 'o.example', baseUrl: 'http://o.example', dockerHub: false };
const data = randomBytes(6 * 2 ** 20 + 123);
const digest = sha256Digest(data);
const request: BlobRequest = { registry, name: 'app', digest, identity: { kind: 'agent' } };
const POLICY = { minPieceLength: 2 ** 20, maxPieceLength: 2 ** 20, targetPieces: 1, originDirectMaxBytes: 4 * 2 ** 20 };

class FakeOrigin implements BlobSource {
  readonly name = 'origin';
  readonly calls: number[] = [];
  async open(_req: BlobRequest, offset: number): Promise<BlobStreamResult> {
    this.calls.push(offset);
    return { size: data.length, body: (async function* () { yield data.subarray(offset); })() };
  }
}

const stats = (digest: string, have: number, role: 'download' | 'seed' = 'download', extra: Partial<TorrentStats> = {}): TorrentStats => ({
  digest, role, pieceCount: 7, have, complete: false, connected: 0, usefulPeers: 0, inFlight: 0, havesReceived: 0, peerAnswers: 0, announcesSettled: 1, bytesUp: 0, bytesDown: 0, piecesUp: 0, piecesDown: 0, badPieces: 0, rejected: 0, peers: {},
  ...extra,
});

/** A watchdog timer and clock driven by hand: `advance(ms)` moves the clock and runs the watchdog once. */
class ManualWatchdog {
  now = 0;
  #tick: (() => void) | undefined;
  #started: Promise<void>;
  #resolveStarted!: () => void;
  stopped = false;
  constructor() {
    this.#started = new Promise((resolve) => (this.#resolveStarted = resolve));
  }
  readonly timer = (tick: () => void): (() => void) => {
    this.#tick = tick;
    this.#resolveStarted();
    return () => {
      this.stopped = true;
    };
  };
  /** Resolves once the source started its watchdog. */
  started(): Promise<void> {
    return this.#started;
  }
  advance(ms: number): void {
    this.now += ms;
    this.#tick?.();
  }
}

class FakeEngine implements SwarmEngineLike {
  readonly seeded: Array<{ digest: string; source: SeedSource }> = [];
  readonly stopped: string[] = [];
  readonly torrents = new Map<string, TorrentStats>();
  download: (meta: Metainfo, options: { signal: AbortSignal }) => Promise<DownloadResult> = () => Promise.reject(new Error('no download scripted'));
  async seed(meta: Metainfo, source: SeedSource): Promise<void> {
    this.seeded.push({ digest: meta.digest, source });
    this.torrents.set(meta.digest, stats(meta.digest, 7, 'seed'));
  }
  async stopSeeding(digest: string): Promise<boolean> {
    this.stopped.push(digest);
    return this.torrents.delete(digest);
  }
  pathOf(digest: string): string {
    return `/nonexistent/${digest}`;
  }
  torrentStats(digest: string): TorrentStats | undefined {
    return this.torrents.get(digest);
  }
  stats(): TorrentStats[] {
    return [...this.torrents.values()];
  }
}

/** Resolves with the download result once the signal is not aborted... or never, until the signal aborts. */
function hangUntilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(new LayerswarmError('ABORTED', 'aborted', { cause: signal.reason })), { once: true }));
}

describe('SwarmBlobSource', () => {
  let dir: string;
  let meta: Metainfo;
  let blobFile: string;
  // AbortSignal.timeout timers do not keep the event loop alive; the agent's server does, here this one.
  let keepAlive: NodeJS.Timeout | undefined;
  before(async () => {
    keepAlive = setInterval(() => undefined, 1000);
    dir = await makeTempDir('swarm-source-');
    meta = await computeMetainfo(digest.value, [data], data.length, POLICY);
    blobFile = join(dir, 'blob');
    await writeFile(blobFile, data);
  });
  after(async () => {
    clearInterval(keepAlive);
    if (dir) await removeTempDir(dir);
  });

  function setup(options: { tracker?: MetainfoProvider['getMetainfo']; head?: () => Promise<{ size?: number }>; stallTimeoutMs?: number; noPeerTimeoutMs?: number; maxTorrents?: number; watchdog?: ManualWatchdog; metaStore?: SeedMetaStore } = {}) {
    const origin = new FakeOrigin();
    const engine = new FakeEngine();
    const store = new MemoryBlobStore({ capBytes: 1 << 26 });
    const lifetime = new AbortController();
    const fallbacks: SwarmFallbackReason[] = [];
    const bytes: Record<string, number> = {};
    let trackerCalls = 0;
    const source = new SwarmBlobSource({
      origin, engine, store,
      ...(options.metaStore ? { metaStore: options.metaStore } : {}),
      upstream: { headBlob: options.head ?? (async () => ({ size: data.length })) },
      tracker: {
        getMetainfo: async (lookup, signal) => {
          trackerCalls++;
          assert.equal(lookup.repository, 'app');
          assert.equal(lookup.registry, undefined);
          return (options.tracker ?? (async () => meta))(lookup, signal);
        },
      },
      isDefaultRegistry: () => true,
      originDirectMaxBytes: POLICY.originDirectMaxBytes,
      metainfoTimeoutMs: 200,
      stallTimeoutMs: options.stallTimeoutMs ?? 5000,
      noPeerTimeoutMs: options.noPeerTimeoutMs ?? 5000,
      ...(options.watchdog === undefined ? {} : { timer: options.watchdog.timer, now: () => options.watchdog?.now ?? 0 }),
      maxTorrents: options.maxTorrents ?? 256,
      logger: silentLogger(),
      lifetime: lifetime.signal,
      onFallback: (reason) => fallbacks.push(reason),
      onBytes: (from, n) => (bytes[from] = (bytes[from] ?? 0) + n),
    });
    const fetcher = new BlobFetcher({ store, source, logger: silentLogger(), attempts: 2, lifetime: lifetime.signal });
    return { origin, engine, store, source, fetcher, fallbacks, bytes, lifetime, trackerCalls: () => trackerCalls };
  }

  /**
   * A swarm download (stall 30 s, no-peer 5 s) that hangs until the watchdog aborts it; the test drives the watchdog's
   * clock and the torrent's stats. `downloadSignal()` is the signal the engine got (undefined before it started).
   */
  const watchedDownload = async () => {
    const w = new ManualWatchdog();
    const s = setup({ stallTimeoutMs: 30_000, noPeerTimeoutMs: 5000, watchdog: w });
    await s.store.init();
    let signalSeen: AbortSignal | undefined;
    s.engine.download = async (m, { signal }) => {
      signalSeen = signal;
      return hangUntilAborted(signal);
    };
    const outcome = s.fetcher.ensure(request, AbortSignal.timeout(5000));
    await w.started();
    return { s, w, outcome, downloadSignal: () => signalSeen };
  };

  const downloadFrom = (path: string) => async (m: Metainfo): Promise<DownloadResult> => ({ path, digest: m.digest, size: m.size, stats: stats(m.digest, 7) });

  test('a large blob comes from the swarm, is verified into the store, then seeded from the store', async () => {
    const s = setup();
    await s.store.init();
    s.engine.download = downloadFrom(blobFile);
    const outcome = await s.fetcher.ensure(request, AbortSignal.timeout(5000));
    assert.equal(outcome.source, 'swarm');
    assert.equal((await s.store.stat(digest))?.size, data.length);
    assert.deepEqual(s.origin.calls, []);
    assert.deepEqual(s.fallbacks, []);
    assert.deepEqual(s.bytes, { peers: data.length });
    await new Promise((r) => setImmediate(r));
    assert.equal(s.engine.seeded.length, 1);
    assert.ok('store' in (s.engine.seeded[0]?.source ?? {}), 'seeded from the store, not the download file');
    assert.deepEqual(s.source.seeding, [digest.value]);

    // Eviction (here: delete) → stop seeding.
    await s.store.delete(digest);
    s.source.storeChanged();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(s.engine.stopped, [digest.value]);
    assert.deepEqual(s.source.seeding, []);
  });

  test('metainfo of a committed blob is persisted, deleted when the blob leaves the store; resumeSeeding seeds stored blobs', async () => {
    const metaDir = join(dir, 'meta-persist');
    const metaStore = new SeedMetaStore({ dir: metaDir, logger: silentLogger() });
    const s = setup({ metaStore });
    await s.store.init();
    s.engine.download = downloadFrom(blobFile);
    await s.fetcher.ensure(request, AbortSignal.timeout(5000));
    const file = join(metaDir, `${digest.hex}.json`);
    await waitFor(() => access(file).then(() => true, () => false), { timeoutMs: 5000, what: 'metainfo persisted' });
    assert.deepEqual((await metaStore.list(AbortSignal.timeout(5000))).map((r) => r.metainfo), [meta]);

    // A second source on the same store and metainfo (a restart): seeds the stored blob.
    const again = setup({ metaStore });
    await again.store.init();
    const writer = await again.store.createWriter(digest);
    await writer.append((async function* () {
      yield data;
    })());
    await writer.commit();
    assert.equal(await again.source.resumeSeeding(AbortSignal.timeout(5000)), 1);
    assert.deepEqual(again.source.seeding, [digest.value]);

    await s.store.delete(digest);
    s.source.storeChanged();
    await waitFor(() => access(file).then(() => false, () => true), { timeoutMs: 5000, what: 'metainfo deleted' });
  });

  test('resumes (offset > 0) and small blobs go straight to the origin; a failing or sizeless HEAD asks the tracker', async () => {
    const s = setup();
    await s.source.open(request, 10, AbortSignal.timeout(1000));
    assert.deepEqual(s.origin.calls, [10]);

    const small = setup({ head: async () => ({ size: 1000 }) });
    await small.source.open(request, 0, AbortSignal.timeout(1000));
    assert.deepEqual(small.origin.calls, [0]);
    assert.equal(small.trackerCalls(), 0);
    assert.deepEqual(small.fallbacks, []);
    // The origin's answer (here 404) is passed on by its GET, never replaced by the swarm.
    const unknown = setup({ head: async () => Promise.reject(new LayerswarmError('BLOB_UNKNOWN', 'no such blob')) });
    await unknown.source.open(request, 0, AbortSignal.timeout(1000));
    assert.deepEqual(unknown.origin.calls, [0]);
    assert.equal(unknown.trackerCalls(), 0);
    // An origin that cannot answer a HEAD (overloaded) must not make every node fetch the whole blob from it: the
    // tracker's metainfo gives the size, and the blob comes from the swarm.
    const unknownSize = setup({ head: async () => ({}) });
    const headFails = setup({ head: async () => Promise.reject(new LayerswarmError('UPSTREAM_UNAVAILABLE', 'down')) });
    for (const x of [unknownSize, headFails]) {
      await x.store.init();
      x.engine.download = downloadFrom(blobFile);
      const result = await x.fetcher.ensure(request, AbortSignal.timeout(5000));
      assert.equal(result.source, 'swarm');
      assert.equal((await x.store.stat(digest))?.size, data.length);
      assert.equal(x.trackerCalls(), 1);
      assert.deepEqual(x.origin.calls, [], 'nothing from the origin');
      assert.deepEqual(x.fallbacks, []);
    }
  });

  test('fallback reasons: tracker unreachable, no metainfo (error or timeout), size mismatch, swarm error, stall', async () => {
    const cases: Array<{ reason: SwarmFallbackReason; s: ReturnType<typeof setup> }> = [
      { reason: 'tracker_unreachable', s: setup({ tracker: async () => Promise.reject(new TrackerError('TRACKER_UNAVAILABLE', 'ECONNREFUSED')) }) },
      { reason: 'no_metainfo', s: setup({ tracker: async () => Promise.reject(new TrackerError('NO_SEEDER', 'no seeder')) }) },
      { reason: 'no_metainfo', s: setup({ tracker: async (_l, signal) => hangUntilAborted(signal ?? new AbortController().signal) }) },
      { reason: 'swarm_error', s: setup({ tracker: async () => ({ ...meta, size: meta.size + 1 }) }) },
      { reason: 'swarm_error', s: setup() },
      { reason: 'stalled', s: setup({ stallTimeoutMs: 100 }) },
    ];
    const swarmError = cases[4]?.s;
    assert.ok(swarmError);
    swarmError.engine.download = async () => Promise.reject(new LayerswarmError('DIGEST_MISMATCH', 'bad metainfo'));
    const stall = cases[5]?.s;
    assert.ok(stall);
    stall.engine.download = async (m, { signal }) => {
      stall.engine.torrents.set(m.digest, stats(m.digest, 2, 'download', { connected: 1, usefulPeers: 1 }));
      return hangUntilAborted(signal);
    };
    for (const { reason, s } of cases) {
      await s.store.init();
      const outcome = await s.fetcher.ensure(request, AbortSignal.timeout(5000));
      assert.equal(outcome.info.size, data.length, reason);
      assert.deepEqual(s.fallbacks, [reason]);
      assert.deepEqual(s.origin.calls, [0], reason);
      assert.deepEqual(s.bytes, { origin: data.length }, reason);
    }
    assert.deepEqual(stall.engine.stopped.slice(0, 1), [digest.value], 'the stalled download is stopped');
    // With metainfo known, the blob fetched from the origin is seeded all the same.
    await new Promise((r) => setImmediate(r));
    assert.equal(stall.engine.seeded.length, 1);
    assert.equal(cases[0]?.s.engine.seeded.length, 0, 'no metainfo, nothing to seed');
  });

  test('after the first piece, no usable peer for noPeerTimeoutMs → no_peers, well before the stall timeout; a useful peer or a piece in flight resets it', async () => {
    const { s, w, outcome, downloadSignal } = await watchedDownload();
    // The torrent is not there yet, then there with a piece and peers that lack what we lack (tracker/seeder gone).
    w.advance(3000);
    s.engine.torrents.set(digest.value, stats(digest.value, 1, 'download', { connected: 2, usefulPeers: 0 }));
    w.advance(1999);
    assert.equal(downloadSignal()?.aborted, false);
    // A useful peer shows up at 4999 ms, a request is in flight at 8000 ms: the clock restarts each time.
    s.engine.torrents.set(digest.value, stats(digest.value, 1, 'download', { connected: 3, usefulPeers: 1 }));
    w.advance(1);
    s.engine.torrents.set(digest.value, stats(digest.value, 1, 'download', { connected: 3, usefulPeers: 0, inFlight: 1 }));
    w.advance(3000);
    s.engine.torrents.set(digest.value, stats(digest.value, 1, 'download', { connected: 3 }));
    w.advance(4999);
    assert.equal(downloadSignal()?.aborted, false, 'not yet 5 s without a usable peer');
    assert.deepEqual(s.fallbacks, []);
    w.advance(1);
    const result = await outcome;
    assert.equal(result.info.size, data.length);
    assert.deepEqual(s.fallbacks, ['no_peers']);
    assert.deepEqual(s.origin.calls, [0]);
    assert.deepEqual(s.bytes, { origin: data.length });
    assert.ok(s.engine.stopped.includes(digest.value), 'the abandoned download is stopped');
    assert.ok(w.stopped, 'the watchdog is stopped');
  });

  test('slow pieces: the no-peer window is at least 20 piece latencies (1 s pieces → 20 s, not 5 s)', async () => {
    const { s, w, outcome, downloadSignal } = await watchedDownload();
    s.engine.torrents.set(digest.value, stats(digest.value, 1, 'download', { connected: 9, usefulPeers: 0, pieceLatencyMs: 1000 }));
    w.advance(1000); // the first tick sees the piece: the window starts here
    w.advance(19_999);
    assert.equal(downloadSignal()?.aborted, false, 'fed, neighbours with nothing new for 20 s - 1 ms: still in the swarm');
    assert.deepEqual(s.fallbacks, []);
    w.advance(1);
    await outcome;
    assert.deepEqual(s.fallbacks, ['no_peers']);
  });

  test('slow pieces: the stall window is at least 8 piece latencies (10 s pieces → 80 s, not 30 s)', async () => {
    const { s, w, outcome, downloadSignal } = await watchedDownload();
    s.engine.torrents.set(digest.value, stats(digest.value, 3, 'download', { connected: 9, usefulPeers: 9, inFlight: 7, pieceLatencyMs: 10_000 }));
    w.advance(1000); // the first tick sees the pieces: the stall clock starts here
    w.advance(79_999);
    assert.equal(downloadSignal()?.aborted, false, 'requests in flight on a full link, no new piece for 80 s - 1 ms: still in the swarm');
    w.advance(1);
    await outcome;
    assert.deepEqual(s.fallbacks, ['stalled']);
  });

  test('neighbours that hold nothing for us but keep announcing new pieces (Have) keep the download in the swarm', async () => {
    const { s, w, outcome, downloadSignal } = await watchedDownload();
    // A big rollout's start: connected neighbours hold nothing we lack yet, but they are receiving pieces.
    for (let t = 1; t <= 6; t++) {
      s.engine.torrents.set(digest.value, stats(digest.value, 2, 'download', { connected: 8, usefulPeers: 0, havesReceived: t * 3 }));
      w.advance(4000);
    }
    assert.equal(downloadSignal()?.aborted, false, '24 s without a useful peer, but Haves kept coming');
    assert.deepEqual(s.fallbacks, []);
    // The Haves stop (the seeder died and nobody gets anything): no_peers 5 s later.
    w.advance(4999);
    assert.equal(downloadSignal()?.aborted, false);
    w.advance(1);
    await outcome;
    assert.deepEqual(s.fallbacks, ['no_peers']);
  });

  test('before any peer held a piece for us, connected empty neighbours wait for the stall timeout, not no_peers', async () => {
    const { s, w, outcome, downloadSignal } = await watchedDownload();
    s.engine.torrents.set(digest.value, stats(digest.value, 0, 'download', { connected: 6, usefulPeers: 0 }));
    w.advance(1); // the stall clock starts at the first tick
    w.advance(29_999);
    assert.equal(downloadSignal()?.aborted, false, 'connected, never fed: no no_peers');
    w.advance(1);
    await outcome;
    assert.deepEqual(s.fallbacks, ['stalled']);
  });

  test('before any peer held a piece for us, peers that answer but refuse for capacity keep it in the swarm; silence → no_peers', async () => {
    const { s, w, outcome, downloadSignal } = await watchedDownload();
    // A late node in a big rollout: every peer it dials is full (no connection stays open), but they answer.
    for (let t = 1; t <= 5; t++) {
      s.engine.torrents.set(digest.value, stats(digest.value, 0, 'download', { connected: 0, peerAnswers: t * 4 }));
      w.advance(4000);
    }
    assert.equal(downloadSignal()?.aborted, false, '20 s with no connection, but peers kept answering');
    // Nobody answers any more (the tracker hands out only dead addresses): no_peers after 5 s.
    w.advance(4999);
    assert.equal(downloadSignal()?.aborted, false);
    w.advance(1);
    await outcome;
    assert.deepEqual(s.fallbacks, ['no_peers']);
  });

  test('before the first announce came back, no connection is not "no peers"; after it, silence → no_peers', async () => {
    const { s, w, outcome, downloadSignal } = await watchedDownload();
    // A tracker busy with a whole rollout starting: the first announce takes 12 s to come back.
    s.engine.torrents.set(digest.value, stats(digest.value, 0, 'download', { connected: 0, announcesSettled: 0 }));
    for (let t = 0; t < 3; t++) w.advance(4000);
    assert.equal(downloadSignal()?.aborted, false, '12 s without an announce answer: still waiting');
    s.engine.torrents.set(digest.value, stats(digest.value, 0, 'download', { connected: 0, announcesSettled: 1 }));
    w.advance(4999);
    assert.equal(downloadSignal()?.aborted, false);
    w.advance(1);
    await outcome;
    assert.deepEqual(s.fallbacks, ['no_peers']);
  });

  test('peers that hold missing pieces but deliver none → stalled (not no_peers), even with a shorter noPeerTimeoutMs', async () => {
    const w = new ManualWatchdog();
    const s = setup({ stallTimeoutMs: 10_000, noPeerTimeoutMs: 2000, watchdog: w });
    await s.store.init();
    s.engine.download = async (m, { signal }) => {
      s.engine.torrents.set(m.digest, stats(m.digest, 1, 'download', { connected: 2, usefulPeers: 2 }));
      return hangUntilAborted(signal);
    };
    const outcome = s.fetcher.ensure(request, AbortSignal.timeout(5000));
    await w.started();
    w.advance(1000);
    // A verified piece restarts the stall clock.
    s.engine.torrents.set(digest.value, stats(digest.value, 2, 'download', { connected: 2, usefulPeers: 2 }));
    w.advance(9000);
    w.advance(9999);
    assert.deepEqual(s.fallbacks, []);
    w.advance(1);
    await outcome;
    assert.deepEqual(s.fallbacks, ['stalled']);
    assert.deepEqual(s.origin.calls, [0]);
  });

  test('bytes from the swarm that do not match the digest are never stored; the download is dropped', async () => {
    const s = setup();
    await s.store.init();
    const bad = join(dir, 'bad');
    await writeFile(bad, randomBytes(data.length));
    s.engine.download = downloadFrom(bad);
    await assert.rejects(s.fetcher.ensure(request, AbortSignal.timeout(5000)), (err: unknown) => isLayerswarmError(err, 'DIGEST_MISMATCH'));
    assert.equal(await s.store.stat(digest), undefined);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(s.engine.stopped, [digest.value]);
    assert.deepEqual(s.engine.seeded, []);
  });

  test('at the engine\'s torrent cap the oldest seed is stopped before a new download', async () => {
    const s = setup({ maxTorrents: 2 });
    await s.store.init();
    s.engine.download = downloadFrom(blobFile);
    await s.fetcher.ensure(request, AbortSignal.timeout(5000));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(s.source.seeding, [digest.value]);
    const other = `sha256:${'1'.repeat(64)}`;
    s.engine.torrents.set(other, stats(other, 0));
    await s.store.delete(digest);
    await s.fetcher.ensure(request, AbortSignal.timeout(5000));
    assert.ok(s.engine.stopped.includes(digest.value), 'oldest seed stopped to make room');
  });
});
