// `layerswarm seeder` as users run it, beside a real origin (distribution 2.8 with push notifications to the seeder)
// and a real in-process tracker. Pushing an image makes the seeder produce metainfo for every large layer and
// publish it to the tracker before any node asks, fetching each layer from the origin once; a blob preheat skipped
// (small) is produced on demand through the tracker's GET /v1/metainfo; bad requests get JSON errors; SIGTERM → 0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../shared/logging.ts';
import { pieceLengthFor, type Metainfo } from '../../shared/swarm/metainfo.ts';
import { TrackerClient } from '../../tracker/client.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { startSeederBesideRegistry, type ClusterProcess } from '../fixtures/cluster.ts';
import { buildImage, pushImage, type BuiltImage } from '../fixtures/images.ts';
import { waitFor } from '../fixtures/process.ts';
import type { Registry } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const cli = fileURLToPath(new URL('../../bin/layerswarm.mjs', import.meta.url));
const MiB = 2 ** 20;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Piece hashes of a blob computed here, independently of the seeder. */
function checkPieces(meta: Metainfo, bytes: Buffer): void {
  assert.equal(meta.size, bytes.length);
  assert.equal(meta.digest, `sha256:${sha256(bytes)}`);
  assert.equal(meta.pieceLength, pieceLengthFor(bytes.length));
  const expected: string[] = [];
  for (let off = 0; off < bytes.length; off += meta.pieceLength) expected.push(sha256(bytes.subarray(off, off + meta.pieceLength)));
  assert.deepEqual(meta.pieceHashes, expected);
}

