// The swarm engine over MemoryTransport with an in-memory announce stub: seeders and downloaders in one process.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SwarmEngine } from '../../agent/swarm/engine/engine.ts';
import { swarmEngineConfig } from '../../agent/swarm/engine/config.ts';
import { peerIdToBytes } from '../../agent/swarm/engine/peer-id.ts';
import type { Announce } from '../../agent/swarm/engine/announce.ts';
import type { PeerTraffic } from '../../agent/swarm/engine/stats.ts';
import { MemoryBlobStore } from '../../agent/store/memory-store.ts';
import { parseDigest } from '../../shared/digest.ts';
import { isLayerswarmError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logging.ts';
import { computeMetainfo, type Metainfo } from '../../shared/swarm/metainfo.ts';
import { PROTOCOL_VERSION, type Received } from '../../shared/wire/codec.ts';
import { MemoryNetwork, MemoryTransport } from '../../shared/wire/memory-transport.ts';
import type { Connection, Transport } from '../../shared/wire/transport.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const PIECE = 64 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function makeBlob(size: number, dir: string): Promise<{ bytes: Buffer; meta: Metainfo; path: string }> {
  const bytes = randomBytes(size);
  const meta = await computeMetainfo(`sha256:${sha(bytes)}`, [bytes], size, { minPieceLength: PIECE, maxPieceLength: PIECE, targetPieces: 1, originDirectMaxBytes: 0 });
  const path = join(dir, `blob-${meta.digest.slice(7, 15)}`);
  await writeFile(path, bytes);
  return { bytes, meta, path };
}

/** Every announcer learns every other peer of the digest (complete ones first). */
class StubTracker {
  readonly swarms = new Map<string, Map<string, { address: string; complete: boolean }>>();
  announceFor(host: string): Announce {
    return async (input) => {
      const swarm = this.swarms.get(input.digest) ?? new Map<string, { address: string; complete: boolean }>();
      this.swarms.set(input.digest, swarm);
      swarm.set(input.peerId, { address: `${host}:${input.port}`, complete: input.complete });
      return [...swarm].filter(([id]) => id !== input.peerId).sort((a, b) => Number(b[1].complete) - Number(a[1].complete))
        .map(([peerId, p]) => ({ peerId, address: p.address, complete: p.complete }));
    };
  }
}

/** A test-only transport wrapper that rewrites the Piece payloads this side sends (delay, corruption). */
function wrapSends(inner: Transport, onPiece: (payload: Buffer) => Promise<Buffer>): Transport {
  const wrap = (c: Connection): Connection => ({
    remote: c.remote,
    closed: c.closed,
    messages: () => c.messages(),
    close: (e) => c.close(e),
    send: async (message, payload) => {
      if (message.kind !== 'piece' || payload === undefined) return c.send(message, payload);
      return c.send(message, await onPiece(Buffer.isBuffer(payload) ? payload : Buffer.concat(payload)));
    },
  });
  return {
    listen: (address, onConnection) => inner.listen(address, (c) => onConnection(wrap(c))),
    connect: async (address, signal) => wrap(await inner.connect(address, signal)),
  };
}
const throttled = (inner: Transport, ms: number): Transport => wrapSends(inner, async (p) => { await sleep(ms); return p; });
const corrupting = (inner: Transport): Transport => wrapSends(inner, async (p) => {
  const copy = Buffer.from(p);
  copy[0] = (copy[0] ?? 0) ^ 0xff;
  return copy;
});

const CONFIG = swarmEngineConfig({ tickMs: 50, scheduler: { announceIntervalMs: 200, requestTimeoutMs: 3000, idleTimeoutMs: 5000, rejectBackoffMs: 50 } });

