// Node-wide bandwidth limits (agent/bandwidth.ts): the uploadLimit / downloadLimit options (agent and seeder), one
// bucket pair per node, the piece transport wrapped in them, and origin blob bodies charged to the download bucket
// (measured on a virtual clock: every sleep of the bucket advances it, so elapsed virtual time = bytes / rate).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { loadAgentConfig } from '../../agent/config.ts';
import { loadSeederConfig } from '../../agent/seeder/config.ts';
import { BANDWIDTH_BURST_MAX, BANDWIDTH_BURST_MIN, bandwidthBurst, createNodeBandwidth, limitTransport, throttleBody, type BandwidthClock } from '../../agent/bandwidth.ts';
import { OriginBlobSource } from '../../agent/source/origin-source.ts';
import type { BlobRequest } from '../../agent/source/blob-source.ts';
import type { UpstreamClient } from '../../agent/upstream/types.ts';
import { parseDigest } from '../../shared/digest.ts';
import { isLayerswarmError } from '../../shared/errors.ts';
import { LimitedTransport } from '../../shared/wire/limited-transport.ts';
import { MemoryTransport } from '../../shared/wire/memory-transport.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const MiB = 2 ** 20;
const base = ['--origin', 'http://127.0.0.1:5000'];

/** A clock that only moves when the bucket sleeps: elapsed() is the time the limit imposed, with no real waiting. */
function virtualClock(): BandwidthClock & { elapsed(): number } {
  let t = 0;
  return {
    now: () => t,
    sleep: async (ms) => {
      t += ms;
    },
    elapsed: () => t,
  };
}

function chunks(total: number, size: number): Readable {
  let left = total;
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(size, left);
      left -= n;
      this.push(Buffer.alloc(n, 7));
    },
  });
}

async function drain(body: AsyncIterable<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of body) bytes += chunk.byteLength;
  return bytes;
}

describe('bandwidth options', () => {
  test('default 0 = unlimited; flag, env and YAML with units', async () => {
    const plain = loadAgentConfig(base, {});
    assert.ok(plain);
    assert.equal(plain.uploadLimit, 0);
    assert.equal(plain.downloadLimit, 0);
    const bw = createNodeBandwidth(plain);
    assert.equal(bw.upload, undefined);
    assert.equal(bw.download, undefined);

    const flags = loadAgentConfig([...base, '--upload-limit', '50MiB'], { LAYERSWARM_DOWNLOAD_LIMIT: '10M' });
    assert.ok(flags);
    assert.equal(flags.uploadLimit, 50 * MiB);
    assert.equal(flags.downloadLimit, 10_000_000);

    const dir = await makeTempDir('bandwidth-config-');
    try {
      const file = join(dir, 'agent.yaml');
      await writeFile(file, 'uploadLimit: 1GiB\ndownloadLimit: 2048\n');
      const yaml = loadAgentConfig([...base, '--config', file], {});
      assert.ok(yaml);
      assert.equal(yaml.uploadLimit, 2 ** 30);
      assert.equal(yaml.downloadLimit, 2048);
    } finally {
      await removeTempDir(dir);
    }
  });

  test('bad values are CONFIG_INVALID, reported together', () => {
    assert.throws(() => loadAgentConfig([...base, '--upload-limit', 'fast', '--download-limit', '-5'], {}), (err: unknown) => {
      assert.ok(isLayerswarmError(err, 'CONFIG_INVALID'));
      assert.match(err.message, /--upload-limit/);
      assert.match(err.message, /--download-limit/);
      return true;
    });
  });

  test('the seeder has the same options', () => {
    const config = loadSeederConfig(['--origin', 'http://o:5000', '--tracker', 'http://t:8080', '--upload-limit', '100MiB', '--download-limit', '1GiB'], {});
    assert.ok(config);
    assert.equal(config.uploadLimit, 100 * MiB);
    assert.equal(config.downloadLimit, 2 ** 30);
  });
});

