import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { TrackerClient, parseAnnounceAnswer } from '../../tracker/client.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { isTrackerError } from '../../tracker/errors.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { isLayerswarmError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logging.ts';
import type { Metainfo } from '../../shared/swarm/metainfo.ts';
import { freePort } from '../fixtures/ports.ts';

const hex = (s: string): string => createHash('sha256').update(s).digest('hex');
const DIGEST = `sha256:${hex('client blob')}`;
const META: Metainfo = { digest: DIGEST, size: 2 ** 21, pieceLength: 2 ** 20, pieceHashes: [hex('a'), hex('b')] };
const id = (i: number): string => i.toString(16).padStart(40, '0');

describe('TrackerClient', () => {
  let tracker: RunningTracker;
  let client: TrackerClient;
  let seederCalls = 0;
  before(async () => {
    tracker = await startTracker(
      { ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, maxSwarms: 1, seederToken: 'tok' },
      { logger: silentLogger(), seederCall: async () => { seederCalls++; return META; } },
    );
    client = new TrackerClient({ url: tracker.url, seederToken: 'tok' });
  });
  after(async () => {
    await client?.close();
    await tracker?.close();
  });

  test('announce → validated handout and interval', async () => {
    for (let i = 1; i <= 2; i++) await client.announce({ digest: DIGEST, peerId: id(i), address: '127.0.0.1', port: 7000 + i, complete: i === 2, pieces: i === 2 ? 2 : 0 });
    const r = await client.announce({ digest: DIGEST, peerId: id(3), address: '::1', port: 7003, complete: false, pieces: 0, zone: 'z' });
    assert.equal(r.intervalMs, 5000);
    assert.deepEqual(r.peers.map((p) => [p.port, p.complete]), [[7002, true], [7001, false]]);
  });

  test('tracker error codes come back typed', async () => {
    await assert.rejects(
      client.announce({ digest: `sha256:${hex('no such swarm')}`, peerId: id(4), address: '127.0.0.1', port: 7004, complete: false, pieces: 0 }),
      (e) => isTrackerError(e, 'TRACKER_FULL') && e.status === 503 && isLayerswarmError(e, 'TOOMANYREQUESTS'),
    );
    await assert.rejects(
      client.announce({ digest: DIGEST, peerId: 'nope', address: '127.0.0.1', port: 7004, complete: false, pieces: 0 }),
      (e) => isTrackerError(e, 'REQUEST_INVALID') && /peerId/.test(e.message),
    );
    await assert.rejects(client.getMetainfo({ digest: DIGEST, repository: 'library/app' }), (e) => isTrackerError(e, 'NO_SEEDER'));
    const anonymous = new TrackerClient({ url: tracker.url });
    await assert.rejects(anonymous.registerSeeder({ id: 's', url: 'http://127.0.0.1:9' }), (e) => isTrackerError(e, 'UNAUTHORIZED'));
    await anonymous.close();
  });

  test('seeders register, metainfo is produced once and published', async () => {
    assert.deepEqual(await client.registerSeeder({ id: 'seed-1', url: 'http://127.0.0.1:9' }), { id: 'seed-1', url: 'http://127.0.0.1:9', ttl: 60 });
    const got = await Promise.all([1, 2, 3].map(() => client.getMetainfo({ digest: DIGEST, repository: 'library/app', registry: 'r.example' })));
    for (const m of got) assert.deepEqual(m, META);
    assert.equal(seederCalls, 1);
    const other: Metainfo = { ...META, digest: `sha256:${hex('other')}` };
    assert.deepEqual(await client.putMetainfo(other), { digest: other.digest, created: true });
    assert.deepEqual(await client.getMetainfo({ digest: other.digest, repository: '' }), other, 'known: no repository needed');
    const { swarms, totals } = await client.swarms();
    assert.equal(totals.seeders, 1);
    const s = swarms[0];
    assert.deepEqual(s && { digest: s.digest, seeders: s.seeders, complete: s.complete, leechers: s.leechers, size: s.size, bytes: s.bytes, repository: s.repository },
      { digest: DIGEST, seeders: 0, complete: 1, leechers: 2, size: META.size, bytes: META.size, repository: 'library/app' });
  });

  test('transport failures: unavailable, timeout, abort', async () => {
    const down = new TrackerClient({ url: `http://127.0.0.1:${await freePort()}` });
    await assert.rejects(down.swarms(), (e) => isTrackerError(e, 'TRACKER_UNAVAILABLE') && isLayerswarmError(e, 'UPSTREAM_UNAVAILABLE'));
    await down.close();

    const hanging: FastifyInstance = Fastify();
    hanging.post('/v1/announce', () => new Promise(() => undefined));
    await hanging.listen({ host: '127.0.0.1', port: 0 });
    const { port } = hanging.server.address() as { port: number };
    const slow = new TrackerClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 100 });
    const req = { digest: DIGEST, peerId: id(9), address: '127.0.0.1', port: 1, complete: false, pieces: 0 };
    await assert.rejects(slow.announce(req), (e) => isTrackerError(e, 'TRACKER_TIMEOUT'));
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(slow.announce(req, ac.signal), (e) => isTrackerError(e, 'ABORTED'));
    await slow.close();
    hanging.server.closeAllConnections();
    await hanging.close();
  });

  test('announce answers are validated', () => {
    assert.throws(() => parseAnnounceAnswer({ peers: [{ peerId: id(1), address: 'evil.example', port: 1 }], interval: 5 }), (e) => isTrackerError(e, 'TRACKER_ERROR'));
    assert.throws(() => parseAnnounceAnswer({ peers: [], interval: 0 }), /interval/);
    assert.throws(() => parseAnnounceAnswer({ peers: Array(1001).fill(null), interval: 5 }), /at most 1000/);
    assert.deepEqual(parseAnnounceAnswer({ peers: [{ peerId: id(1), address: '10.1.2.3', port: 9, complete: true, extra: 1 }], interval: 5 }), {
      peers: [{ peerId: id(1), address: '10.1.2.3', port: 9, complete: true }], intervalMs: 5000,
    });
  });
});

describe('running tracker', () => {
  test('the prune timer drops expired peers; shutdown ends requests waiting on a seeder', async () => {
    const clock = { now: 0 };
    const tracker = await startTracker(
      { ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, pruneInterval: 20 },
      {
        logger: silentLogger(),
        now: () => clock.now,
        seederCall: (_s, _r, signal) => new Promise((resolve, reject) => {
          const timer = setTimeout(() => resolve(META), 10_000);
          signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason as Error); });
        }),
      },
    );
    const client = new TrackerClient({ url: tracker.url });
    try {
      await client.announce({ digest: DIGEST, peerId: id(1), address: '127.0.0.1', port: 7001, complete: false, pieces: 0 });
      assert.equal(tracker.store.peerCount, 1);
      clock.now += 30_000;
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(tracker.store.peerCount, 0);

      await client.registerSeeder({ id: 's', url: 'http://127.0.0.1:9' });
      const waiting = client.getMetainfo({ digest: DIGEST, repository: 'library/app' });
      await new Promise((r) => setTimeout(r, 50));
      const started = Date.now();
      await tracker.close();
      await assert.rejects(waiting, (e) => isTrackerError(e, 'SHUTTING_DOWN') && e.status === 503);
      assert.ok(Date.now() - started < 2000);
    } finally {
      await client.close();
      await tracker.close();
    }
  });
});