describe('swarm engine over MemoryTransport', () => {
  const cleanup: Array<() => Promise<void>> = [];
  after(async () => {
    for (const f of cleanup.reverse()) await f();
  });

  async function swarm(opts: { seeders: Array<{ transport?: (t: Transport) => Transport; slots?: number; queue?: number; maxConnections?: number }>; downloaders: number; pipelineDepth?: number; announce?: (a: Announce) => Announce }) {
    const dir = await makeTempDir('swarm-engine');
    const network = new MemoryNetwork();
    const tracker = new StubTracker();
    type Spec = (typeof opts.seeders)[number];
    const make = async (name: string, spec: Spec = {}): Promise<SwarmEngine> => {
      const wrap = spec.transport;
      const base = new MemoryTransport(network);
      const scheduler = {
        ...CONFIG.scheduler, pipelineDepth: opts.pipelineDepth ?? CONFIG.scheduler.pipelineDepth, maxUploadSlots: spec.slots ?? CONFIG.scheduler.maxUploadSlots,
        maxUploadQueue: spec.queue ?? CONFIG.scheduler.maxUploadQueue,
      };
      const config = { ...CONFIG, maxConnections: spec.maxConnections ?? CONFIG.maxConnections, scheduler };
      const announce = opts.announce ? opts.announce(tracker.announceFor('mem')) : tracker.announceFor('mem');
      const engine = new SwarmEngine({ transport: wrap ? wrap(base) : base, announce, dataDir: join(dir, name), config, logger: silentLogger() });
      await engine.listen({ host: 'mem', port: 0 });
      return engine;
    };
    const seeders = await Promise.all(opts.seeders.map((spec, i) => make(`seed${i}`, spec)));
    const downloaders = await Promise.all(Array.from({ length: opts.downloaders }, (_, i) => make(`dl${i}`)));
    const stop = async (): Promise<void> => {
      await Promise.all([...seeders, ...downloaders].map((e) => e.close({ removeFiles: true })));
      await removeTempDir(dir);
    };
    cleanup.push(stop);
    return { dir, seeders, downloaders, tracker, network };
  }

  for (const [pieces, size] of [[3, 2 * PIECE + 1000], [40, 39 * PIECE + 123]] as const) {
    test(`${pieces}-piece blob: 1 seeder → 5 downloaders, all complete, identical, peers feed each other`, async () => {
      // A seeder with one slow upload slot (a thin uplink). With 3 pieces everything is endgame; pipeline 1 keeps the
      // first downloader in the seeder's FIFO queue from taking all 3 pieces from it before the others ask each other.
      const { dir, seeders, downloaders } = await swarm({ seeders: [{ transport: (t) => throttled(t, 10), slots: 1 }], downloaders: 5, pipelineDepth: pieces < 10 ? 1 : undefined });
      const [seeder] = seeders;
      assert.ok(seeder);
      const { bytes, meta, path } = await makeBlob(size, dir);
      assert.equal(meta.pieceHashes.length, pieces);
      await seeder.seed(meta, { path }, AbortSignal.timeout(5000));
      const started = performance.now();
      const results = await Promise.all(downloaders.map((d) => d.download(meta, { signal: AbortSignal.timeout(15_000) })));
      const ms = performance.now() - started;
      let fromPeers = 0;
      for (const r of results) {
        assert.ok((await readFile(r.path)).equals(bytes), 'file is byte-identical');
        assert.equal(r.stats.have, pieces);
        const others = Object.entries(r.stats.peers).filter(([id]) => id !== seeder.peerId).reduce((s, [, t]) => s + t.piecesDown, 0);
        fromPeers += others;
        assert.ok(others > 0, `a downloader got all ${pieces} pieces from the seeder: ${JSON.stringify(r.stats.peers)}`);
      }
      assert.ok(fromPeers > 0, 'downloaders fed each other');
      const seederUp = seeder.torrentStats(meta.digest)?.piecesUp ?? 0;
      console.log(`${pieces} pieces × 5 in ${ms.toFixed(0)} ms: seeder uploaded ${seederUp} pieces, peers ${fromPeers}`);
      assert.ok(seederUp < 5 * pieces, 'the seeder did not upload every copy');
    });
  }

  test('every pair dials each other at the same moment: one connection per pair survives, all complete', async () => {
    // Announces are held until all 7 engines have announced, then everyone learns everyone at once and dials.
    let release!: () => void;
    const barrier = new Promise<void>((resolve) => (release = resolve));
    let arrived = 0;
    const held = (inner: Announce): Announce => async (input, signal) => {
      const peers = await inner(input, signal);
      if (++arrived === 7) release();
      await barrier;
      return arrived <= 7 ? inner(input, signal) : peers;
    };
    const { dir, seeders, downloaders } = await swarm({ seeders: [{ transport: (t) => throttled(t, 5) }], downloaders: 6, announce: held });
    const [seeder] = seeders;
    assert.ok(seeder);
    const { bytes, meta, path } = await makeBlob(16 * PIECE, dir);
    await seeder.seed(meta, { path }, AbortSignal.timeout(5000));
    const results = await Promise.all(downloaders.map((d) => d.download(meta, { signal: AbortSignal.timeout(15_000) })));
    for (const r of results) assert.ok((await readFile(r.path)).equals(bytes));
    for (const d of downloaders) assert.ok(d.connectionCount <= 6, `${d.connectionCount} connections for 6 other peers`);
  });

  test('a busy seeder (1 slot, no queue, 2 connections) refuses work; everyone still completes', async () => {
    const { dir, seeders, downloaders } = await swarm({ seeders: [{ transport: (t) => throttled(t, 5), slots: 1, queue: 0, maxConnections: 2 }], downloaders: 4 });
    const [seeder] = seeders;
    assert.ok(seeder);
    const { bytes, meta, path } = await makeBlob(12 * PIECE, dir);
    await seeder.seed(meta, { path }, AbortSignal.timeout(5000));
    const results = await Promise.all(downloaders.map((d) => d.download(meta, { signal: AbortSignal.timeout(15_000) })));
    for (const r of results) assert.ok((await readFile(r.path)).equals(bytes));
    assert.ok(seeder.connectionCount <= 2);
    const direct = results.filter((r) => (r.stats.peers[seeder.peerId]?.piecesDown ?? 0) > 0).length;
    assert.ok(direct <= 2, `${direct} downloaders got pieces from a seeder that accepts 2 connections`);
    const rejected = results.reduce((sum, r) => sum + (r.stats.peers[seeder.peerId]?.rejected ?? 0), 0);
    assert.ok(rejected > 0, 'the seeder refused requests (Cancel from the uploader) and the downloaders saw it');
  });

  test('a corrupt seeder is detected and blacklisted; the others complete from the good seeder', async () => {
    const { dir, seeders, downloaders } = await swarm({ seeders: [{ transport: (t) => throttled(t, 5) }, { transport: corrupting }], downloaders: 4 });
    const [good, evil] = seeders;
    assert.ok(good && evil);
    const { bytes, meta, path } = await makeBlob(20 * PIECE, dir);
    await good.seed(meta, { path }, AbortSignal.timeout(5000));
    await evil.seed(meta, { path }, AbortSignal.timeout(5000));
    const results = await Promise.all(downloaders.map((d) => d.download(meta, { signal: AbortSignal.timeout(15_000) })));
    let detected = 0;
    for (const r of results) {
      assert.ok((await readFile(r.path)).equals(bytes));
      const fromEvil: PeerTraffic | undefined = r.stats.peers[evil.peerId];
      assert.equal(fromEvil?.piecesDown ?? 0, 0, 'no piece from the corrupt seeder was accepted');
      assert.ok((fromEvil?.badPieces ?? 0) <= 1, 'the corrupt seeder was never asked again after its first bad piece');
      detected += fromEvil?.badPieces ?? 0;
    }
    assert.ok(detected > 0, 'somebody received a corrupt piece');
  });

  test('handshake checks: wrong piece count → HANDSHAKE_MISMATCH, unknown digest → DIGEST_UNKNOWN', async () => {
    const { dir, seeders, network } = await swarm({ seeders: [{}], downloaders: 0 });
    const [seeder] = seeders;
    assert.ok(seeder?.address);
    const { meta, path } = await makeBlob(3 * PIECE, dir);
    await seeder.seed(meta, { path }, AbortSignal.timeout(5000));
    const client = new MemoryTransport(network);
    const tryHandshake = async (digest: string, pieceCount: number): Promise<Received[]> => {
      const c = await client.connect(seeder.address ?? { host: 'mem', port: 0 }, AbortSignal.timeout(2000));
      await c.send({ kind: 'handshake', protocolVersion: PROTOCOL_VERSION, peerId: peerIdToBytes('ab'.repeat(20)), digest, pieceCount, pieceLength: PIECE, bitfield: Buffer.alloc(Math.ceil(pieceCount / 8)) });
      const got: Received[] = [];
      for await (const r of c.messages()) got.push(r);
      return got;
    };
    const mismatch = await tryHandshake(meta.digest, 4);
    assert.ok(mismatch.some((r) => r.message.kind === 'error' && r.message.code === 'HANDSHAKE_MISMATCH'), JSON.stringify(mismatch.map((r) => r.message.kind)));
    const unknown = await tryHandshake(`sha256:${'0'.repeat(64)}`, 3);
    assert.deepEqual(unknown.map((r) => r.message.kind === 'error' && r.message.code), ['DIGEST_UNKNOWN']);
    const ok = await (async () => {
      const c = await client.connect(seeder.address ?? { host: 'mem', port: 0 }, AbortSignal.timeout(2000));
      await c.send({ kind: 'handshake', protocolVersion: PROTOCOL_VERSION, peerId: peerIdToBytes('cd'.repeat(20)), digest: meta.digest, pieceCount: 3, pieceLength: PIECE, bitfield: Buffer.alloc(1) });
      const it = c.messages()[Symbol.asyncIterator]();
      const first = await it.next();
      c.close();
      return first.value as Received;
    })();
    assert.equal(ok.message.kind, 'handshake');
  });

  test('a completed download moves to the blob store and keeps seeding from there', async () => {
    const { dir, seeders, downloaders } = await swarm({ seeders: [{}], downloaders: 2 });
    const [seeder] = seeders;
    const [first, second] = downloaders;
    assert.ok(seeder && first && second);
    const { bytes, meta, path } = await makeBlob(6 * PIECE + 5, dir);
    await seeder.seed(meta, { path }, AbortSignal.timeout(5000));
    const result = await first.download(meta, { signal: AbortSignal.timeout(10_000) });
    const store = new MemoryBlobStore({ capBytes: 1 << 24 });
    await store.init();
    const writer = await store.createWriter(parseDigest(meta.digest));
    await writer.append(createReadStream(result.path));
    await writer.commit();
    await first.seed(meta, { store }, AbortSignal.timeout(5000));
    assert.equal(existsSync(result.path), false, 'the download file is gone once the store holds the blob');
    await seeder.stopSeeding(meta.digest);
    const again = await second.download(meta, { signal: AbortSignal.timeout(10_000) });
    assert.ok((await readFile(again.path)).equals(bytes));
    assert.equal(again.stats.peers[first.peerId]?.piecesDown, meta.pieceHashes.length, 'all pieces came from the store-backed seed');
    await store.close();
  });

  test('a restarted engine resumes a download from its verified pieces', async () => {
    const { dir, seeders, downloaders, network, tracker } = await swarm({ seeders: [{ transport: (t) => throttled(t, 20), slots: 1 }], downloaders: 1 });
    const [seeder] = seeders;
    const [dl] = downloaders;
    assert.ok(seeder && dl);
    const { bytes, meta, path } = await makeBlob(20 * PIECE, dir);
    await seeder.seed(meta, { path }, AbortSignal.timeout(5000));
    const first = dl.download(meta, { signal: AbortSignal.timeout(10_000) });
    first.catch(() => undefined);
    for (let i = 0; i < 200 && (dl.torrentStats(meta.digest)?.have ?? 0) < 6; i++) await sleep(10);
    const dataDir = dirname(dl.pathOf(meta.digest));
    await dl.close(); // keeps the partial file and its sidecar, as a crash would
    await assert.rejects(first, (e) => isLayerswarmError(e, 'ABORTED'));
    const restarted = new SwarmEngine({ transport: new MemoryTransport(network), announce: tracker.announceFor('mem'), dataDir, config: CONFIG, logger: silentLogger() });
    await restarted.listen({ host: 'mem', port: 0 });
    try {
      const result = await restarted.download(meta, { signal: AbortSignal.timeout(10_000) });
      assert.ok((await readFile(result.path)).equals(bytes));
      assert.ok(result.stats.piecesDown <= 20 - 6, `resumed: fetched ${result.stats.piecesDown} of 20 pieces`);
    } finally {
      await restarted.close({ removeFiles: true });
    }
  });

  test('abort of a download stops it and deletes its files', async () => {
    const { dir, seeders, downloaders } = await swarm({ seeders: [{ transport: (t) => throttled(t, 100), slots: 1 }], downloaders: 1 });
    const [seeder] = seeders;
    const [dl] = downloaders;
    assert.ok(seeder && dl);
    const { meta, path } = await makeBlob(30 * PIECE, dir);
    await seeder.seed(meta, { path }, AbortSignal.timeout(5000));
    const ac = new AbortController();
    const download = dl.download(meta, { signal: ac.signal });
    await sleep(400);
    assert.ok(existsSync(dl.pathOf(meta.digest)), 'partial file exists while downloading');
    ac.abort();
    await assert.rejects(download, (e) => isLayerswarmError(e, 'ABORTED'));
    for (let i = 0; i < 50 && (dl.stats().length > 0 || dl.connectionCount > 0); i++) await sleep(20);
    assert.deepEqual(dl.stats(), []);
    assert.equal(dl.connectionCount, 0);
    assert.equal(existsSync(dl.pathOf(meta.digest)), false);
    assert.equal(existsSync(`${dl.pathOf(meta.digest)}.pieces`), false);
  });

  test('all pieces verified but the whole digest differs → DIGEST_MISMATCH, file deleted', async () => {
    const { dir, seeders, downloaders } = await swarm({ seeders: [{}], downloaders: 1 });
    const [seeder] = seeders;
    const [dl] = downloaders;
    assert.ok(seeder && dl);
    const { meta, path } = await makeBlob(3 * PIECE, dir);
    const lying: Metainfo = { ...meta, digest: `sha256:${'1'.repeat(64)}` };
    await seeder.seed(lying, { path }, AbortSignal.timeout(5000));
    await assert.rejects(dl.download(lying, { signal: AbortSignal.timeout(10_000) }), (e) => isLayerswarmError(e, 'DIGEST_MISMATCH'));
    assert.equal(existsSync(dl.pathOf(lying.digest)), false);
  });
});
