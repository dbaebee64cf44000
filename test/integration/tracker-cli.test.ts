// `layerswarm tracker` as users run it: a real subprocess on a free loopback port. Peers announce through
// TrackerClient and get handouts by the policy; metainfo is produced once by an in-process fake seeder; /metrics and
// /v1/swarms report the swarm; bad config exits 2; SIGTERM exits 0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { TrackerClient } from '../../tracker/client.ts';
import { isTrackerError } from '../../tracker/errors.ts';
import type { Metainfo } from '../../shared/swarm/metainfo.ts';
import { freePort, retryOnPortClash } from '../fixtures/ports.ts';
import { startProcess, type ProcessHandle } from '../fixtures/process.ts';

const cli = fileURLToPath(new URL('../../bin/layerswarm.mjs', import.meta.url));
const hex = (s: string): string => createHash('sha256').update(s).digest('hex');
const DIGEST = `sha256:${hex('layer')}`;
const META: Metainfo = { digest: DIGEST, size: 5 * 2 ** 20 + 7, pieceLength: 2 ** 20, pieceHashes: Array.from({ length: 6 }, (_, i) => hex(`piece ${i}`)) };
const id = (i: number): string => i.toString(16).padStart(40, '0');

describe('layerswarm tracker (CLI)', () => {
  let tracker: ProcessHandle;
  let url: string;
  let client: TrackerClient;
  let seeder: FastifyInstance;
  let seederCalls = 0;

  before(async () => {
    seeder = Fastify();
    seeder.post('/v1/metainfo', async (request) => {
      seederCalls++;
      const body = request.body as { digest: string; repository: string };
      assert.equal(body.digest, DIGEST);
      assert.equal(body.repository, 'library/app');
      await new Promise((r) => setTimeout(r, 50));
      return META;
    });
    await seeder.listen({ host: '127.0.0.1', port: 0 });

    tracker = await retryOnPortClash(async () => {
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      return startProcess(process.execPath, [cli, 'tracker', '--listen', `127.0.0.1:${port}`, '--handout-size', '3', '--log-level', 'warn'], {
        name: 'tracker',
        env: { LAYERSWARM_PEER_TTL: '20s' },
        readyTimeoutMs: 30_000,
        ready: async (signal) => (await fetch(`${url}/readyz`, { signal })).ok,
      });
    });
    client = new TrackerClient({ url });
  });
  after(async () => {
    await client?.close();
    await tracker?.stop();
    await seeder?.close();
  });

  test('--help and bad config', () => {
    const help = spawnSync(process.execPath, [cli, 'tracker', '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--peer-ttl DURATION/);
    assert.match(help.stdout, /LAYERSWARM_MAX_PEERS_PER_SWARM/);
    const bad = spawnSync(process.execPath, [cli, 'tracker', '--handout-size', 'many'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--handout-size: expected an integer/);
    const top = spawnSync(process.execPath, [cli], { encoding: 'utf8' });
    assert.match(top.stdout, /tracker +run the swarm tracker/);
  });

  test('announces from several peers get handouts by the policy', async () => {
    // 2 completed peers, 1 seeder, 4 incomplete peers.
    const peers = [
      { i: 1, complete: true, pieces: 6 }, { i: 2, complete: true, pieces: 6 }, { i: 3, complete: true, pieces: 6, seeder: true },
      { i: 4, complete: false, pieces: 1 }, { i: 5, complete: false, pieces: 2 }, { i: 6, complete: false, pieces: 0 }, { i: 7, complete: false, pieces: 3 },
    ];
    for (const p of peers) {
      await client.announce({ digest: DIGEST, peerId: id(p.i), address: `127.0.0.${p.i}`, port: 6000 + p.i, complete: p.complete, pieces: p.pieces, ...(p.seeder ? { seeder: true } : {}) });
    }
    const newcomer = await client.announce({ digest: DIGEST, peerId: id(8), address: '127.0.0.8', port: 6008, complete: false, pieces: 0 });
    assert.equal(newcomer.intervalMs, 5000);
    assert.equal(newcomer.peers.length, 3, 'bounded by --handout-size');
    assert.deepEqual(newcomer.peers.slice(0, 2).map((p) => p.peerId).sort(), [id(1), id(2)], 'completed peers first');
    assert.equal(newcomer.peers[2]?.peerId, id(3), 'then the seeder');
    const again = await client.announce({ digest: DIGEST, peerId: id(3), address: '127.0.0.3', port: 6003, complete: true, pieces: 6, seeder: true });
    assert.ok(!again.peers.some((p) => p.peerId === id(3)), 'never the caller');
    await assert.rejects(
      client.announce({ digest: DIGEST, peerId: id(9), address: 'not-an-ip', port: 1, complete: false, pieces: 0 }),
      (e) => isTrackerError(e, 'REQUEST_INVALID'),
    );
  });

  test('metainfo through a registered seeder, once for concurrent gets', async () => {
    await assert.rejects(client.getMetainfo({ digest: DIGEST, repository: 'library/app' }), (e) => isTrackerError(e, 'NO_SEEDER'));
    const { port } = seeder.server.address() as { port: number };
    await client.registerSeeder({ id: 'seeder-1', url: `http://127.0.0.1:${port}` });
    const got = await Promise.all(Array.from({ length: 5 }, () => client.getMetainfo({ digest: DIGEST, repository: 'library/app' })));
    for (const m of got) assert.deepEqual(m, META);
    assert.equal(seederCalls, 1);
  });

  test('/v1/swarms and /metrics report the swarm', async () => {
    const { swarms, totals } = await client.swarms();
    assert.deepEqual(swarms.map((s) => ({ digest: s.digest, seeders: s.seeders, complete: s.complete, leechers: s.leechers, size: s.size, bytes: s.bytes })),
      [{ digest: DIGEST, seeders: 1, complete: 2, leechers: 5, size: META.size, bytes: 2 * META.size }]);
    assert.deepEqual({ swarms: totals.swarms, peers: totals.peers, seeders: totals.seeders }, { swarms: 1, peers: 8, seeders: 1 });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /layerswarm_tracker_announces_total\{result="ok"\} 9/);
    assert.match(metrics, /layerswarm_tracker_announces_total\{result="REQUEST_INVALID"\} 1/);
    assert.match(metrics, /layerswarm_tracker_peers 8/);
    assert.match(metrics, /layerswarm_tracker_metainfo_requests_total\{result="produced"\} 1/);
    assert.match(metrics, /layerswarm_tracker_metainfo_requests_total\{result="joined"\} 4/);
    assert.match(metrics, /layerswarm_tracker_metainfo_requests_total\{result="NO_SEEDER"\} 1/);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
  });

  test('SIGTERM → clean exit 0', async () => {
    process.kill(tracker.pid, 'SIGTERM');
    assert.equal(await tracker.exited, 0);
  });
});
