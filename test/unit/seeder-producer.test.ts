// The seeder's Producer over a real FsBlobStore and BlobFetcher with an in-process fake origin (a counting
// BlobSource): singleflight per digest, verification, persistence, seeding and publishing; and the Preheater's
// size policy and deduplication.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BlobFetcher } from '../../agent/blobs/blob-fetcher.ts';
import { MetainfoStore } from '../../agent/seeder/metainfo-store.ts';
import { Preheater, type PreheatEvent } from '../../agent/seeder/preheater.ts';
import { Producer } from '../../agent/seeder/producer.ts';
import type { BlobRequest, BlobSource, BlobStreamResult } from '../../agent/source/blob-source.ts';
import { FsBlobStore } from '../../agent/store/fs-store.ts';
import { LayerswarmError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logging.ts';
import { computeMetainfo, DEFAULT_PIECE_POLICY, type Metainfo } from '../../shared/swarm/metainfo.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const registry = { host: 'origin.test:5000', baseUrl: 'http://origin.test:5000', dockerHub: false };
const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A fake origin: serves `blobs` slowly (so concurrent callers overlap), counts opens per digest. */
class FakeOrigin implements BlobSource {
  readonly name = 'origin';
  readonly opens = new Map<string, number>();
  readonly #blobs: Map<string, Buffer>;
  constructor(blobs: Map<string, Buffer>) {
    this.#blobs = blobs;
  }
  async open(req: BlobRequest, offset: number): Promise<BlobStreamResult> {
    this.opens.set(req.digest.value, (this.opens.get(req.digest.value) ?? 0) + 1);
    const data = this.#blobs.get(req.digest.value);
    if (!data) throw new LayerswarmError('BLOB_UNKNOWN', 'no such blob');
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let i = offset; i < data!.length; i += 1 << 20) {
        await delay(5);
        yield data!.subarray(i, i + (1 << 20));
      }
    }
    return { size: data.length, body: body() };
  }
}

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await removeTempDir(d);
});

async function setup(blobs: Map<string, Buffer>) {
  const dir = await makeTempDir('seeder-producer');
  dirs.push(dir);
  const lifetime = new AbortController();
  const store = new FsBlobStore({ dir, capBytes: 1 << 30 });
  await store.init();
  const metainfo = new MetainfoStore({ dataDir: dir, logger: silentLogger() });
  await metainfo.load(lifetime.signal);
  const origin = new FakeOrigin(blobs);
  const fetcher = new BlobFetcher({ store, source: origin, logger: silentLogger(), attempts: 2, lifetime: lifetime.signal });
  const seeded: Array<{ meta: Metainfo; path: string }> = [];
  const published: Metainfo[] = [];
  const results: string[] = [];
  const producer = new Producer({
    store, fetcher, metainfo, policy: DEFAULT_PIECE_POLICY, logger: silentLogger(), lifetime: lifetime.signal, productionTimeoutMs: 30_000,
    seeding: { seed: async (meta, path) => void seeded.push({ meta, path }) },
    resolveRegistry: (host) => {
      if (host !== undefined && host !== registry.host) throw new LayerswarmError('REGISTRY_NOT_ALLOWED', `registry ${host} is not configured`);
      return registry;
    },
    blobPath: (d) => join(dir, 'blobs', 'sha256', d.hex),
    publish: async (meta) => void published.push(meta),
    onResult: (r) => void results.push(r),
  });
  return { dir, store, metainfo, origin, producer, seeded, published, results, lifetime };
}

