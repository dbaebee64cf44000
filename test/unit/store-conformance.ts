/**
 * The BlobStore conformance suite: every implementation of agent/store/blob-store.ts passes it.
 *
 * `make` builds a fresh, initialized store with the cap and clock a test asks for. It may also return `files()`
 * (what is on disk) so the suite can check that failures leave no temp files and deletes free the blob file.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable, type Readable } from 'node:stream';
import { sha256Digest, type Digest } from '../../shared/digest.ts';
import { isLayerswarmError, type ErrorCode } from '../../shared/errors.ts';
import type { BlobStore, BlobWriter } from '../../agent/store/blob-store.ts';

export interface StoreFixture {
  store: BlobStore;
  cleanup(): Promise<void>;
  /** Optional: names of committed blob files and of temp files currently on disk. */
  files?(): Promise<{ blobs: string[]; temps: string[] }>;
}

export interface StoreFixtureOptions {
  readonly capBytes: number;
  readonly now: () => number;
}

export type StoreFactory = (options: StoreFixtureOptions) => Promise<StoreFixture>;

const BIG_CAP = 64 * 1024 * 1024;

/** Deterministic pseudo-random bytes. */
export function bytes(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export async function* chunked(data: Uint8Array, size = 4096): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, Math.min(data.length, at + size));
}

/** Read a stream to its end and wait until it has closed (so its pin is released). */
export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  if (!stream.closed) await new Promise((resolve) => stream.once('close', resolve));
  return Buffer.concat(parts);
}

export async function put(store: BlobStore, data: Buffer, options: { expectedSize?: number; digest?: Digest } = {}) {
  const w = await store.createWriter(options.digest ?? sha256Digest(data), { expectedSize: options.expectedSize });
  await w.append(chunked(data));
  return w.commit();
}

export async function rejectsWith(p: Promise<unknown> | (() => Promise<unknown>), code: ErrorCode, ...mentions: string[]) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isLayerswarmError(err, code), `expected ${code}, got ${String(err)}`);
    for (const m of mentions) assert.ok(err.message.includes(m), `message ${JSON.stringify(err.message)} should mention ${m}`);
    return true;
  });
}

