/**
 * Blob stores: the conformance suite for both implementations, then what only the disk store has to prove
 * (restarts, crash leftovers, a real full disk, unwritable directories, streaming without buffering).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Digest, sha256Hasher, type Digest } from '../../shared/digest.ts';
import type { StoreUsage } from '../../agent/store/blob-store.ts';
import { FsBlobStore } from '../../agent/store/fs-store.ts';
import { LruIndex } from '../../agent/store/lru.ts';
import { MemoryBlobStore } from '../../agent/store/memory-store.ts';
import { bytes, chunked, put, readAll, rejectsWith, storeConformance } from './store-conformance.ts';

const isRoot = process.getuid?.() === 0;

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'layerswarm-store-'));
}

async function listFiles(dir: string): Promise<{ blobs: string[]; temps: string[] }> {
  const ls = async (d: string) => (await readdir(d).catch(() => [] as string[])).sort();
  return { blobs: await ls(join(dir, 'blobs', 'sha256')), temps: await ls(join(dir, 'tmp')) };
}

/** Run `fn` with a tmpfs mounted on a fresh directory; undefined (and no call) when mounting is impossible. */
async function withTmpfs<T>(options: string, fn: (dir: string) => Promise<T>): Promise<{ result: T } | { skipped: string }> {
  if (!isRoot) return { skipped: 'needs root to mount a tmpfs' };
  const dir = await tempDir();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    return { skipped: `cannot mount a tmpfs here: ${(err as Error).message.split('\n')[0]}` };
  }
  try {
    return { result: await fn(dir) };
  } finally {
    execFileSync('umount', [dir], { stdio: 'pipe' });
    await rm(dir, { recursive: true, force: true });
  }
}

storeConformance('MemoryBlobStore', async ({ capBytes, now }) => {
  const store = new MemoryBlobStore({ capBytes, now });
  await store.init();
  return { store, cleanup: () => store.close() };
});