describe('Producer', () => {
  const big = randomBytes(6 * 2 ** 20 + 123);
  const bigDigest = digestOf(big);

  test('10 concurrent requests → one origin fetch, one seed, one publish, the right metainfo', async () => {
    const s = await setup(new Map([[bigDigest, big]]));
    const metas = await Promise.all(Array.from({ length: 10 }, () => s.producer.produce({ digest: bigDigest, repository: 'test/app' }, AbortSignal.timeout(20_000))));
    const expected = await computeMetainfo(bigDigest, [big], big.length);
    for (const m of metas) assert.deepEqual(m, expected);
    assert.equal(expected.pieceHashes.length, 7);
    assert.equal(s.origin.opens.get(bigDigest), 1);
    assert.equal(s.seeded.length, 1);
    assert.equal(s.seeded[0]?.path, join(s.dir, 'blobs', 'sha256', bigDigest.slice(7)));
    assert.deepEqual(await readFile(s.seeded[0]?.path ?? ''), big, 'the seeded path holds the verified blob');
    assert.deepEqual(s.published, [expected]);
    assert.deepEqual(s.results.sort(), ['joined', 'joined', 'joined', 'joined', 'joined', 'joined', 'joined', 'joined', 'joined', 'produced']);

    // Known and stored: answered at once, no new fetch.
    assert.deepEqual(await s.producer.produce({ digest: bigDigest, repository: 'test/app', registry: registry.host }, AbortSignal.timeout(5000)), expected);
    assert.equal(s.origin.opens.get(bigDigest), 1);
    assert.equal(s.results.at(-1), 'hit');

    // Persisted: a new store reads it back.
    const reloaded = new MetainfoStore({ dataDir: s.dir, logger: silentLogger() });
    assert.equal(await reloaded.load(AbortSignal.timeout(5000)), 1);
    assert.deepEqual(reloaded.get(bigDigest)?.metainfo, expected);
    assert.equal(reloaded.get(bigDigest)?.repository, 'test/app');
    s.lifetime.abort();
    await s.store.close();
  });

  test('bytes that do not match the digest: DIGEST_MISMATCH, nothing stored, nothing published', async () => {
    const lie = `sha256:${'a'.repeat(64)}`;
    const s = await setup(new Map([[lie, randomBytes(1000)]]));
    await assert.rejects(s.producer.produce({ digest: lie, repository: 'test/app' }, AbortSignal.timeout(5000)), (e: LayerswarmError) => e.code === 'DIGEST_MISMATCH');
    assert.equal(s.metainfo.count, 0);
    assert.equal(s.published.length, 0);
    assert.equal(s.seeded.length, 0);
    s.lifetime.abort();
    await s.store.close();
  });

  test('bad requests are refused before any fetch', async () => {
    const s = await setup(new Map());
    const ask = (digest: string, repository: string, reg?: string) => s.producer.produce({ digest, repository, registry: reg }, AbortSignal.timeout(5000));
    await assert.rejects(ask('sha256:nothex', 'test/app'), (e: LayerswarmError) => e.code === 'DIGEST_INVALID');
    await assert.rejects(ask(bigDigest, 'Bad/Name'), (e: LayerswarmError) => e.code === 'NAME_INVALID');
    await assert.rejects(ask(bigDigest, 'test/app', 'evil.example'), (e: LayerswarmError) => e.code === 'REGISTRY_NOT_ALLOWED');
    await assert.rejects(ask(bigDigest, 'test/app'), (e: LayerswarmError) => e.code === 'BLOB_UNKNOWN');
    assert.equal(s.origin.opens.size, 1);
    s.lifetime.abort();
    await s.store.close();
  });

  test('a caller that gives up only stops waiting', async () => {
    const s = await setup(new Map([[bigDigest, big]]));
    const impatient = new AbortController();
    const first = s.producer.produce({ digest: bigDigest, repository: 'test/app' }, impatient.signal);
    impatient.abort();
    await assert.rejects(first, (e: LayerswarmError) => e.code === 'ABORTED');
    const meta = await s.producer.produce({ digest: bigDigest, repository: 'test/app' }, AbortSignal.timeout(20_000));
    assert.equal(meta.digest, bigDigest);
    assert.equal(s.origin.opens.get(bigDigest), 1);
    s.lifetime.abort();
    await s.store.close();
  });
});

describe('Preheater', () => {
  test('skips small blobs, dedupes, produces large ones once', async () => {
    const big = randomBytes(5 * 2 ** 20);
    const small = randomBytes(1000);
    const s = await setup(new Map([[digestOf(big), big], [digestOf(small), small]]));
    const events: PreheatEvent[] = [];
    const pre = new Preheater({
      producer: s.producer, policy: DEFAULT_PIECE_POLICY, concurrency: 2, maxQueued: 10, jobTimeoutMs: 20_000, logger: silentLogger(),
      lifetime: s.lifetime.signal, onEvent: (e) => void events.push(e),
      fetchManifest: async () => Buffer.from('{}'),
    });
    const job = (b: Buffer) => ({ kind: 'blob' as const, digest: digestOf(b), repository: 'test/app', mediaType: 'application/octet-stream', size: b.length });
    assert.equal(pre.enqueue(job(big)), true);
    assert.equal(pre.enqueue(job(big)), false, 'deduplicated while queued');
    assert.equal(pre.enqueue(job(small)), true);
    await pre.whenIdle();
    assert.deepEqual(events.filter((e) => e !== 'queued').sort(), ['produced', 'small']);
    assert.equal(s.origin.opens.get(digestOf(big)), 1);
    assert.equal(s.origin.opens.get(digestOf(small)), undefined, 'small blobs are not fetched');
    pre.enqueue(job(big));
    await pre.whenIdle();
    assert.equal(events.at(-1), 'known');
    s.lifetime.abort();
    await s.store.close();
  });
});
