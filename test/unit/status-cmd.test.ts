// `layerswarm status` against a live tracker: the table shows what the API says; one swarm's peers; unknown swarm
// or image and an unreachable tracker give exit 1 and a one-line message naming the URL; --watch redraws until
// stopped.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../shared/logging.ts';
import { TrackerClient } from '../../tracker/client.ts';
import { main, type StatusIo } from '../../tracker/cmd/status.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { shortDigest } from '../../tracker/status-view.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { freePort } from '../fixtures/ports.ts';

const hex = (s: string): string => createHash('sha256').update(s).digest('hex');
const A = `sha256:${hex('layer-a')}`;
const B = `sha256:${hex('layer-b')}`;
const id = (i: number): string => createHash('sha1').update(`peer-${i}`).digest('hex');

async function run(argv: string[], signal?: AbortSignal): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: StatusIo = { out: (t) => (out += t), err: (t) => (err += t), ...(signal ? { signal } : {}) };
  const code = await main(argv, {}, io);
  return { code, out, err };
}

describe('layerswarm status', () => {
  let tracker: RunningTracker;
  let client: TrackerClient;

  before(async () => {
    tracker = await startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }, { logger: silentLogger() });
    client = new TrackerClient({ url: tracker.url });
    await client.putMetainfo({ digest: A, size: 4 * 2 ** 20, pieceLength: 2 ** 20, pieceHashes: [hex('0'), hex('1'), hex('2'), hex('3')] });
    const base = { address: '127.0.0.1', complete: false, pieces: 0 };
    await client.announce({ ...base, digest: A, peerId: id(1), port: 7001, complete: true, pieces: 4, seeder: true });
    await client.announce({ ...base, digest: A, peerId: id(2), port: 7002, pieces: 2, zone: 'eu-1a' });
    await client.announce({ ...base, digest: A, peerId: id(3), port: 7003, complete: true, pieces: 4 });
    await client.announce({ ...base, digest: B, peerId: id(2), port: 7002 });
    await client.postEvents({ peerId: id(2), zone: 'eu-1a', events: [{ kind: 'fallback', digest: B, reason: 'no_peers' }], bytes: { peers: 3 * 2 ** 20, origin: 2 ** 20 } });
  });
  after(async () => {
    await client.close();
    await tracker.close();
  });

  test('the table matches the API: totals, one row per swarm, offload, events', async () => {
    const { code, out, err } = await run(['--tracker', tracker.url]);
    assert.equal(code, 0, err);
    const api = await client.swarms();
    assert.match(out, new RegExp(`swarms ${api.totals.swarms} · peers ${api.totals.peers} · seeders ${api.totals.seeders}`));
    assert.match(out, /origin offload 75%/);
    assert.match(out, /fallbacks 1 · bad peers 0/);
    for (const s of api.swarms) {
      const row = out.split('\n').find((l) => l.includes(shortDigest(s.digest)) && !l.includes('origin fallback'));
      assert.ok(row, `a row for ${s.digest}`);
      const cells = row.trim().split(/\s{2,}/);
      const progress = s.progress === null ? '-' : `${Math.floor(s.progress * 100)}%`;
      assert.deepEqual(cells.slice(-5), [progress, String(s.seeders), String(s.complete), String(s.leechers), '-'], row);
    }
    assert.match(out, /\(unknown image\)\s+[0-9a-f]{12}\s+4\.0 MiB\s+\[#{15}-{5}\]\s+75%/, 'A: 2 + 4 of 2 × 4 pieces');
    assert.match(out, new RegExp(`origin fallback\\s+peer ${id(2).slice(0, 8)} \\(eu-1a\\)\\s+layer ${shortDigest(B)}\\s+no peers`));
  });

  test('--swarm: the peers of one swarm (by digest prefix); --json; unknown swarm or image → exit 1 naming the URL', async () => {
    const one = await run(['--tracker', tracker.url, '--swarm', A.slice(7, 19)]);
    assert.equal(one.code, 0, one.err);
    const detail = await client.swarm(A);
    for (const p of detail.peerList) {
      const row = one.out.split('\n').find((l) => l.startsWith(p.peerId.slice(0, 12)));
      assert.ok(row, p.peerId);
      assert.match(row, new RegExp(`${p.role}\\s+${p.zone ?? '-'}`));
    }
    assert.match(one.out, /2 full copies, ≈ 2\.5 distributed copies/);
    const json = await run(['--tracker', tracker.url, '--swarm', A, '--json']);
    assert.equal(JSON.parse(json.out).digest, A);

    const unknown = await run(['--tracker', tracker.url, '--swarm', hex('nothing')]);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.out, '');
    assert.equal(unknown.err.trim().split('\n').length, 1);
    assert.match(unknown.err, new RegExp(`no swarm for ${hex('nothing')} at ${tracker.url}`));
    const image = await run(['--tracker', tracker.url, '--image', 'team/nope']);
    assert.equal(image.code, 1);
    assert.match(image.err, new RegExp(`no swarm of image team/nope at ${tracker.url}`));
  });

  test('unreachable tracker: exit 1, one line naming the URL (through bin/layerswarm.mjs); usage errors: exit 2', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const cli = fileURLToPath(new URL('../../bin/layerswarm.mjs', import.meta.url));
    const r = spawnSync(process.execPath, [cli, 'status', '--tracker', url], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^layerswarm status: cannot reach the tracker at ${url}`));
    assert.equal((await run([])).code, 2);
    assert.equal((await run(['--tracker', 'ftp://x'])).code, 2);
    assert.equal((await run(['--tracker', tracker.url, '--bogus'])).code, 2);
  });

  test('--watch redraws until stopped', async () => {
    const stop = new AbortController();
    let screens = 0;
    const done = main(['--tracker', tracker.url, '--watch', '--interval', '0.5'], {}, {
      out: (t) => {
        assert.match(t, /layerswarm status · tracker/);
        if (++screens === 2) stop.abort();
      },
      err: () => undefined,
      signal: stop.signal,
    });
    assert.equal(await done, 0);
    assert.equal(screens, 2);
  });
});