storeConformance('FsBlobStore', async ({ capBytes, now }) => {
  const dir = await tempDir();
  const store = new FsBlobStore({ dir, capBytes, now });
  await store.init();
  return {
    store,
    files: () => listFiles(dir),
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('LruIndex', () => {
  const clock = () => {
    let t = 0;
    return () => (t += 5);
  };

  void test('orders by use, skips pinned entries, and evicts all or nothing', () => {
    const lru = new LruIndex({ capBytes: 100, now: clock() });
    lru.add('a', 40);
    lru.add('b', 30);
    lru.add('c', 20);
    assert.equal(lru.touch('a'), 20);
    assert.deepEqual(lru.keys(), ['b', 'c', 'a']);
    assert.equal(lru.pin('b'), true); // a use too: c, a, b
    assert.deepEqual(lru.makeRoom(71), { fits: false, victims: [] }, 'b is pinned: only 60 bytes evictable, 61 needed');
    assert.equal(lru.count, 3);
    assert.deepEqual(lru.makeRoom(10), { fits: true, victims: [] }, '90 + 10 is within the cap');
    const room = lru.makeRoom(70);
    assert.equal(room.fits, true);
    assert.deepEqual(room.victims.map((v) => v.key), ['c', 'a']);
    assert.deepEqual({ bytes: lru.bytes, count: lru.count }, { bytes: 30, count: 1 });
    assert.equal(lru.get('b')?.pins, 1);
  });

  void test('defers deletes of pinned entries until the last unpin', () => {
    const lru = new LruIndex({ capBytes: 100, now: clock() });
    lru.add('a', 10);
    lru.pin('a');
    lru.pin('a');
    assert.equal(lru.delete('a'), 'deferred');
    assert.equal(lru.get('a'), undefined);
    assert.equal(lru.pin('a'), false, 'a deleted entry cannot be pinned again');
    assert.equal(lru.delete('a'), 'absent');
    assert.equal(lru.unpin('a'), false);
    assert.equal(lru.unpin('a'), true, 'the last unpin makes the delete due');
    assert.equal(lru.count, 0);
    lru.add('b', 10);
    lru.pin('b');
    lru.delete('b');
    lru.add('b', 10); // committed again while deferred: the delete is cancelled
    assert.equal(lru.unpin('b'), false);
    assert.equal(lru.get('b')?.size, 10);
    assert.equal(lru.delete('b'), 'removed');
  });

  void test('reservations count against the cap; load() orders by lastUse', () => {
    const lru = new LruIndex({ capBytes: 100, now: clock() });
    lru.load([
      { key: 'new', size: 30, lastUse: 300 },
      { key: 'old', size: 30, lastUse: 100 },
      { key: 'mid', size: 30, lastUse: 200 },
    ]);
    assert.deepEqual(lru.keys(), ['old', 'mid', 'new']);
    assert.deepEqual(lru.tryReserve(101, 101), { fits: false, victims: [] }, 'larger than the cap');
    const r = lru.tryReserve(40, 40);
    assert.deepEqual(r.victims.map((v) => v.key), ['old']);
    assert.equal(lru.reserved, 40);
    assert.deepEqual(lru.tryReserve(70, 70).fits, false, '60 cached + 40 reserved: nothing unpinned is enough');
    lru.release(40);
    assert.equal(lru.reserved, 0);
    assert.throws(() => new LruIndex({ capBytes: 0, now: clock() }), /capBytes/);
  });
});

describe('FsBlobStore on disk', () => {
  let clock = Date.UTC(2024, 5, 1);
  const now = () => (clock += 10_000);

  void test('survives a restart: blobs, sizes and LRU order reload; leftovers in tmp/ are removed', async () => {
    const dir = await tempDir();
    try {
      const changes: StoreUsage[] = [];
      const s1 = new FsBlobStore({ dir, capBytes: 100, now, onChange: (u) => changes.push(u) });
      await s1.init();
      const [a, b, c, d] = [1, 2, 3, 4].map((i) => bytes(30, 100 + i)) as [Buffer, Buffer, Buffer, Buffer];
      for (const x of [a, b, c]) await put(s1, x);
      await readAll((await s1.open(sha256Digest(a)))!.stream); // a: most recently used, persisted as mtime
      assert.deepEqual(changes.at(-1), { bytes: 90, count: 3, capBytes: 100 });
      await s1.close();
      // What a crash leaves behind, plus a stray file that is not a blob.
      await writeFile(join(dir, 'tmp', `${sha256Digest(d).hex}.crashed.part`), d.subarray(0, 10));
      await mkdir(join(dir, 'tmp', 'junk'));
      await writeFile(join(dir, 'blobs', 'sha256', 'README'), 'not a blob');

      const s2 = new FsBlobStore({ dir, capBytes: 100, now });
      await s2.init();
      assert.deepEqual((await listFiles(dir)).temps, []);
      for (const x of [a, b, c]) assert.equal((await s2.stat(sha256Digest(x)))?.size, 30);
      assert.deepEqual(s2.usage(), { bytes: 90, count: 3, capBytes: 100 });
      assert.ok((await readAll((await s2.open(sha256Digest(c)))!.stream)).equals(c));
      await put(s2, d); // evicts b, the least recently used before the restart
      assert.equal(await s2.stat(sha256Digest(b)), undefined);
      for (const x of [a, c, d]) assert.ok(await s2.stat(sha256Digest(x)));
      await s2.close();

      // A smaller cap at restart evicts down to it, least recently used first (a, then c).
      const s3 = new FsBlobStore({ dir, capBytes: 40, now });
      await s3.init();
      assert.deepEqual(s3.usage(), { bytes: 30, count: 1, capBytes: 40 });
      assert.ok(await s3.stat(sha256Digest(d)));
      assert.deepEqual((await listFiles(dir)).blobs, ['README', sha256Digest(d).hex].sort());
      await s3.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  void test('a partial temp file is never served, also not after a crash and restart', async () => {
    const dir = await tempDir();
    try {
      const data = bytes(500_000, 200);
      const d = sha256Digest(data);
      const s1 = new FsBlobStore({ dir, capBytes: 10_000_000, now });
      await s1.init();
      const w = await s1.createWriter(d, { expectedSize: data.length });
      await w.append(chunked(data.subarray(0, 250_000)));
      const { temps } = await listFiles(dir);
      assert.equal(temps.length, 1);
      assert.match(temps[0]!, new RegExp(`^${d.hex}\\..+\\.part$`));
      assert.equal(await s1.stat(d), undefined);
      assert.equal(await s1.open(d), undefined);
      // "Crash": a second instance takes over the directory while the write is still in progress.
      const s2 = new FsBlobStore({ dir, capBytes: 10_000_000, now });
      await s2.init();
      assert.equal(await s2.stat(d), undefined);
      assert.equal(await s2.open(d), undefined);
      assert.deepEqual(await listFiles(dir), { blobs: [], temps: [] });
      // The orphaned writer cannot publish what is no longer there.
      await w.append(chunked(data.subarray(250_000)));
      await rejectsWith(w.commit(), 'STORE_IO', d.value);
      assert.deepEqual(await listFiles(dir), { blobs: [], temps: [] });
      await s1.close();
      await s2.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  void test('a blob file removed behind the store is dropped from the index, not served', async () => {
    const dir = await tempDir();
    try {
      const s = new FsBlobStore({ dir, capBytes: 1_000_000, now });
      await s.init();
      const data = bytes(1_000, 210);
      const d = sha256Digest(data);
      await put(s, data);
      await rm(join(dir, 'blobs', 'sha256', d.hex));
      assert.equal(await s.open(d), undefined);
      assert.equal(await s.stat(d), undefined);
      assert.equal(s.usage().count, 0);
      await s.close();
      await rejectsWith(new FsBlobStore({ dir, capBytes: 1, now }).stat(d), 'INTERNAL', 'init');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  void test('a real full disk (2 MiB tmpfs) is STORE_FULL and leaves nothing partial behind', async (t) => {
    const outcome = await withTmpfs('size=2m', async (dir) => {
      const s = new FsBlobStore({ dir, capBytes: 64 * 1024 * 1024, now });
      await s.init();
      const small = bytes(100_000, 300);
      await put(s, small, { expectedSize: small.length });
      const big = bytes(3 * 1024 * 1024, 301);
      await rejectsWith(put(s, big, { expectedSize: big.length }), 'STORE_FULL', 'ENOSPC');
      await rejectsWith(put(s, big), 'STORE_FULL', 'ENOSPC');
      assert.deepEqual(await listFiles(dir), { blobs: [sha256Digest(small).hex], temps: [] });
      assert.deepEqual(s.usage(), { bytes: small.length, count: 1, capBytes: 64 * 1024 * 1024 });
      assert.equal(s.reservedBytes, 0);
      assert.ok((await readAll((await s.open(sha256Digest(small)))!.stream)).equals(small));
      await put(s, bytes(1_000_000, 302)); // the space of the failed writes was freed
      await s.close();
    });
    if ('skipped' in outcome) t.skip(outcome.skipped);
  });

  void test('an unwritable data directory fails init with a clear STORE_IO', async (t) => {
    const base = await tempDir();
    try {
      const file = join(base, 'a-file');
      await writeFile(file, 'x');
      const under = join(file, 'store');
      await rejectsWith(new FsBlobStore({ dir: under, capBytes: 1_000, now }).init(), 'STORE_IO', under, 'ENOTDIR');
    } finally {
      await rm(base, { recursive: true, force: true });
    }
    const ro = await withTmpfs('ro,size=1m', async (dir) => {
      await rejectsWith(new FsBlobStore({ dir, capBytes: 1_000, now }).init(), 'STORE_IO', dir, 'EROFS');
    });
    if ('skipped' in ro) return t.skip(ro.skipped);
    // An existing store whose directories exist but became read-only: the write probe catches it.
    await withTmpfs('size=1m', async (dir) => {
      const s = new FsBlobStore({ dir, capBytes: 1_000, now });
      await s.init();
      await put(s, bytes(100, 310));
      await s.close();
      execFileSync('mount', ['-o', 'remount,ro', dir], { stdio: 'pipe' });
      await rejectsWith(new FsBlobStore({ dir, capBytes: 1_000, now }).init(), 'STORE_IO', 'not writable', 'EROFS');
    });
  });

  void test('streams a 256 MiB blob in and out without buffering it, with an abort signal (RSS grows < 64 MiB)', { timeout: 180_000 }, async () => {
    const dir = await tempDir();
    const MiB = 1024 * 1024;
    const total = 256 * MiB;
    const chunk = bytes(MiB, 400);
    async function* source() {
      for (let i = 0; i < total / MiB; i++) {
        chunk.writeUInt32LE(i, 0); // one reused buffer: the store must copy or write it before asking for more
        yield chunk;
      }
    }
    try {
      const h = sha256Hasher();
      for await (const c of source()) h.update(c);
      const hex = h.digest('hex');
      const d: Digest = { algorithm: 'sha256', hex, value: `sha256:${hex}` };
      (globalThis as { gc?: () => void }).gc?.();
      const baseline = process.memoryUsage.rss();
      let peak = baseline;
      const sample = () => (peak = Math.max(peak, process.memoryUsage.rss()));
      const s = new FsBlobStore({ dir, capBytes: 1024 * MiB, now });
      await s.init();
      const w = await s.createWriter(d, { expectedSize: total });
      await w.append(
        (async function* () {
          for await (const c of source()) {
            sample();
            yield Buffer.from(c); // a fresh buffer per chunk, as from a socket
          }
        })(),
        new AbortController().signal, // the fetcher always passes one
      );
      await w.commit();
      const r = await s.open(d);
      assert.equal(r?.size, total);
      const check = sha256Hasher();
      let read = 0;
      for await (const c of r!.stream) {
        check.update(c as Buffer);
        read += (c as Buffer).length;
        sample();
      }
      assert.equal(read, total);
      assert.equal(check.digest('hex'), hex);
      const growth = (peak - baseline) / MiB;
      console.log(`# 256 MiB through FsBlobStore: RSS baseline ${(baseline / MiB).toFixed(0)} MiB, peak +${growth.toFixed(1)} MiB`);
      assert.ok(growth < 64, `RSS grew by ${growth.toFixed(1)} MiB`);
      await s.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
