// The tracker's monitoring API (dashboard and `layerswarm status`): rates from announce counters, a swarm's detail,
// the event ring with its rate bound, the offload series, repository labels, the dashboard's static files.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EventLog } from '../../tracker/event-log.ts';
import { OffloadSeries } from '../../tracker/offload-series.ts';
import { buildTracker, type TrackerParts } from '../../tracker/tracker.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { silentLogger } from '../../shared/logging.ts';
import type { Metainfo } from '../../shared/swarm/metainfo.ts';
import type { EventList, SwarmList } from '../../tracker/client.ts';
import type { OffloadReport } from '../../tracker/offload-series.ts';
import type { SwarmDetailView } from '../../tracker/swarm-views.ts';

const hex = (s: string): string => createHash('sha256').update(s).digest('hex');
const DIGEST = `sha256:${hex('blob')}`;
const id = (i: number): string => i.toString(16).padStart(40, '0');
const META: Metainfo = { digest: DIGEST, size: 4 * 2 ** 20, pieceLength: 2 ** 20, pieceHashes: [hex('0'), hex('1'), hex('2'), hex('3')] };

const trackers: TrackerParts[] = [];
function tracker(): { t: TrackerParts; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const t = buildTracker({ ...DEFAULT_TRACKER_CONFIG }, { logger: silentLogger(), now: () => clock.now, seederCall: async () => META });
  trackers.push(t);
  return { t, clock };
}
after(async () => {
  for (const t of trackers) await t.app.close();
});
const announce = async (t: TrackerParts, i: number, over: Record<string, unknown> = {}): Promise<void> => {
  const res = await t.app.inject({ method: 'POST', url: '/v1/announce', payload: { digest: DIGEST, peerId: id(i), address: `10.0.0.${i}`, port: 7000, complete: false, pieces: 0, ...over } });
  assert.equal(res.statusCode, 200, res.body);
};