export function storeConformance(name: string, make: StoreFactory): void {
  void describe(`BlobStore conformance: ${name}`, () => {
    let clock = Date.UTC(2024, 0, 1);
    const now = () => (clock += 1000);

    async function withStore(capBytes: number, fn: (s: BlobStore, fx: StoreFixture) => Promise<void>): Promise<void> {
      const fx = await make({ capBytes, now });
      try {
        await fn(fx.store, fx);
      } finally {
        await fx.cleanup();
      }
    }

    async function noTemps(fx: StoreFixture): Promise<void> {
      if (fx.files) assert.deepEqual((await fx.files()).temps, [], 'no temp files left behind');
    }

    void test('write, commit, stat and open round-trip the exact bytes', () =>
      withStore(BIG_CAP, async (s, fx) => {
        const data = bytes(300_000, 2);
        const d = sha256Digest(data);
        assert.equal(await s.stat(d), undefined);
        assert.equal(await s.open(d), undefined);
        const info = await put(s, data, { expectedSize: data.length });
        assert.deepEqual({ digest: info.digest.value, size: info.size }, { digest: d.value, size: data.length });
        assert.equal((await s.stat(d))?.size, data.length);
        const r = await s.open(d);
        assert.ok(r);
        assert.equal(r.size, data.length);
        assert.ok((await readAll(r.stream)).equals(data));
        assert.deepEqual(s.usage(), { bytes: data.length, count: 1, capBytes: BIG_CAP });
        await noTemps(fx);
        if (fx.files) assert.deepEqual((await fx.files()).blobs, [d.hex]);
      }));

    void test('an empty blob round-trips', () =>
      withStore(BIG_CAP, async (s) => {
        const d = sha256Digest(Buffer.alloc(0));
        await put(s, Buffer.alloc(0), { expectedSize: 0 });
        const r = await s.open(d);
        assert.equal(r?.size, 0);
        assert.equal((await readAll(r!.stream)).length, 0);
      }));

    void test('range reads return exactly the inclusive range', () =>
      withStore(BIG_CAP, async (s) => {
        const data = bytes(10_000, 3);
        const d = sha256Digest(data);
        await put(s, data);
        for (const [start, end] of [[0, 0], [9_999, 9_999], [1_234, 5_678], [0, 9_999], [4_096, 8_191]] as const) {
          const r = await s.open(d, { start, end });
          assert.equal(r?.size, end - start + 1);
          assert.ok((await readAll(r!.stream)).equals(data.subarray(start, end + 1)), `range ${start}-${end}`);
        }
      }));

    void test('a digest mismatch is refused and leaves nothing visible', () =>
      withStore(BIG_CAP, async (s, fx) => {
        const data = bytes(50_000, 4);
        const claimed = sha256Digest(bytes(50_000, 5));
        const w = await s.createWriter(claimed, { expectedSize: data.length });
        await w.append(chunked(data));
        await rejectsWith(w.commit(), 'DIGEST_MISMATCH', claimed.value, sha256Digest(data).value);
        assert.equal(await s.stat(claimed), undefined);
        assert.equal(await s.open(claimed), undefined);
        assert.deepEqual(s.usage(), { bytes: 0, count: 0, capBytes: BIG_CAP });
        await noTemps(fx);
        await w.abort(); // still safe
        await rejectsWith(w.append(chunked(data)), 'INTERNAL');
      }));

    void test('a size mismatch (short or long) is refused with both sizes in the message', () =>
      withStore(BIG_CAP, async (s, fx) => {
        const data = bytes(20_000, 6);
        const d = sha256Digest(data);
        for (const expectedSize of [data.length + 1, data.length - 1]) {
          const w = await s.createWriter(d, { expectedSize });
          await w.append(chunked(data));
          await rejectsWith(w.commit(), 'SIZE_MISMATCH', String(expectedSize), String(data.length));
          assert.equal(await s.stat(d), undefined);
        }
        assert.equal(s.usage().count, 0);
        await noTemps(fx);
      }));

    void test('a blob is invisible until commit', () =>
      withStore(BIG_CAP, async (s) => {
        const data = bytes(40_000, 7);
        const d = sha256Digest(data);
        const w = await s.createWriter(d);
        await w.append(chunked(data.subarray(0, 30_000)));
        assert.equal(await s.stat(d), undefined);
        assert.equal(await s.open(d), undefined);
        assert.equal(s.usage().count, 0);
        await w.append(chunked(data.subarray(30_000)));
        assert.equal(await s.stat(d), undefined);
        await w.commit();
        assert.equal((await s.stat(d))?.size, data.length);
      }));

    void test('append resumes from bytesWritten after the source fails', () =>
      withStore(BIG_CAP, async (s) => {
        const data = bytes(100_000, 8);
        const d = sha256Digest(data);
        const w = await s.createWriter(d, { expectedSize: data.length });
        async function* failing() {
          yield data.subarray(0, 30_000);
          yield data.subarray(30_000, 45_000);
          throw new Error('connection reset');
        }
        await assert.rejects(w.append(failing()), /connection reset/);
        assert.equal(w.bytesWritten, 45_000);
        assert.equal(await w.append(chunked(data.subarray(w.bytesWritten), 7_000)), data.length);
        await w.commit();
        assert.ok((await readAll((await s.open(d))!.stream)).equals(data));
      }));

    void test('abort discards the data and the reservation; abort after commit is a no-op', () =>
      withStore(100_000, async (s, fx) => {
        const data = bytes(80_000, 9);
        const d = sha256Digest(data);
        const w = await s.createWriter(d, { expectedSize: data.length });
        await w.append(chunked(data.subarray(0, 50_000)));
        await w.abort();
        await w.abort();
        assert.equal(await s.stat(d), undefined);
        await noTemps(fx);
        await rejectsWith(w.commit(), 'INTERNAL');
        // The 80 kB reservation is gone: the whole cap is available again.
        const full = bytes(100_000, 10);
        const w2 = await s.createWriter(sha256Digest(full), { expectedSize: full.length });
        await w2.append(chunked(full));
        const info = await w2.commit();
        await w2.abort();
        assert.equal((await s.stat(info.digest))?.size, full.length);
      }));

    void test('the same blob committed concurrently: both succeed, one copy remains', () =>
      withStore(BIG_CAP, async (s, fx) => {
        const data = bytes(200_000, 11);
        const d = sha256Digest(data);
        const writers: BlobWriter[] = await Promise.all([1, 2, 3].map(() => s.createWriter(d, { expectedSize: data.length })));
        await Promise.all(writers.map((w) => w.append(chunked(data, 16_384))));
        const infos = await Promise.all(writers.map((w) => w.commit()));
        for (const i of infos) assert.equal(i.size, data.length);
        assert.deepEqual(s.usage(), { bytes: data.length, count: 1, capBytes: BIG_CAP });
        assert.ok((await readAll((await s.open(d))!.stream)).equals(data));
        await noTemps(fx);
        if (fx.files) assert.deepEqual((await fx.files()).blobs, [d.hex]);
      }));

    void test('over the cap, least recently used blobs are evicted first (open counts as a use)', () =>
      withStore(100, async (s) => {
        const [a, b, c, d, e] = [1, 2, 3, 4, 5].map((i) => bytes(30, 20 + i)) as [Buffer, Buffer, Buffer, Buffer, Buffer];
        for (const x of [a, b, c]) await put(s, x);
        await readAll((await s.open(sha256Digest(a)))!.stream); // a becomes most recently used
        await put(s, d, { expectedSize: 30 }); // 120 > 100: evicts b
        assert.equal(await s.stat(sha256Digest(b)), undefined);
        for (const x of [a, c, d]) assert.ok(await s.stat(sha256Digest(x)));
        await put(s, e); // unknown size: evicts c while appending
        assert.equal(await s.stat(sha256Digest(c)), undefined);
        for (const x of [a, d, e]) assert.ok(await s.stat(sha256Digest(x)));
        assert.deepEqual(s.usage(), { bytes: 90, count: 3, capBytes: 100 });
      }));

    void test('a pinned blob is never evicted, and its reader still gets every byte', () =>
      withStore(100, async (s) => {
        const [a, b, c, d] = [1, 2, 3, 4].map((i) => bytes(30, 30 + i)) as [Buffer, Buffer, Buffer, Buffer];
        await put(s, a);
        const reader = await s.open(sha256Digest(a)); // pinned, not read yet
        assert.ok(reader);
        await put(s, b);
        await put(s, c); // a is now the least recently used, but pinned
        await put(s, d); // 120 > 100: b goes, not a
        assert.ok(await s.stat(sha256Digest(a)));
        assert.equal(await s.stat(sha256Digest(b)), undefined);
        // Nothing else can make room for 80 bytes while a is pinned: refused, nothing evicted.
        const big = bytes(80, 39);
        await rejectsWith(put(s, big, { expectedSize: 80 }), 'STORE_FULL');
        await rejectsWith(put(s, big), 'STORE_FULL');
        for (const x of [a, c, d]) assert.ok(await s.stat(sha256Digest(x)));
        assert.ok((await readAll(reader.stream)).equals(a));
        await put(s, big); // unpinned now: a, c and d make room
        assert.deepEqual(s.usage(), { bytes: 80, count: 1, capBytes: 100 });
      }));

    void test('delete of a pinned blob is deferred until its last reader closes', () =>
      withStore(BIG_CAP, async (s, fx) => {
        const data = bytes(3_000_000, 40);
        const d = sha256Digest(data);
        await put(s, data);
        const r1 = await s.open(d);
        const r2 = await s.open(d, { start: 10, end: 2_999_999 });
        assert.ok(r1 && r2);
        assert.equal(await s.delete(d), true);
        assert.equal(await s.stat(d), undefined);
        assert.equal(await s.open(d), undefined);
        assert.equal(await s.delete(d), false);
        assert.equal(s.usage().count, 1, 'still stored while pinned');
        assert.ok((await readAll(r1.stream)).equals(data));
        assert.equal(s.usage().count, 1, 'the second reader still pins it');
        r2.stream.destroy(); // closing in any way releases the pin
        await new Promise((resolve) => r2.stream.once('close', resolve));
        assert.deepEqual(s.usage(), { bytes: 0, count: 0, capBytes: BIG_CAP });
        if (fx.files) {
          await s.close(); // let background unlinks finish
          assert.deepEqual((await fx.files()).blobs, []);
        }
      }));

    void test('sendTo writes the exact bytes (whole and ranges) to a destination and releases the pin', () =>
      withStore(BIG_CAP, async (s) => {
        const data = bytes(2_500_000, 42); // more than two 1 MiB send buffers
        const d = sha256Digest(data);
        await put(s, data);
        for (const range of [undefined, { start: 0, end: 0 }, { start: 1_048_570, end: 2_100_000 }, { start: 2_499_999, end: 2_499_999 }]) {
          const r = await s.open(d, range);
          assert.ok(r);
          const got: Buffer[] = [];
          let progress = 0;
          const sink = new Writable({ write(chunk: Buffer, _e, done) { got.push(Buffer.from(chunk)); setImmediate(done); } });
          const sent = await r.sendTo(sink, (n) => (progress += n));
          const expected = range ? data.subarray(range.start, range.end + 1) : data;
          assert.equal(sent, expected.length);
          assert.equal(progress, expected.length);
          assert.ok(Buffer.concat(got).equals(expected), `range ${JSON.stringify(range)}`);
        }
        assert.equal(await s.delete(d), true);
        assert.equal(s.usage().count, 0, 'no reader left pinning it');
      }));

    void test('sendTo to a destination that fails rejects and still releases the pin', () =>
      withStore(BIG_CAP, async (s) => {
        const data = bytes(3_000_000, 43);
        const d = sha256Digest(data);
        await put(s, data);
        const r = await s.open(d);
        assert.ok(r);
        let writes = 0;
        const failing = new Writable({ write(_chunk, _e, done) { done(++writes === 2 ? new Error('client went away') : null); } });
        failing.on('error', () => undefined);
        await assert.rejects(r.sendTo(failing));
        assert.equal(await s.delete(d), true);
        assert.equal(s.usage().count, 0);
      }));

    void test('delete of an unpinned blob is immediate; an absent one returns false', () =>
      withStore(BIG_CAP, async (s) => {
        const data = bytes(1_000, 41);
        const d = sha256Digest(data);
        assert.equal(await s.delete(d), false);
        await put(s, data);
        assert.equal(await s.delete(d), true);
        assert.equal(await s.stat(d), undefined);
        assert.equal(s.usage().bytes, 0);
        await put(s, data); // and it can come back
        assert.ok((await readAll((await s.open(d))!.stream)).equals(data));
      }));

    void test('a blob larger than the cap is refused with STORE_FULL', () =>
      withStore(1_000, async (s, fx) => {
        const data = bytes(1_001, 50);
        const d = sha256Digest(data);
        await rejectsWith(s.createWriter(d, { expectedSize: data.length }), 'STORE_FULL', '1001', '1000');
        const w = await s.createWriter(d);
        await rejectsWith(w.append(chunked(data, 100)), 'STORE_FULL');
        await rejectsWith(w.commit(), 'INTERNAL');
        assert.equal(await s.stat(d), undefined);
        assert.equal(s.usage().bytes, 0);
        await noTemps(fx);
        await put(s, bytes(1_000, 51), { expectedSize: 1_000 }); // exactly the cap fits
      }));

    void test('writers in progress reserve space, so concurrent writers cannot overshoot the cap', () =>
      withStore(100, async (s) => {
        const [a, b] = [bytes(60, 60), bytes(60, 61)];
        const wa = await s.createWriter(sha256Digest(a), { expectedSize: 60 });
        await rejectsWith(s.createWriter(sha256Digest(b), { expectedSize: 60 }), 'STORE_FULL');
        const wb = await s.createWriter(sha256Digest(b));
        await rejectsWith(wb.append(chunked(b)), 'STORE_FULL');
        await wa.append(chunked(a));
        await wa.commit();
        await put(s, b, { expectedSize: 60 }); // a is committed and unpinned now: evicted
        assert.deepEqual(s.usage(), { bytes: 60, count: 1, capBytes: 100 });
      }));

    void test('an abort signal rejects with ABORTED, also while the source is stalled', () =>
      withStore(BIG_CAP, async (s, fx) => {
        const data = bytes(10_000, 70);
        const d = sha256Digest(data);
        const w = await s.createWriter(d);
        await rejectsWith(w.append(chunked(data), AbortSignal.abort()), 'ABORTED');
        const ac = new AbortController();
        async function* stalled() {
          yield data.subarray(0, 1_000);
          await new Promise(() => undefined); // never settles
        }
        setTimeout(() => ac.abort(new Error('client went away')), 20);
        await rejectsWith(w.append(stalled(), ac.signal), 'ABORTED');
        assert.equal(w.bytesWritten, 1_000);
        await rejectsWith(w.commit(AbortSignal.abort()), 'ABORTED');
        assert.equal(await s.stat(d), undefined);
        // An aborted call leaves the writer usable: resume and commit.
        await w.append(chunked(data.subarray(w.bytesWritten)));
        await w.commit();
        assert.ok(await s.stat(d));
        const w2 = await s.createWriter(sha256Digest(bytes(5, 71)));
        const ac2 = new AbortController();
        setTimeout(() => ac2.abort(), 10); // (AbortSignal.timeout's timer would not keep this test's event loop alive)
        await rejectsWith(w2.append(stalled(), ac2.signal), 'ABORTED');
        await w2.abort();
        await noTemps(fx);
      }));

    void test('abort() while an append is in flight stops it with ABORTED and frees everything', () =>
      withStore(1_000_000, async (s, fx) => {
        const data = bytes(600_000, 75);
        const w = await s.createWriter(sha256Digest(data));
        let release: () => void = () => undefined;
        const gate = new Promise<void>((resolve) => (release = resolve));
        async function* slow() {
          yield data.subarray(0, 300_000);
          await gate;
          yield data.subarray(300_000);
        }
        const appending = w.append(slow());
        while (w.bytesWritten === 0) await new Promise((resolve) => setImmediate(resolve));
        await w.abort();
        release();
        await rejectsWith(appending, 'ABORTED');
        await noTemps(fx);
        // The reservation of the first 300 kB is gone with it: a blob of the whole cap fits.
        await put(s, bytes(1_000_000, 76), { expectedSize: 1_000_000 });
      }));

    void test('init is idempotent and close aborts writers in progress', () =>
      withStore(BIG_CAP, async (s, fx) => {
        const data = bytes(5_000, 80);
        await put(s, data);
        await s.init();
        assert.equal(s.usage().count, 1);
        const w = await s.createWriter(sha256Digest(bytes(5_000, 81)));
        await w.append(chunked(bytes(2_000, 82)));
        await s.close();
        await noTemps(fx);
        await rejectsWith(w.commit(), 'INTERNAL');
      }));
  });
}
