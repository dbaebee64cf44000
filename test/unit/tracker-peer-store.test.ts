import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerStore, type PeerStoreOptions } from '../../tracker/peer-store.ts';
import { isTrackerError } from '../../tracker/errors.ts';
import type { Peer } from '../../tracker/handout-policy.ts';

const digest = (i: number): string => `sha256:${i.toString(16).padStart(64, '0')}`;
const peer = (i: number, over: Partial<Peer> = {}): Peer => ({
  peerId: i.toString(16).padStart(40, '0'), address: '10.0.0.1', port: 7000 + i, complete: false, seeder: false, pieces: 0, zone: undefined, ...over,
});

function store(over: Partial<PeerStoreOptions> = {}): { store: PeerStore; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  return { clock, store: new PeerStore({ ttlMs: 30_000, maxSwarms: 100, maxPeersPerSwarm: 100, maxPeers: 1000, now: () => clock.now, ...over }) };
}

describe('peer store', () => {
  test('announce records and refreshes peers', () => {
    const { store: s } = store();
    assert.equal(s.announce(digest(1), peer(1)).peers.length, 1);
    assert.equal(s.announce(digest(1), peer(2)).peers.length, 2);
    const again = s.announce(digest(1), peer(1, { complete: true, pieces: 9 })).peers;
    assert.equal(again.length, 2);
    assert.equal(again.find((p) => p.peerId === peer(1).peerId)?.pieces, 9);
    assert.equal(s.peerCount, 2);
    assert.equal(s.swarmCount, 1);
  });

  test('peers expire after the TTL without announce, pruned on access', () => {
    const { store: s, clock } = store();
    s.announce(digest(1), peer(1));
    clock.now += 20_000;
    s.announce(digest(1), peer(2));
    clock.now += 10_000; // peer 1: 30 s old → expired; peer 2: 10 s.
    assert.deepEqual(s.peers(digest(1)).map((p) => p.port), [7002]);
    assert.equal(s.peerCount, 1);
    clock.now += 20_000;
    assert.deepEqual(s.peers(digest(1)), []);
    assert.equal(s.swarmCount, 0);
    assert.equal(s.peerCount, 0);
  });

  test('a refreshed peer does not expire; prune() drops the others everywhere', () => {
    const { store: s, clock } = store();
    s.announce(digest(1), peer(1));
    s.announce(digest(2), peer(2));
    s.announce(digest(3), peer(3));
    clock.now += 25_000;
    s.announce(digest(2), peer(2));
    clock.now += 10_000;
    assert.equal(s.prune(), 2);
    assert.equal(s.swarmCount, 1);
    assert.equal(s.peerCount, 1);
    assert.deepEqual(s.summaries(10).map((x) => x.digest), [digest(2)]);
  });

  test('per-swarm cap: a new peer is answered but not recorded, existing peers still refresh, recorded again after expiry', () => {
    const { store: s, clock } = store({ maxPeersPerSwarm: 2 });
    s.announce(digest(1), peer(1));
    s.announce(digest(1), peer(2));
    const over = s.announce(digest(1), peer(3));
    assert.equal(over.recorded, false);
    assert.deepEqual(over.peers.map((p) => p.port).sort(), [7001, 7002]);
    assert.equal(s.peerCount, 2);
    assert.equal(s.announce(digest(1), peer(2)).peers.length, 2);
    clock.now += 31_000;
    const after = s.announce(digest(1), peer(3));
    assert.deepEqual([after.recorded, after.peers.length], [true, 1]);
  });

  test('swarm and peer caps: TRACKER_FULL (503) for a new swarm, unrecorded answers in existing ones, until entries expire', () => {
    const { store: s, clock } = store({ maxSwarms: 2, maxPeers: 3 });
    s.announce(digest(1), peer(1));
    s.announce(digest(2), peer(2));
    assert.throws(() => s.announce(digest(3), peer(3)), (e) => isTrackerError(e, 'TRACKER_FULL') && e.status === 503 && /maxSwarms/.test(e.message));
    s.announce(digest(2), peer(4));
    const unrecorded = s.announce(digest(1), peer(5));
    assert.deepEqual([unrecorded.recorded, unrecorded.peers.map((p) => p.port)], [false, [7001]]);
    assert.equal(s.peerCount, 3);
    clock.now += 15_000;
    s.announce(digest(2), peer(2));
    s.announce(digest(2), peer(4));
    clock.now += 16_000; // digest 1 expired as a whole
    assert.equal(s.announce(digest(3), peer(3)).peers.length, 1);
    assert.equal(s.swarmCount, 2);
  });

  test('summaries count seeders, completed peers and leechers', () => {
    const { store: s } = store();
    s.announce(digest(1), peer(1, { seeder: true, complete: true }));
    s.announce(digest(1), peer(2, { complete: true }));
    s.announce(digest(1), peer(3));
    s.announce(digest(1), peer(4));
    s.announce(digest(2), peer(5));
    assert.deepEqual(s.summaries(10), [
      { digest: digest(1), seeders: 1, complete: 1, leechers: 2, piecesHeld: 0, upRate: 0, downRate: 0 },
      { digest: digest(2), seeders: 0, complete: 0, leechers: 1, piecesHeld: 0, upRate: 0, downRate: 0 },
    ]);
    assert.equal(s.summaries(1).length, 1);
    assert.ok(s.remove(digest(2), peer(5).peerId));
    assert.equal(s.swarmCount, 1);
  });
});