describe('tracker monitoring API', () => {
  test('swarm detail: roles, progress, rates from successive announces, availability, repository label', async () => {
    const { t, clock } = tracker();
    await t.app.inject({ method: 'POST', url: '/v1/seeders', payload: { id: 's1', url: 'http://127.0.0.1:9' } });
    assert.equal((await t.app.inject({ method: 'GET', url: `/v1/metainfo/${DIGEST}?repository=team/app&registry=r.example:5000` })).statusCode, 200);
    await announce(t, 1, { seeder: true, complete: true, pieces: 4, uploaded: 0 });
    await announce(t, 2, { pieces: 1, downloaded: 1 * 2 ** 20 });
    await announce(t, 3, { pieces: 0 });
    clock.now += 500;
    // Too close to the last one to measure: no rate yet.
    await announce(t, 2, { pieces: 2, downloaded: 2 * 2 ** 20 });
    clock.now += 1500;
    await announce(t, 1, { seeder: true, complete: true, pieces: 4, uploaded: 4 * 2 ** 20 });
    await announce(t, 2, { pieces: 3, downloaded: 3 * 2 ** 20, uploaded: 2 ** 20 });
    const res = await t.app.inject({ method: 'GET', url: `/v1/swarms/${DIGEST}` });
    assert.equal(res.statusCode, 200, res.body);
    const d = res.json<SwarmDetailView>();
    assert.equal(d.repository, 'team/app');
    assert.equal(d.registry, 'r.example:5000');
    assert.equal(d.pieces, 4);
    assert.equal(d.progress, 0.375, 'leechers hold 3 + 0 of 2 × 4 pieces');
    assert.deepEqual(d.peerList.map((p) => [p.peerId, p.role, p.progress, p.downRate, p.upRate]), [
      [id(1), 'seeder', 1, 0, Math.round((4 * 2 ** 20) / 2)],
      [id(2), 'leecher', 0.75, Math.round((2 * 2 ** 20) / 2), Math.round(2 ** 20 / 2)],
      [id(3), 'leecher', 0, 0, 0],
    ]);
    assert.equal(d.peerList[2]?.lastSeenAgoMs, 2000);
    assert.deepEqual(d.availability, {
      basis: 'piece-counts', fullCopies: 1, distributedCopies: 1.75,
      histogram: [{ label: '0–24%', peers: 1 }, { label: '25–49%', peers: 0 }, { label: '50–74%', peers: 0 }, { label: '75–99%', peers: 1 }, { label: '100%', peers: 0 }],
    });
    const list = (await t.app.inject({ method: 'GET', url: '/v1/swarms' })).json<SwarmList>();
    assert.equal(list.swarms[0]?.downRate, d.downRate);
    assert.equal(list.totals.upRate, d.upRate);
    // A restarted torrent (counters back to 0) starts a new measurement instead of a negative rate.
    clock.now += 2000;
    await announce(t, 2, { complete: true, pieces: 4, downloaded: 0, uploaded: 0 });
    const again = (await t.app.inject({ method: 'GET', url: `/v1/swarms/${DIGEST}` })).json<SwarmDetailView>();
    assert.deepEqual(again.peerList.map((p) => [p.role, p.downRate, p.upRate]), [['seeder', 0, 2 ** 21], ['complete', 0, 0], ['leecher', 0, 0]]);

    const unknown = await t.app.inject({ method: 'GET', url: `/v1/swarms/sha256:${hex('none')}` });
    assert.equal(unknown.statusCode, 404);
    assert.match(unknown.json<{ errors: Array<{ message: string }> }>().errors[0]?.message ?? '', /no swarm for sha256:/);
    assert.equal((await t.app.inject({ method: 'GET', url: '/v1/swarms/nope' })).statusCode, 400);
    const bad = await t.app.inject({ method: 'POST', url: '/v1/announce', payload: { digest: DIGEST, peerId: id(9), address: '10.0.0.9', port: 7000, complete: false, pieces: 0, uploaded: -1 } });
    assert.equal(bad.statusCode, 400);
  });

  test('events: validated, kept newest last, read with since; bytes feed the offload ratio', async () => {
    const { t, clock } = tracker();
    await announce(t, 1, { pieces: 1 });
    await announce(t, 2, { pieces: 0 });
    const post = (payload: Record<string, unknown>) => t.app.inject({ method: 'POST', url: '/v1/events', payload });
    const ok = await post({ peerId: id(1), zone: 'a', events: [{ kind: 'fallback', digest: DIGEST, reason: 'no_peers' }, { kind: 'peer_banned' }], bytes: { peers: 300, origin: 100 } });
    assert.equal(ok.statusCode, 202, ok.body);
    assert.deepEqual(ok.json(), { accepted: 2, dropped: 0 });
    assert.deepEqual(t.store.peers(DIGEST).map((p) => p.peerId), [id(2)], 'the leecher that fell back left the swarm');
    assert.equal((await post({ peerId: id(1), events: [{ kind: 'nonsense' }] })).statusCode, 400);
    assert.equal((await post({ peerId: 'x', events: [] })).statusCode, 400);
    assert.equal((await post({ peerId: id(1), events: Array.from({ length: 101 }, () => ({ kind: 'bad_piece' })) })).statusCode, 400);
    clock.now += 5000;
    await post({ peerId: id(2), bytes: { peers: 600, origin: 0 } });
    const events = (await t.app.inject({ method: 'GET', url: '/v1/events' })).json<EventList>();
    assert.deepEqual(events.events.map((e) => [e.id, e.kind, e.peerId, e.zone, e.digest, e.reason]), [
      [1, 'fallback', id(1), 'a', DIGEST, 'no_peers'],
      [2, 'peer_banned', id(1), 'a', null, null],
    ]);
    assert.deepEqual(events.counts, { fallback: 1, bad_piece: 0, peer_banned: 1 });
    assert.deepEqual((await t.app.inject({ method: 'GET', url: '/v1/events?since=1' })).json<EventList>().events.map((e) => e.id), [2]);
    const offload = (await t.app.inject({ method: 'GET', url: '/v1/offload' })).json<OffloadReport>();
    assert.deepEqual(offload.points.map((p) => [p.peers, p.origin]), [[300, 100], [600, 0]]);
    assert.equal(offload.window.ratio, 0.9);
    assert.equal((await t.app.inject({ method: 'GET', url: '/v1/swarms' })).json<SwarmList>().totals.offloadRatio, 0.9);
  });

  test('event ring and rate bound; offload window', () => {
    let now = 0;
    const log = new EventLog({ capacity: 5, ratePerSecond: 2, burst: 4, now: () => now });
    const e = { kind: 'bad_piece' as const, peerId: id(1), zone: null, digest: null, reason: null };
    assert.equal(log.add([e, e, e, e, e, e]), 4);
    assert.equal(log.dropped, 2);
    now += 1000;
    assert.equal(log.add([e, e, e]), 2);
    assert.deepEqual(log.since(0, 100).map((x) => x.id), [2, 3, 4, 5, 6], 'the oldest is overwritten');
    assert.deepEqual(log.since(4, 100).map((x) => x.id), [5, 6]);
    assert.deepEqual(log.since(0, 2).map((x) => x.id), [5, 6], 'the newest `limit`');

    const series = new OffloadSeries({ bucketMs: 1000, buckets: 3, now: () => now });
    series.add(10, 0);
    now += 1000;
    series.add(0, 10);
    now += 3000;
    series.add(5, 5);
    const r = series.report();
    assert.deepEqual(r.points.map((p) => [p.peers, p.origin]), [[5, 5]], 'older buckets left the window');
    assert.equal(r.window.ratio, 0.5);
    assert.deepEqual(r.total, { peers: 15, origin: 15, ratio: 0.5 });
  });

  test('dashboard: the page and its assets with a strict CSP; / redirects; nothing else is served', async () => {
    const { t } = tracker();
    const root = await t.app.inject({ method: 'GET', url: '/' });
    assert.equal(root.statusCode, 302);
    assert.equal(root.headers.location, '/dashboard');
    const page = await t.app.inject({ method: 'GET', url: '/dashboard' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /text\/html/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
    assert.doesNotMatch(page.body, /https?:\/\//, 'no external asset');
    for (const [file, type] of [['dashboard.js', /javascript/], ['dashboard.css', /text\/css/]] as const) {
      const res = await t.app.inject({ method: 'GET', url: `/dashboard/${file}` });
      assert.equal(res.statusCode, 200, file);
      assert.match(String(res.headers['content-type']), type);
      assert.doesNotMatch(res.body, /https?:\/\/(?!www\.w3\.org)/, `${file}: no external URL`);
    }
    assert.equal((await t.app.inject({ method: 'GET', url: '/dashboard/..%2Fserver.ts' })).statusCode, 404);
    assert.equal((await t.app.inject({ method: 'GET', url: '/dashboard/server.ts' })).statusCode, 404);
  });
});
