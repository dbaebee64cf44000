import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Sim, type SimNodeSpec } from './scheduler-sim.ts';

const leechers = (n: number, prefix = 'leech'): SimNodeSpec[] => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${String(i).padStart(2, '0')}`, have: [] }));

function summary(sim: Sim): string {
  return [...sim.nodes.values()].map((n) => `${n.spec.id}:${n.scheduler.stats().have}`).join(' ');
}

describe('scheduler swarm (in-process simulation)', () => {
  test('(a) 10 peers each holding one distinct piece of a 10-piece blob all complete', () => {
    const specs = Array.from({ length: 10 }, (_, i) => ({ id: `p${i}`, have: [i] }));
    const sim = new Sim({ pieceCount: 10, seed: 1 }, specs);
    assert.ok(sim.run(), `not all complete at ${sim.now} ms: ${summary(sim)}`);
    assert.deepEqual(sim.errors, []);
    for (const node of sim.nodes.values()) assert.equal(node.scheduler.stats().have, 10);
  });

  test('(b) 1 seeder + 20 leechers: all complete, the seeder uploads far less than 20 blobs', () => {
    const pieceCount = 40;
    const sim = new Sim({ pieceCount, seed: 2 }, [{ id: 'seed', have: 'all' }, ...leechers(20)]);
    assert.ok(sim.run(), `not all complete at ${sim.now} ms: ${summary(sim)}`);
    assert.deepEqual(sim.errors, []);
    const seeder = sim.nodes.get('seed');
    assert.ok(seeder);
    const seederBlobs = seeder.piecesSent / pieceCount;
    const leecherSent = [...sim.nodes.values()].filter((n) => n !== seeder).reduce((s, n) => s + n.piecesSent, 0);
    console.log(`seeder sent ${seederBlobs.toFixed(2)} blobs, leechers sent ${(leecherSent / pieceCount).toFixed(2)} blobs, done at ${sim.now} ms`);
    assert.ok(seederBlobs < 5, `seeder uploaded ${seederBlobs} blobs`);
    assert.ok(leecherSent > seeder.piecesSent, 'leechers fed each other more than the seeder fed them');
    // Endgame duplicates are bounded: at most endgameThreshold × (endgameMaxRequestsPerPiece − 1) wasted copies per
    // leecher (copies already on the wire when the cancel lands still arrive).
    const wasted = [...sim.nodes.values()].reduce((s, n) => s + n.scheduler.stats().wastedPieces, 0);
    assert.ok(sim.trace.some((l) => / cancel /.test(l)), 'endgame cancelled duplicates');
    assert.ok(wasted <= 20 * 4 * 1, `${wasted} wasted pieces`);
    console.log(`wasted ${wasted} of ${20 * pieceCount} piece downloads`);
  });

  test('(c) a peer serving corrupt pieces is blacklisted, never asked again, everyone completes', () => {
    const sim = new Sim({ pieceCount: 20, seed: 3 }, [{ id: 'seed', have: 'all' }, { id: 'evil', have: 'all', corrupt: true }, ...leechers(8)]);
    assert.ok(sim.run(), `not all complete at ${sim.now} ms: ${summary(sim)}`);
    const victims = [...sim.nodes.values()].filter((n) => n.blacklisted.has('evil'));
    assert.ok(victims.length > 0, 'somebody received a corrupt piece');
    for (const n of sim.nodes.values()) assert.deepEqual(n.askedAfterBlacklist, [], `${n.spec.id} asked a blacklisted peer`);
    for (const v of victims) {
      const closes = sim.trace.filter((l) => l.includes(` ${v.spec.id} close evil bad_piece`));
      assert.equal(closes.length, 1, `${v.spec.id} closed evil once`);
      assert.ok(!sim.trace.some((l) => l.includes(` ${v.spec.id} connect evil`) && Number(l.split(' ')[0]) > Number(closes[0]?.split(' ')[0])), 'never redialled');
    }
    for (const n of sim.nodes.values()) if (n.spec.id !== 'evil') assert.ok([...n.content.values()].every(Boolean), `${n.spec.id} holds only good pieces`);
  });

  test('(e) a peer that never answers: its requests time out and are served elsewhere', () => {
    const sim = new Sim(
      // No endgame, so only timeouts can move a piece away from the mute peer.
      { pieceCount: 40, seed: 5, config: { requestTimeoutMs: 300, endgameThreshold: 0 } },
      [{ id: 'mute', have: 'all', silent: true }, { id: 'seed', have: 'all' }, ...leechers(4)],
    );
    assert.ok(sim.run(), `not all complete at ${sim.now} ms: ${summary(sim)}`);
    assert.ok(sim.trace.some((l) => / cancel mute #/.test(l)), 'requests to the mute peer were cancelled');
    assert.ok(sim.trace.some((l) => / close mute unresponsive/.test(l)), 'the mute peer was eventually closed');
  });

  test('(e) a slow uploader: endgame or a short request timeout routes around it; neither → stuck until timeout', () => {
    const finish = (slow: boolean, config: { requestTimeoutMs: number; endgameThreshold: number }): number => {
      const specs: SimNodeSpec[] = [{ id: 'seed', have: 'all' }, ...(slow ? [{ id: 'slow', have: 'all', transferMs: 2_000 } as const] : []), ...leechers(6)];
      // seedFreshFirst off: a complete slow peer would otherwise reject requests for pieces it already sent and so
      // route some of them around itself; this test is about what endgame and timeouts alone do. A long upload queue
      // for the same reason: a full short queue (the default) also turns requests away from the slow peer.
      const sim = new Sim({ pieceCount: 40, seed: 3, config: { ...config, seedFreshFirst: false, maxUploadQueue: 64 } }, specs);
      assert.ok(sim.run(), `not all complete at ${sim.now} ms: ${summary(sim)}`);
      return sim.now;
    };
    const baseline = finish(false, { requestTimeoutMs: 10_000, endgameThreshold: 4 });
    const withEndgame = finish(true, { requestTimeoutMs: 10_000, endgameThreshold: 4 });
    const withTimeouts = finish(true, { requestTimeoutMs: 500, endgameThreshold: 0 });
    const withNeither = finish(true, { requestTimeoutMs: 10_000, endgameThreshold: 0 });
    console.log(`slow uploader: baseline ${baseline} ms, endgame ${withEndgame} ms, 500 ms timeouts ${withTimeouts} ms, neither ${withNeither} ms`);
    assert.ok(withEndgame < 2 * baseline);
    assert.ok(withTimeouts < 2 * baseline);
    assert.ok(withNeither >= 10_000);
  });

  test('(g) connection cap and upload slot cap hold throughout a busy swarm', () => {
    const sim = new Sim({ pieceCount: 30, seed: 7, config: { maxConnections: 4, maxUploadSlots: 2 } }, [{ id: 'seed', have: 'all' }, ...leechers(15)]);
    assert.ok(sim.run(), `not all complete at ${sim.now} ms: ${summary(sim)}`);
    for (const n of sim.nodes.values()) {
      assert.ok(n.peakConnected <= 4, `${n.spec.id} had ${n.peakConnected} connections`);
      assert.ok(n.peakUploads <= 2, `${n.spec.id} had ${n.peakUploads} uploads at once`);
    }
    assert.ok(sim.trace.some((l) => l.includes('close') && l.includes('capacity')), 'the cap actually refused somebody');
  });

  test('(i) a slow seeder sends each piece about once (seedFreshFirst) and the swarm finishes sooner', () => {
    // The seeder's upload is the bottleneck: 8× slower per piece than a leecher's. T* ≈ pieceCount × 160 ms / 4 slots.
    const pieceCount = 32;
    const run = (seed: number, seedFreshFirst: boolean): { blobs: number; done: number; sim: Sim } => {
      // A long upload queue, so that every rejection checked below is a fresh-first one, not a full queue's.
      const sim = new Sim({ pieceCount, seed, config: { seedFreshFirst, maxUploadQueue: 64 } }, [{ id: 'seed', have: 'all', transferMs: 160 }, ...leechers(8)]);
      assert.ok(sim.run(), `not all complete at ${sim.now} ms: ${summary(sim)}`);
      assert.deepEqual(sim.errors, []);
      return { blobs: (sim.nodes.get('seed')?.piecesSent ?? 0) / pieceCount, done: sim.now, sim };
    };
    for (const seed of [1, 2, 3, 4]) {
      const on = run(seed, true);
      const off = run(seed, false);
      console.log(`slow seeder, seed ${seed}: fresh first ${on.blobs.toFixed(2)} × S in ${on.done} ms; FIFO ${off.blobs.toFixed(2)} × S in ${off.done} ms`);
      assert.ok(on.blobs <= 1.3, `seeder sent ${on.blobs} × S`);
      assert.ok(on.done < off.done, 'fresh first finishes sooner');
      // A leecher the seeder turned away backs off from the seeder only (rejectBackoffMs = 500): within that time it
      // asks another leecher for the piece, and a leecher delivers it.
      const rows = on.sim.trace.map((l) => l.split(' '));
      const rejections = rows.filter((r) => r[1] === 'seed' && r[2] === 'rejectRequest');
      assert.ok(rejections.length > 0, 'the seeder redirected duplicates');
      for (const [t, , , leecher, piece] of rejections) {
        const askedElsewhere = rows.some((r) => r[1] === leecher && r[2] === 'request' && r[3] !== 'seed' && r[4] === piece && Number(r[0]) >= Number(t) && Number(r[0]) - Number(t) < 500);
        assert.ok(askedElsewhere, `${leecher} asked another leecher for ${piece} within the backoff`);
        assert.ok(rows.some((r) => r[1] !== 'seed' && r[2] === 'sendPiece' && r[3] === leecher && r[4] === piece), `a leecher sent ${piece} to ${leecher}`);
      }
    }
  });

  test('(h) determinism: same seed → identical command trace; another seed → a different one', () => {
    const specs = (): SimNodeSpec[] => [{ id: 'seed', have: 'all' }, ...leechers(8)];
    const run = (seed: number): string[] => {
      const sim = new Sim({ pieceCount: 16, seed }, specs());
      assert.ok(sim.run());
      return sim.trace;
    };
    const a = run(11);
    assert.deepEqual(run(11), a);
    assert.notDeepEqual(run(12), a);
  });
});
