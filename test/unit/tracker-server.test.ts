import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { buildTracker, type TrackerParts } from '../../tracker/tracker.ts';
import { DEFAULT_TRACKER_CONFIG, loadTrackerConfig, TRACKER_OPTIONS, type TrackerConfig } from '../../tracker/config.ts';
import type { SeederCall } from '../../tracker/metainfo-registry.ts';
import { envName, flagName, formatHelp } from '../../shared/config/options.ts';
import { isLayerswarmError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logging.ts';
import type { Metainfo } from '../../shared/swarm/metainfo.ts';

const hex = (s: string): string => createHash('sha256').update(s).digest('hex');
const DIGEST = `sha256:${hex('blob')}`;
const id = (i: number): string => i.toString(16).padStart(40, '0');
const announce = (i: number, over: Record<string, unknown> = {}): Record<string, unknown> => ({
  digest: DIGEST, peerId: id(i), address: `10.0.0.${i}`, port: 7000, complete: false, pieces: 0, ...over,
});
const META: Metainfo = { digest: DIGEST, size: 3 * 2 ** 20, pieceLength: 2 ** 20, pieceHashes: [hex('0'), hex('1'), hex('2')] };

const trackers: TrackerParts[] = [];
function tracker(over: Partial<TrackerConfig> = {}, seederCall?: SeederCall): { t: TrackerParts; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const t = buildTracker({ ...DEFAULT_TRACKER_CONFIG, ...over }, { logger: silentLogger(), now: () => clock.now, ...(seederCall ? { seederCall } : {}) });
  trackers.push(t);
  return { t, clock };
}
after(async () => {
  for (const t of trackers) await t.app.close();
});

async function errorOf(t: TrackerParts, method: 'GET' | 'POST' | 'PUT', url: string, payload?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; code: string; message: string }> {
  const res = await t.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
  const body = res.json<{ errors: Array<{ code: string; message: string }> }>();
  assert.equal(body.errors.length, 1);
  return { status: res.statusCode, code: body.errors[0]?.code ?? '', message: body.errors[0]?.message ?? '' };
}

describe('tracker API', () => {
  test('announce hands out other peers and the interval', async () => {
    const { t } = tracker();
    const first = await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(1) });
    assert.deepEqual(first.json(), { peers: [], interval: 5 });
    await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(2, { complete: true, pieces: 3 }) });
    await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(3, { seeder: true, complete: true, zone: 'z1' }) });
    const res = await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(1, { pieces: 1 }) });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), {
      interval: 5,
      peers: [
        { peerId: id(2), address: '10.0.0.2', port: 7000, complete: true },
        { peerId: id(3), address: '10.0.0.3', port: 7000, complete: true, seeder: true },
      ],
    });
  });

  test('handout size is bounded by config', async () => {
    const { t } = tracker({ handoutSize: 3 });
    for (let i = 1; i <= 10; i++) await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(i) });
    const res = await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(11) });
    assert.equal(res.json<{ peers: unknown[] }>().peers.length, 3);
  });

  test('bad announces are rejected with clear errors', async () => {
    const { t } = tracker();
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [announce(1, { peerId: 'abc' }), 'REQUEST_INVALID', /peerId must match pattern/],
      [announce(1, { peerId: id(1).toUpperCase().replace(/0/g, 'A') }), 'REQUEST_INVALID', /peerId/],
      [announce(1, { port: 0 }), 'REQUEST_INVALID', /port must be >= 1/],
      [announce(1, { port: '7000' }), 'REQUEST_INVALID', /port must be integer/],
      [announce(1, { complete: 'yes' }), 'REQUEST_INVALID', /complete must be boolean/],
      [announce(1, { pieces: -1 }), 'REQUEST_INVALID', /pieces/],
      [announce(1, { extra: 1 }), 'REQUEST_INVALID', /additional properties/],
      [announce(1, { zone: 'a zone with spaces' }), 'REQUEST_INVALID', /zone/],
      [{ digest: DIGEST }, 'REQUEST_INVALID', /required property/],
      [announce(1, { digest: 'sha256:abc' }), 'DIGEST_INVALID', /64 lowercase hex/],
      [announce(1, { digest: `md5:${'a'.repeat(32)}` }), 'DIGEST_INVALID', /only sha256/],
      [announce(1, { address: 'example.com' }), 'REQUEST_INVALID', /not an IP address/],
      [announce(1, { address: '0.0.0.0' }), 'REQUEST_INVALID', /cannot be dialled/],
    ];
    for (const [payload, code, message] of cases) {
      const e = await errorOf(t, 'POST', '/v1/announce', payload);
      assert.equal(e.status, 400, JSON.stringify(payload));
      assert.equal(e.code, code, JSON.stringify(payload));
      assert.match(e.message, message);
    }
    const notJson = await t.app.inject({ method: 'POST', url: '/v1/announce', payload: '{', headers: { 'content-type': 'application/json' } });
    assert.equal(notJson.statusCode, 400);
    const big = await errorOf(t, 'POST', '/v1/announce', { ...announce(1), zone: 'z'.repeat(5000) });
    assert.equal(big.status, 413);
    t.metainfo.put(META);
    const tooMany = await errorOf(t, 'POST', '/v1/announce', announce(1, { pieces: 4 }));
    assert.match(tooMany.message, /exceeds the blob's 3 pieces/);
    const metrics = await (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /layerswarm_tracker_announces_total\{result="REQUEST_INVALID"\} 1[45]/);
  });

  test('stopped: the peer leaves the swarm at once and gets no peers; the same id from another address is ignored', async () => {
    const { t } = tracker();
    for (const i of [1, 2]) await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(i) });
    const spoofed = await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(1, { address: '10.9.9.9', stopped: true }) });
    assert.equal(spoofed.statusCode, 200);
    assert.equal(t.store.peers(DIGEST).length, 2, 'another endpoint cannot take peer 1 out');
    const bye = await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(1, { stopped: true }) });
    assert.deepEqual(bye.json<{ peers: unknown[] }>().peers, []);
    assert.deepEqual(t.store.peers(DIGEST).map((p) => p.peerId), [id(2)]);
  });

  test('caps: a full swarm still answers (caller unrecorded), a new swarm beyond maxSwarms gets 503 TRACKER_FULL with Retry-After', async () => {
    const { t, clock } = tracker({ maxPeersPerSwarm: 2, maxSwarms: 1 });
    await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(1) });
    await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(2) });
    const full = await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(3) });
    assert.equal(full.statusCode, 200);
    assert.equal(full.json<{ peers: unknown[] }>().peers.length, 2);
    assert.equal(t.store.peerCount, 2);
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /layerswarm_tracker_announces_unrecorded_total 1/);
    const otherRes = await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(3, { digest: `sha256:${hex('other')}` }) });
    assert.equal(otherRes.headers['retry-after'], '30');
    const other = await errorOf(t, 'POST', '/v1/announce', announce(3, { digest: `sha256:${hex('other')}` }));
    assert.deepEqual([other.status, other.code], [503, 'TRACKER_FULL']);
    clock.now += 30_000;
    t.prune();
    assert.equal(t.store.peerCount, 0);
    assert.equal((await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(3) })).statusCode, 200);
  });

  test('metainfo: unknown → 404, produced by a registered seeder, PUT by seeders, /v1/swarms bytes', async () => {
    const asked: unknown[] = [];
    const { t } = tracker({}, async (seeder, req) => {
      asked.push({ seeder: seeder.id, ...req });
      return META;
    });
    assert.equal((await errorOf(t, 'GET', `/v1/metainfo/${DIGEST}`)).code, 'METAINFO_UNKNOWN');
    assert.equal((await errorOf(t, 'GET', `/v1/metainfo/${DIGEST}?repository=x`)).code, 'NO_SEEDER');
    assert.equal((await errorOf(t, 'GET', `/v1/metainfo/${DIGEST}?repository=Bad..Name`)).code, 'REQUEST_INVALID');
    assert.equal((await errorOf(t, 'GET', `/v1/metainfo/${DIGEST}?repository=x&registry=a/b`)).code, 'REQUEST_INVALID');
    assert.equal((await errorOf(t, 'GET', '/v1/metainfo/sha256:nothex?repository=x')).code, 'DIGEST_INVALID');
    assert.equal((await errorOf(t, 'POST', '/v1/seeders', { id: 's1', url: 'ftp://seeder' })).code, 'REQUEST_INVALID');
    const reg = await t.app.inject({ method: 'POST', url: '/v1/seeders', payload: { id: 's1', url: 'http://127.0.0.1:9/' } });
    assert.deepEqual(reg.json(), { id: 's1', url: 'http://127.0.0.1:9', ttl: 60 });
    const got = await t.app.inject({ method: 'GET', url: `/v1/metainfo/${DIGEST}?repository=library/app&registry=reg.example:5000` });
    assert.equal(got.statusCode, 200);
    assert.deepEqual(got.json(), META);
    assert.deepEqual(asked, [{ seeder: 's1', digest: DIGEST, repository: 'library/app', registry: 'reg.example:5000' }]);
    assert.deepEqual((await t.app.inject({ method: 'GET', url: `/v1/metainfo/${DIGEST}` })).json(), META, 'known now: no repository needed');

    const other: Metainfo = { digest: `sha256:${hex('other')}`, size: 10, pieceLength: 2 ** 20, pieceHashes: [hex('x')] };
    assert.equal((await t.app.inject({ method: 'PUT', url: '/v1/metainfo', payload: { ...other } })).statusCode, 201);
    assert.equal((await t.app.inject({ method: 'PUT', url: '/v1/metainfo', payload: { ...other } })).statusCode, 200);
    assert.equal((await errorOf(t, 'PUT', '/v1/metainfo', { ...other, size: 20 })).code, 'METAINFO_CONFLICT');
    assert.equal((await errorOf(t, 'PUT', '/v1/metainfo', { ...other, digest: `sha256:${hex('3')}`, pieceHashes: [] })).code, 'METAINFO_INVALID');

    await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(1, { complete: true, pieces: 3 }) });
    await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(2, { complete: true, pieces: 3 }) });
    await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(3, { seeder: true, complete: true, pieces: 3 }) });
    await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(4, { pieces: 1 }) });
    await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(5, { digest: `sha256:${hex('nometa')}` }) });
    const swarms = await t.app.inject({ method: 'GET', url: '/v1/swarms' });
    const listed = swarms.json<{ swarms: Array<Record<string, unknown>>; totals: Record<string, unknown> }>();
    const pick = (s: Record<string, unknown> | undefined): Record<string, unknown> =>
      Object.fromEntries(['digest', 'seeders', 'complete', 'leechers', 'peers', 'size', 'bytes', 'progress'].map((k) => [k, s?.[k]]));
    assert.deepEqual(listed.swarms.map(pick), [
      // Progress: the non-seeder peers hold 3 + 3 + 1 of 3 × 3 pieces.
      { digest: DIGEST, seeders: 1, complete: 2, leechers: 1, peers: 4, size: META.size, bytes: 2 * META.size, progress: 0.7778 },
      { digest: `sha256:${hex('nometa')}`, seeders: 0, complete: 0, leechers: 1, peers: 1, size: null, bytes: null, progress: null },
    ]);
    assert.deepEqual({ ...listed.totals, events: undefined }, { swarms: 2, peers: 5, seeders: 1, upRate: 0, downRate: 0, offloadRatio: null, events: undefined });
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /layerswarm_tracker_metainfo_requests_total\{result="produced"\} 1/);
    assert.match(metrics, /layerswarm_tracker_metainfo_requests_total\{result="hit"\} 1/);
    assert.match(metrics, /layerswarm_tracker_swarms 2/);
  });

  test('seeder token guards seeder endpoints only', async () => {
    const { t } = tracker({ seederToken: 's3cret' });
    const denied = await t.app.inject({ method: 'POST', url: '/v1/seeders', payload: { id: 's', url: 'http://127.0.0.1:9' } });
    assert.equal(denied.statusCode, 401);
    assert.equal((await errorOf(t, 'PUT', '/v1/metainfo', META, { authorization: 'Bearer wrong' })).code, 'UNAUTHORIZED');
    const ok = await t.app.inject({ method: 'PUT', url: '/v1/metainfo', payload: { ...META }, headers: { authorization: 'Bearer s3cret' } });
    assert.equal(ok.statusCode, 201);
    assert.equal((await t.app.inject({ method: 'POST', url: '/v1/announce', payload: announce(1) })).statusCode, 200);
  });

  test('health, readiness, unknown routes', async () => {
    const { t } = tracker();
    assert.equal((await t.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    assert.equal((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503);
    t.markReady(true);
    assert.equal((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
    assert.deepEqual(await errorOf(t, 'GET', '/v2/'), { status: 404, code: 'NOT_FOUND', message: 'no route GET "/v2/"' });
  });
});

describe('tracker config', () => {
  test('defaults, flags, env; problems reported together', () => {
    const c = loadTrackerConfig(['--listen', '127.0.0.1:7070', '--peer-ttl', '1m'], { LAYERSWARM_HANDOUT_SIZE: '50' });
    assert.deepEqual(c?.listen, { host: '127.0.0.1', port: 7070 });
    assert.equal(c?.peerTtl, 60_000);
    assert.equal(c?.handoutSize, 50);
    assert.equal(c?.announceInterval, 5000);
    assert.equal(c?.seederToken, undefined);
    assert.equal(loadTrackerConfig(['--help'], {}), undefined);
    assert.throws(
      () => loadTrackerConfig(['--peer-ttl', '2s', '--announce-interval', '5s', '--handout-size', '0', '--listen', 'nope'], {}),
      (e) => isLayerswarmError(e, 'CONFIG_INVALID') && /--handout-size: must be ≥ 1/.test(e.message) && /--listen/.test(e.message),
    );
    assert.throws(() => loadTrackerConfig(['--peer-ttl', '2s'], {}), (e) => isLayerswarmError(e, 'CONFIG_INVALID') && /peerTtl .* must exceed announceInterval/.test(e.message));
    const help = formatHelp('layerswarm tracker', 'x', TRACKER_OPTIONS);
    for (const flag of ['--listen HOST:PORT', '--peer-ttl DURATION', '--max-peers-per-swarm N', '--max-swarms N', '--handout-size N', '--seeder-request-timeout DURATION', '--log-level LEVEL']) {
      assert.ok(help.includes(flag), flag);
    }
  });
});

test('tracker/README.md documents every tracker option', () => {
  const readme = readFileSync(new URL('../../tracker/README.md', import.meta.url), 'utf8');
  for (const o of TRACKER_OPTIONS) {
    assert.ok(readme.includes(`\`${flagName(o.key)}\``), flagName(o.key));
    assert.ok(readme.includes(`\`${envName(o.key)}\``), envName(o.key));
  }
});
