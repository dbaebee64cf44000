import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { BlobFetcher } from '../../agent/blobs/blob-fetcher.ts';
import { MemoryBlobStore } from '../../agent/store/memory-store.ts';
import type { BlobRequest, BlobSource, BlobStreamResult } from '../../agent/source/blob-source.ts';
import { sha256Digest } from '../../shared/digest.ts';
import { isLayerswarmError, LayerswarmError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logging.ts';

const registry = { host: 'o.example', baseUrl: 'http://o.example', dockerHub: false };

/** A source scripted per call: each call gets (offset) and returns what the script says. */
class ScriptedSource implements BlobSource {
  readonly name = 'fake';
  readonly calls: number[] = [];
  readonly #script: (offset: number, call: number) => Promise<BlobStreamResult> | BlobStreamResult;
  constructor(script: (offset: number, call: number) => Promise<BlobStreamResult> | BlobStreamResult) {
    this.#script = script;
  }
  async open(_req: BlobRequest, offset: number): Promise<BlobStreamResult> {
    this.calls.push(offset);
    return await this.#script(offset, this.calls.length);
  }
}

async function* chunks(data: Buffer, size = 1000, failAfter?: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) {
    if (failAfter !== undefined && i >= failAfter) throw new LayerswarmError('UPSTREAM_UNAVAILABLE', 'connection reset');
    yield data.subarray(i, i + size);
  }
}

function setup(source: BlobSource, attempts = 3): { fetcher: BlobFetcher; store: MemoryBlobStore; lifetime: AbortController } {
  const store = new MemoryBlobStore({ capBytes: 1 << 24 });
  const lifetime = new AbortController();
  return { fetcher: new BlobFetcher({ store, source, logger: silentLogger(), attempts, lifetime: lifetime.signal }), store, lifetime };
}

const data = randomBytes(10_000);
const digest = sha256Digest(data);
const request: BlobRequest = { registry, name: 'app', digest, identity: { kind: 'agent' } };

describe('BlobFetcher', () => {
  test('concurrent requests share one download; later ones hit the cache', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const source = new ScriptedSource(async () => {
      await gate;
      return { size: data.length, body: chunks(data) };
    });
    const { fetcher, store } = setup(source);
    await store.init();
    const waiters = Array.from({ length: 5 }, () => fetcher.ensure(request, new AbortController().signal));
    release();
    const outcomes = await Promise.all(waiters);
    assert.deepEqual(source.calls, [0]);
    assert.ok(outcomes.every((o) => o.source === 'fake' && o.info.size === data.length));
    assert.equal((await fetcher.ensure(request, new AbortController().signal)).source, 'cache');
    assert.deepEqual(source.calls, [0]);
  });

  test('a cut transfer resumes from the bytes already written', async () => {
    const source = new ScriptedSource((offset, call) =>
      call === 1 ? { size: data.length, body: chunks(data, 1000, 4000) } : { size: data.length, body: chunks(data.subarray(offset)) },
    );
    const { fetcher, store } = setup(source);
    await store.init();
    const outcome = await fetcher.ensure(request, new AbortController().signal);
    assert.deepEqual(source.calls, [0, 4000]);
    const reader = await store.open(digest);
    assert.ok(reader);
    assert.ok(Buffer.concat(await reader.stream.toArray()).equals(data));
    assert.equal(outcome.info.size, data.length);
  });

  test('bytes that do not match the digest are refused and nothing is stored', async () => {
    const wrong = Buffer.from(data);
    wrong[5000] = (wrong[5000] ?? 0) ^ 0xff;
    const { fetcher, store } = setup(new ScriptedSource(() => ({ size: wrong.length, body: chunks(wrong) })));
    await store.init();
    await assert.rejects(fetcher.ensure(request, new AbortController().signal), (err) => isLayerswarmError(err, 'DIGEST_MISMATCH') && err.status === 502);
    assert.equal(await store.stat(digest), undefined);
    assert.equal(store.usage().bytes, 0);
  });

  test('errors a retry cannot fix are not retried; retries are bounded', async () => {
    const unknown = new ScriptedSource(() => {
      throw new LayerswarmError('BLOB_UNKNOWN', 'no such blob');
    });
    const a = setup(unknown);
    await assert.rejects(a.fetcher.ensure(request, new AbortController().signal), (err) => isLayerswarmError(err, 'BLOB_UNKNOWN'));
    assert.equal(unknown.calls.length, 1);
    const flaky = new ScriptedSource(() => ({ size: data.length, body: chunks(data, 1000, 0) }));
    const b = setup(flaky, 2);
    await assert.rejects(b.fetcher.ensure(request, new AbortController().signal), (err) => isLayerswarmError(err, 'UPSTREAM_UNAVAILABLE'));
    assert.equal(flaky.calls.length, 2);
    assert.equal(b.fetcher.inflight, 0);
  });

  test('a caller that gives up stops waiting, the download completes for the next one', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const source = new ScriptedSource(async () => {
      await gate;
      return { size: data.length, body: chunks(data) };
    });
    const { fetcher, store } = setup(source);
    await store.init();
    const caller = new AbortController();
    const first = fetcher.ensure(request, caller.signal);
    caller.abort();
    await assert.rejects(first, (err) => isLayerswarmError(err, 'ABORTED'));
    const second = fetcher.ensure(request, new AbortController().signal);
    release();
    assert.equal((await second).info.size, data.length);
    assert.deepEqual(source.calls, [0]);
    assert.ok(await store.stat(digest));
  });
});