describe('node bandwidth', () => {
  test('one bucket pair per node, burst a tenth of a second within [16 KiB, 256 KiB]', () => {
    assert.equal(bandwidthBurst(1000), BANDWIDTH_BURST_MIN);
    assert.equal(bandwidthBurst(1_000_000), 100_000);
    assert.equal(bandwidthBurst(1e9), BANDWIDTH_BURST_MAX);
    const a = createNodeBandwidth({ uploadLimit: 50 * MiB, downloadLimit: 0 });
    const b = createNodeBandwidth({ uploadLimit: 50 * MiB, downloadLimit: 0 });
    assert.ok(a.upload && b.upload);
    assert.notEqual(a.upload, b.upload);
    assert.equal(a.upload.rate, 50 * MiB);
    assert.equal(a.upload.burst, BANDWIDTH_BURST_MAX);
    assert.equal(a.download, undefined);
  });

  test('the piece transport is wrapped in exactly the node buckets (and left alone when unlimited)', () => {
    const inner = new MemoryTransport();
    assert.equal(limitTransport(inner, createNodeBandwidth({ uploadLimit: 0, downloadLimit: 0 })), inner);
    const bw = createNodeBandwidth({ uploadLimit: 8 * MiB, downloadLimit: 4 * MiB });
    const limited = limitTransport(inner, bw);
    assert.ok(limited instanceof LimitedTransport);
    assert.equal(limited.inner, inner);
    assert.equal(limited.limits.upload, bw.upload);
    assert.equal(limited.limits.download, bw.download);
  });
});

describe('origin bodies and the download limit', () => {
  test('throttleBody: 4 MiB at 1 MiB/s takes (4 MiB - burst) / rate of bucket time', async () => {
    const clock = virtualClock();
    const { download } = createNodeBandwidth({ uploadLimit: 0, downloadLimit: MiB }, clock);
    assert.ok(download);
    const bytes = await drain(throttleBody(chunks(4 * MiB, 64 * 1024), download, new AbortController().signal));
    assert.equal(bytes, 4 * MiB);
    const expected = ((4 * MiB - download.burst) * 1000) / MiB;
    assert.ok(clock.elapsed() >= expected - 1, `elapsed ${clock.elapsed()} ms, expected ≥ ${expected}`);
    // Whole-millisecond sleeps round up a little per chunk (64 chunks).
    assert.ok(clock.elapsed() <= expected + 70, `elapsed ${clock.elapsed()} ms, expected ≈ ${expected}`);
  });

  test('OriginBlobSource charges the body to the node download bucket, shared by concurrent fetches', async () => {
    const clock = virtualClock();
    const { download } = createNodeBandwidth({ uploadLimit: 0, downloadLimit: 2 * MiB }, clock);
    let calls = 0;
    const upstream = {
      blob: async () => {
        calls++;
        return { size: 3 * MiB, body: chunks(3 * MiB, 32 * 1024) };
      },
    } as unknown as UpstreamClient;
    const source = new OriginBlobSource(upstream, { download });
    const request = { digest: parseDigest(`sha256:${'a'.repeat(64)}`) } as unknown as BlobRequest;
    const signal = new AbortController().signal;
    const [a, b] = await Promise.all([source.open(request, 0, signal), source.open(request, 0, signal)]);
    const total = (await Promise.all([drain(a.body), drain(b.body)])).reduce((x, y) => x + y, 0);
    assert.equal(calls, 2);
    assert.equal(total, 6 * MiB);
    const expected = ((6 * MiB - (download?.burst ?? 0)) * 1000) / (2 * MiB);
    assert.ok(clock.elapsed() >= expected - 1 && clock.elapsed() <= expected + 200, `elapsed ${clock.elapsed()} ms, expected ≈ ${expected}`);
  });

  test('destroying a throttled body cancels its waiting charge and destroys the origin body', async () => {
    // A clock that never advances: the second chunk waits until the body is destroyed.
    const { download } = createNodeBandwidth({ uploadLimit: 0, downloadLimit: 100_000 }, {
      now: () => 0,
      sleep: (_ms, signal) => new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })),
    });
    assert.ok(download);
    const origin = chunks(10 * download.burst, download.burst);
    const body = throttleBody(origin, download, new AbortController().signal);
    const first = await new Promise<Buffer>((resolve) => body.once('data', resolve));
    assert.equal(first.byteLength, download.burst);
    body.pause();
    body.destroy();
    await new Promise((resolve) => origin.once('close', resolve));
    assert.ok(origin.destroyed);
    assert.equal(download.waiting, 0);
  });

  test('an aborted signal fails the body with ABORTED', async () => {
    const { download } = createNodeBandwidth({ uploadLimit: 0, downloadLimit: 100_000 }, {
      now: () => 0,
      sleep: (_ms, signal) => new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })),
    });
    const ac = new AbortController();
    const body = throttleBody(chunks(MiB, 64 * 1024), download, ac.signal);
    const failed = drain(body);
    setImmediate(() => ac.abort(new Error('client gone')));
    await assert.rejects(failed, (err: unknown) => isLayerswarmError(err, 'ABORTED'));
  });
});
