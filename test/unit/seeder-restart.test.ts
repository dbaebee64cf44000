// startSeeder in process against a tiny fake origin and a real in-process tracker: on-demand production through the
// tracker calls the injected Seeding with the stored blob's path; a restarted seeder seeds what it holds and
// re-publishes its metainfo to a tracker that lost it; the notification token is enforced.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { loadSeederConfig } from '../../agent/seeder/config.ts';
import type { Seeding } from '../../agent/seeder/seeding.ts';
import { startSeeder } from '../../agent/seeder/seeder.ts';
import { silentLogger } from '../../shared/logging.ts';
import type { Metainfo } from '../../shared/swarm/metainfo.ts';
import { TrackerClient } from '../../tracker/client.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { startTracker } from '../../tracker/tracker.ts';
import { waitFor } from '../fixtures/process.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blob = randomBytes(5 * 2 ** 20 + 5);
const digest = digestOf(blob);
const other = randomBytes(5 * 2 ** 20 + 7);

/** GET /v2/test/app/blobs/<digest> → the blob; everything else 404. Counts blob GETs. */
async function fakeOrigin(): Promise<{ url: string; gets: () => number; server: Server }> {
  let gets = 0;
  const blobs = new Map([[digest, blob], [digestOf(other), other]]);
  const server = createServer((req, res) => {
    const served = req.method === 'GET' ? blobs.get(req.url?.replace('/v2/test/app/blobs/', '') ?? '') : undefined;
    if (served) {
      gets++;
      res.writeHead(200, { 'content-length': served.length, 'content-type': 'application/octet-stream' });
      res.end(served);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, gets: () => gets, server };
}

class SpySeeding implements Seeding {
  readonly seeded: Array<{ digest: string; path: string }> = [];
  closed = false;
  async seed(meta: Metainfo, path: string): Promise<void> {
    this.seeded.push({ digest: meta.digest, path });
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await removeTempDir(d);
});

describe('startSeeder', () => {
  test('produces through the tracker, seeds, and re-publishes after a restart', async () => {
    const dataDir = await makeTempDir('seeder-restart');
    dirs.push(dataDir);
    const origin = await fakeOrigin();
    const trackerConfig = { ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' as const };
    const tracker1 = await startTracker(trackerConfig, { logger: silentLogger() });
    const configFor = (trackerUrl: string) => {
      const config = loadSeederConfig([
        '--origin', origin.url, '--tracker', trackerUrl, '--listen', '127.0.0.1:0', '--peer-listen', '127.0.0.1:0',
        '--data-dir', dataDir, '--heartbeat-interval', '200ms', '--notification-token', 's3cret',
      ], {});
      assert.ok(config);
      return config;
    };

    const spy1 = new SpySeeding();
    const seeder1 = await startSeeder(configFor(tracker1.url), { logger: silentLogger(), seeding: () => spy1 });
    assert.match(seeder1.seederId, /^seeder-127\.0\.0\.1-\d+$/);
    assert.equal(seeder1.advertiseUrl, seeder1.url);
    await waitFor(() => tracker1.metainfo.seeders().length === 1, { timeoutMs: 5000, what: 'seeder registration' });

    const client = new TrackerClient({ url: tracker1.url });
    const meta = await client.getMetainfo({ digest, repository: 'test/app' });
    await client.close();
    assert.equal(meta.size, blob.length);
    assert.equal(origin.gets(), 1);
    assert.equal(spy1.seeded.length, 1);
    assert.deepEqual(await readFile(spy1.seeded[0]?.path ?? ''), blob);

    const unauthorized = await seeder1.app.inject({ method: 'POST', url: '/v1/notifications', headers: { 'content-type': 'application/vnd.docker.distribution.events.v1+json' }, payload: '{"events":[]}' });
    assert.equal(unauthorized.statusCode, 401);
    assert.equal((unauthorized.json() as { errors: Array<{ code: string }> }).errors[0]?.code, 'UNAUTHORIZED');
    const authorized = await seeder1.app.inject({
      method: 'POST', url: '/v1/notifications', headers: { 'content-type': 'application/vnd.docker.distribution.events.v1+json', authorization: 'Bearer s3cret' }, payload: '{"events":[]}',
    });
    assert.equal(authorized.statusCode, 200);

    await seeder1.close();
    assert.equal(spy1.closed, true);
    await tracker1.close();

    // A new tracker (knows nothing) and the seeder restarted on the same data dir.
    const tracker2 = await startTracker(trackerConfig, { logger: silentLogger() });
    const spy2 = new SpySeeding();
    const seeder2 = await startSeeder(configFor(tracker2.url), { logger: silentLogger(), seeding: () => spy2 });
    try {
      assert.deepEqual(spy2.seeded.map((s) => s.digest), [digest], 'stored blobs with metainfo are seeded at start');
      const republished = await waitFor(() => tracker2.metainfo.peek(digest), { timeoutMs: 5000, what: 'metainfo re-published' });
      assert.deepEqual(republished, meta);
      const res = await seeder2.app.inject({ method: 'POST', url: '/v1/metainfo', payload: { digest, repository: 'test/app' } });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json(), meta);
      assert.equal(origin.gets(), 1, 'answered from the store, no new fetch');
    } finally {
      await seeder2.close();
      await tracker2.close();
      origin.server.close();
    }
  });

  test('a blob evicted from the store is unseeded at the next heartbeat', async () => {
    const dataDir = await makeTempDir('seeder-evict');
    dirs.push(dataDir);
    const origin = await fakeOrigin();
    const tracker = await startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }, { logger: silentLogger() });
    const config = loadSeederConfig([
      '--origin', origin.url, '--tracker', tracker.url, '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--heartbeat-interval', '100ms', '--store-max-bytes', '8MiB',
    ], {});
    assert.ok(config);
    const unseeded: string[] = [];
    const spy = new SpySeeding();
    const seeder = await startSeeder(config, { logger: silentLogger(), seeding: () => Object.assign(spy, { unseed: async (d: string) => void unseeded.push(d) }) });
    try {
      const ask = (d: string) => seeder.producer.produce({ digest: d, repository: 'test/app' }, AbortSignal.timeout(10_000));
      await ask(digest);
      await ask(digestOf(other));
      assert.deepEqual(spy.seeded.map((x) => x.digest), [digest, digestOf(other)]);
      await waitFor(() => unseeded.includes(digest), { timeoutMs: 5000, what: 'unseed of the evicted blob' });
      assert.deepEqual(unseeded, [digest]);
    } finally {
      await seeder.close();
      await tracker.close();
      origin.server.close();
    }
  });
});