describe('layerswarm seeder (CLI): preheat from push notifications, metainfo on demand', () => {
  let tracker: RunningTracker;
  let registry: Registry;
  let seeder: ClusterProcess;
  let seederUrl: string;
  let work: string;
  let image: BuiltImage;

  before(async () => {
    work = await makeTempDir('seeder-preheat');
    tracker = await startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }, { logger: silentLogger() });
    ({ seeder, registry } = await startSeederBesideRegistry({ tracker: tracker.url, dataDir: `${work}/seeder`, logLevel: 'warn' }));
    seederUrl = seeder.url;
    image = await buildImage(`${work}/layout`, { tag: '1', seed: 'seeder-preheat', layers: [{ size: 5 * MiB }, { size: 9 * MiB }, { size: 1000 }] });
  });
  after(async () => {
    await seeder?.stop();
    await registry?.stop();
    await tracker?.close();
    if (work) await removeTempDir(work);
  });

  test('--help and bad config', () => {
    const help = spawnSync(process.execPath, [cli, 'seeder', '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--peer-listen HOST:PORT/);
    assert.match(help.stdout, /LAYERSWARM_NOTIFICATION_TOKEN/);
    const missing = spawnSync(process.execPath, [cli, 'seeder', '--origin', 'http://127.0.0.1:1'], { encoding: 'utf8' });
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /--tracker is required/);
    const bad = spawnSync(process.execPath, [cli, 'seeder', '--origin', 'http://127.0.0.1:1', '--tracker', 'http://127.0.0.1:2', '--min-piece-length', '3MiB'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /piece lengths must be powers of two/);
    const top = spawnSync(process.execPath, [cli], { encoding: 'utf8' });
    assert.match(top.stdout, /seeder +run the seeder beside the origin registry/);
  });

  test('a push preheats every large layer: the tracker knows its metainfo before anyone asks', async () => {
    const pushed = await pushImage(image, `${registry.host}/test/app:1`);
    const built = image.manifests[0];
    assert.ok(built);
    const large = built.layers.filter((l) => l.size > 4 * MiB);
    assert.equal(large.length, 2);
    assert.deepEqual(pushed.manifests[0]?.layers.map((l) => l.digest), built.layers.map((l) => l.digest));

    const metas = await waitFor(() => {
      const known = large.map((l) => tracker.metainfo.peek(l.digest));
      return known.every((m) => m !== undefined) ? (known as Metainfo[]) : undefined;
    }, { timeoutMs: 20_000, what: 'metainfo of every large layer at the tracker' });
    for (const [i, layer] of large.entries()) checkPieces(metas[i] as Metainfo, await readFile(layer.path));
    const small = built.layers.find((l) => l.size <= 4 * MiB);
    assert.ok(small);
    assert.equal(tracker.metainfo.peek(small.digest), undefined, 'small blobs are not preheated');
    assert.equal(tracker.metainfo.peek(built.config.digest), undefined, 'nor is the config');

    // The seeder fetched each large layer exactly once (blob and manifest push events both name it), nothing else.
    const seederRequests = (await registry.settledRequests()).filter((r) => r.userAgent.startsWith('layerswarm-seeder'));
    for (const layer of large) assert.equal(seederRequests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${layer.digest}`)).length, 1, layer.digest);
    assert.equal(seederRequests.filter((r) => r.path.includes('/blobs/')).length, 2, JSON.stringify(seederRequests));

    const blobs = (await (await fetch(`${seederUrl}/v1/blobs`)).json()) as { blobs: Array<{ digest: string; stored: boolean; repository: string }> };
    assert.deepEqual(blobs.blobs.map((b) => b.digest).sort(), large.map((l) => l.digest).sort());
    assert.ok(blobs.blobs.every((b) => b.stored && b.repository === 'test/app'));
    const metrics = await (await fetch(`${seederUrl}/metrics`)).text();
    assert.match(metrics, /layerswarm_seeder_preheats_total\{result="produced"\} 2/);
    assert.match(metrics, /layerswarm_seeder_preheats_total\{result="small"\} [1-9]/);
    assert.match(metrics, /layerswarm_seeder_origin_bytes_total \d+/);
    assert.match(metrics, /layerswarm_seeder_productions_total\{result="produced"\} 2/);
  });

  test('a blob not preheated is produced on demand through the tracker, once', async () => {
    const built = image.manifests[0];
    const small = built?.layers.find((l) => l.size <= 4 * MiB);
    assert.ok(built && small);
    const client = new TrackerClient({ url: tracker.url });
    try {
      const metas = await Promise.all([small.digest, small.digest, built.config.digest].map((digest) => client.getMetainfo({ digest, repository: 'test/app' })));
      checkPieces(metas[0] as Metainfo, await readFile(small.path));
      assert.deepEqual(metas[1], metas[0]);
      checkPieces(metas[2] as Metainfo, await readFile(built.config.path));
      assert.deepEqual(await client.getMetainfo({ digest: small.digest, repository: 'test/app' }), metas[0]);
    } finally {
      await client.close();
    }
    const seederRequests = (await registry.settledRequests()).filter((r) => r.userAgent.startsWith('layerswarm-seeder'));
    assert.equal(seederRequests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${small.digest}`)).length, 1);
  });

  test('bad requests get JSON errors with codes', async () => {
    const post = async (path: string, body: unknown, type = 'application/json') => {
      const res = await fetch(`${seederUrl}${path}`, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) });
      return { status: res.status, code: ((await res.json()) as { errors?: Array<{ code: string }> }).errors?.[0]?.code };
    };
    const unknown = `sha256:${'0'.repeat(64)}`;
    assert.deepEqual(await post('/v1/metainfo', { digest: unknown, repository: 'test/app' }), { status: 404, code: 'BLOB_UNKNOWN' });
    assert.deepEqual(await post('/v1/metainfo', { digest: 'sha256:zz', repository: 'test/app' }), { status: 400, code: 'DIGEST_INVALID' });
    assert.deepEqual(await post('/v1/metainfo', { digest: unknown }), { status: 400, code: 'REQUEST_INVALID' });
    assert.deepEqual(await post('/v1/metainfo', { digest: unknown, repository: 'test/app', registry: 'elsewhere.example' }), { status: 404, code: 'REGISTRY_NOT_ALLOWED' });
    const events = 'application/vnd.docker.distribution.events.v1+json';
    assert.deepEqual(await post('/v1/notifications', '{"events": 1}', events), { status: 400, code: 'REQUEST_INVALID' });
    assert.deepEqual(await post('/v1/notifications', 'not json', events), { status: 400, code: 'REQUEST_INVALID' });
    const pull = { events: [{ action: 'pull', target: { mediaType: 'application/octet-stream', digest: unknown, repository: 'test/app' } }] };
    const ok = await fetch(`${seederUrl}/v1/notifications`, { method: 'POST', headers: { 'content-type': events }, body: JSON.stringify(pull) });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { accepted: 0, ignored: 1 });
  });

  test('SIGTERM → clean exit 0', async () => {
    process.kill(seeder.handle.pid, 'SIGTERM');
    assert.equal(await seeder.handle.exited, 0);
  });
});
