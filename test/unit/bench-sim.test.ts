/** The rollout simulator (bench/sim): completion, consistency, determinism, corrupt peers, analytic cases. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkConsistency } from '../../bench/lib/rollout-results.ts';
import { EventQueue, IndexedHeap } from '../../bench/sim/event-queue.ts';
import { Network, netNode } from '../../bench/sim/network.ts';
import { DEFAULT_SIM_OPTIONS, parseSimArgs, scaleLayers, type SimOptions } from '../../bench/sim/options.ts';
import { buildResults } from '../../bench/sim/results.ts';
import { SimHost, SwarmPeer, type World } from '../../bench/sim/sim-node.ts';
import { SimTracker } from '../../bench/sim/sim-tracker.ts';
import { layerShapes, simulate } from '../../bench/sim/simulation.ts';
import { schedulerConfig } from '../../agent/swarm/scheduler/config.ts';
import { DEFAULT_PIECE_POLICY } from '../../shared/swarm/metainfo.ts';

const MiB = 2 ** 20;
const ctx = { command: 'test', startedAt: new Date(0), machine: {} };
/** Every byte a node received was sent by another node or by the seeder. */
function assertBytesAddUp(r: ReturnType<typeof buildResults>): void {
  const down = r.nodeBytesDown.reduce((x, y) => x + y, 0);
  const up = r.nodeBytesUp.reduce((x, y) => x + y, 0);
  assert.ok(Math.abs(down - (up + r.originEgressBytes)) < 1, `down ${down} = up ${up} + seeder ${r.originEgressBytes}`);
}
const opts = (o: Partial<SimOptions>): SimOptions => ({ ...DEFAULT_SIM_OPTIONS, layers: [16 * MiB], quiet: true, ...o });

describe('bench/sim event queue and network', () => {
  it('runs events in time order, FIFO among equal times', () => {
    const q = new EventQueue();
    const seen: string[] = [];
    q.at(2, () => seen.push('c'));
    q.at(1, () => seen.push('a'));
    q.at(1, () => seen.push('b'));
    q.at(0.5, () => seen.push('0'));
    while (q.size > 0) q.pop().run();
    assert.deepEqual(seen, ['0', 'a', 'b', 'c']);
  });

  it('keeps an indexed heap ordered through updates and removals', () => {
    const h = new IndexedHeap<{ key: number; id: number; heapIndex: number }>();
    const items = Array.from({ length: 50 }, (_, id) => ({ key: (id * 37) % 50, id, heapIndex: -1 }));
    for (const it of items) h.upsert(it);
    for (const it of items.slice(0, 10)) {
      it.key = 100 - it.id;
      h.upsert(it);
    }
    for (const it of items.slice(10, 20)) h.remove(it);
    const out: number[] = [];
    for (let top = h.peek(); top !== undefined; top = h.peek()) {
      out.push(top.key);
      h.remove(top);
    }
    assert.equal(out.length, 40);
    assert.deepEqual(out, [...out].sort((a, b) => a - b));
  });

  it('shares links fairly: two flows from one uplink, one flow held back downstream', () => {
    const net = new Network();
    const src = netNode(100e6, 100e6);
    const fast = netNode(100e6, 100e6);
    const slow = netNode(10e6, 10e6);
    const done: Record<string, number> = {};
    net.start(0, src, fast, 100e6, () => (done['fast'] = net.peekTime()));
    net.start(0, src, slow, 10e6, () => (done['slow'] = 1));
    // slow gets 10 MB/s (its downlink), fast the remaining 90 MB/s of the uplink (water-filling, not 50/50)
    const times: number[] = [];
    while (net.activeFlows > 0) {
      times.push(net.peekTime());
      net.completeNext();
    }
    assert.ok(Math.abs((times[0] as number) - 1000) < 1, `slow flow done at ${times[0]} ms`);
    // fast: 90 MB in the first second, then 10 MB at 100 MB/s → 1.1 s
    assert.ok(Math.abs((times[1] as number) - 1100) < 1, `fast flow done at ${times[1]} ms`);
  });
});

describe('bench/sim rollout', () => {
  it('N = 50: every node completes, results are consistent, bytes add up, deterministic', () => {
    const o = opts({ nodes: 50, layers: [12 * MiB, 6 * MiB], seed: 7 });
    const a = buildResults(simulate(o), ctx);
    assert.equal(a.completed, 50);
    assert.deepEqual(checkConsistency(a), []);
    assertBytesAddUp(a);
    assert.ok(a.originEgressRatio >= 1, 'the seeder sent every piece at least once');
    for (const d of a.nodeBytesDown) assert.ok(d >= a.imageBytes);
    const b = buildResults(simulate(o), ctx);
    assert.deepEqual(b.nodeSeconds, a.nodeSeconds);
    assert.deepEqual(b.nodeBytesUp, a.nodeBytesUp);
    assert.equal(b.originEgressBytes, a.originEgressBytes);
    const c = buildResults(simulate({ ...o, seed: 8 }), ctx);
    assert.notDeepEqual(c.nodeSeconds, a.nodeSeconds, 'another seed gives another run');
  });

  it('corrupt nodes are detected and blacklisted, and every node still completes', () => {
    const run = simulate(opts({ nodes: 30, corruptFraction: 0.2, seed: 3 }));
    const r = buildResults(run, ctx);
    assert.equal(r.completed, 30);
    assert.deepEqual(checkConsistency(r), []);
    assert.ok(run.counters.badPieces > 0, 'corrupt pieces were sent');
    assert.ok((run.counters.closes['bad_piece'] ?? 0) > 0, 'their senders were closed as bad_piece (blacklisted)');
    assert.equal(run.counters.closes['bad_piece'], run.counters.badPieces, 'one bad piece per blacklisting: no second piece from a blacklisted peer');
  });

  it('1 seeder → 1 node: S / min(B_s, B) plus a little latency', () => {
    const S = 32 * MiB;
    for (const [bs, b] of [[100e6, 50e6], [50e6, 100e6]] as const) {
      const r = buildResults(simulate(opts({ nodes: 1, layers: [S], seederRate: bs, nodeRate: b, latencyMs: 1, connectMs: 2 })), ctx);
      const ideal = S / Math.min(bs, b);
      assert.ok(r.maxSeconds >= ideal, `${r.maxSeconds} ≥ ${ideal}`);
      assert.ok(r.maxSeconds <= ideal * 1.03 + 0.02, `${r.maxSeconds} ≈ ${ideal}`);
      assert.equal(r.originEgressRatio, 1);
    }
  });

  it('link model limiter: 1 seeder → 1 node at S / min(B_s, B); N = 40 completes with consistent bytes', () => {
    const S = 8 * MiB;
    for (const [bs, b] of [[100e6, 50e6], [50e6, 100e6]] as const) {
      const r = buildResults(simulate(opts({ nodes: 1, layers: [S], seederRate: bs, nodeRate: b, latencyMs: 1, connectMs: 2, linkModel: 'limiter' })), ctx);
      const ideal = S / Math.min(bs, b);
      assert.ok(r.maxSeconds >= ideal, `${r.maxSeconds} ≥ ${ideal}`);
      assert.ok(r.maxSeconds <= ideal * 1.05 + 0.02, `${r.maxSeconds} ≈ ${ideal}`);
      assert.equal(r.originEgressRatio, 1);
    }
    const o = opts({ nodes: 40, layers: [4 * MiB, 2 * MiB], nodeRate: 4e6, seederRate: 32e6, seed: 5, linkModel: 'limiter' });
    const a = buildResults(simulate(o), ctx);
    assert.equal(a.completed, 40);
    assert.deepEqual(checkConsistency(a), []);
    assertBytesAddUp(a);
    const fair = buildResults(simulate({ ...o, linkModel: 'fair' }), ctx);
    assert.notDeepEqual(fair.nodeSeconds, a.nodeSeconds, 'the link model changes the run');
    const parsed = parseSimArgs(['--link-model', 'limiter']);
    assert.ok(!parsed.help);
    assert.equal(parsed.options.linkModel, 'limiter');
    assert.throws(() => parseSimArgs(['--link-model', 'nic']), /--link-model/);
  });

  it('a few nodes and a very fast seeder with enough upload slots: about S / B', () => {
    // With the default maxUploadSlots (4) a seeder serves at most 4 receivers at once, each at ≤ B, however fast its
    // link: 1.65–1.8 × S/B here. With slots for every request the fluid figure S/B is approached.
    const S = 32 * MiB;
    const B = 50e6;
    const r = buildResults(simulate(opts({ nodes: 6, layers: [S], seederRate: 100 * B, nodeRate: B, scheduler: { maxUploadSlots: 32 } })), ctx);
    assert.equal(r.completed, 6);
    assert.ok(r.p50Seconds >= S / B && r.maxSeconds <= 1.3 * (S / B), `p50 ${r.p50Seconds}, max ${r.maxSeconds} vs S/B ${S / B}`);
  });
});

describe('bench/sim options', () => {
  it('parses sizes, rates and scheduler overrides', () => {
    const p = parseSimArgs(['--nodes', '20', '--layers', '64MiB,32MiB', '--node-rate', '100MiB', '--seeder-rate', '1e9', '--pipeline-depth', '5', '--seed-fresh-first', 'false']);
    assert.ok(!p.help);
    assert.equal(p.options.nodes, 20);
    assert.deepEqual(p.options.layers, [64 * MiB, 32 * MiB]);
    assert.equal(p.options.nodeRate, 100 * MiB);
    assert.equal(p.options.seederRate, 1e9);
    assert.deepEqual(p.options.scheduler, { pipelineDepth: 5, seedFreshFirst: false });
    assert.throws(() => parseSimArgs(['--nodes', '0']), /--nodes/);
    assert.deepEqual(scaleLayers([2, 1, 1], 1000), [500, 250, 250]);
  });

  it('--project: the N × size grid in order, or explicit --project-points', () => {
    const GiB = 2 ** 30;
    const grid = parseSimArgs(['--project', '--project-nodes', '10,20', '--project-sizes', '1GiB,4GiB']);
    assert.ok(!grid.help);
    assert.deepEqual(grid.project?.points, [{ nodes: 10, imageBytes: GiB }, { nodes: 10, imageBytes: 4 * GiB }, { nodes: 20, imageBytes: GiB }, { nodes: 20, imageBytes: 4 * GiB }]);
    const some = parseSimArgs(['--project', '--project-points', '1000x1GiB, 1000x10GiB,5000x1GiB']);
    assert.ok(!some.help);
    assert.deepEqual(some.project?.points, [{ nodes: 1000, imageBytes: GiB }, { nodes: 1000, imageBytes: 10 * GiB }, { nodes: 5000, imageBytes: GiB }]);
    assert.throws(() => parseSimArgs(['--project', '--project-points', '1000-1GiB']), /--project-points/);
  });

  it('the event queue keeps (time, insertion) order through growth and interleaved pops', () => {
    const q = new EventQueue();
    const seen: number[] = [];
    const expected: Array<[number, number]> = [];
    let id = 0;
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 700; i++) {
        const at = round * 10 + ((i * 7919) % 13);
        const me = id++;
        expected.push([at, me]);
        q.at(at, () => seen.push(me));
      }
      for (let i = 0; i < 300; i++) q.popRun()();
    }
    while (q.size > 0) q.popRun()();
    assert.equal(seen.length, expected.length);
    // Events popped later were never earlier than those popped before them in the same drain; within one time, FIFO.
    const byId = new Map(expected.map(([at, me]) => [me, at]));
    for (let i = 1; i < seen.length; i++) {
      const a = byId.get(seen[i - 1] as number) as number;
      const b = byId.get(seen[i] as number) as number;
      if (a === b) assert.ok((seen[i - 1] as number) < (seen[i] as number), 'FIFO among equal times');
    }
  });
});

describe('bench/sim link model limiter: every message is a frame through both limiters', () => {
  /** One seeder and one node on a bare World; `busyUntilMs` pre-books the node's upload limiter. Returns when the node completed the layer (ms). */
  function run(linkModel: 'fair' | 'limiter', busyUntilMs: number): number {
    let now = 0;
    const queue = new EventQueue();
    const tracker = new SimTracker({ now: () => now, rng: () => 0.5, handoutSize: 10, peerTtlMs: 30_000, maxPeersPerSwarm: 100 });
    const [layer] = layerShapes([4 * 32 * 1024], { ...DEFAULT_PIECE_POLICY, minPieceLength: 32 * 1024, maxPieceLength: 32 * 1024 });
    assert.ok(layer);
    let doneAt: number | undefined;
    const world: World = {
      clock: { now: () => now }, queue, net: new Network(), tracker, latencyMs: 1, connectMs: 2, linkModel,
      peers: [new Map()], links: [new Map()], counters: { schedulerEvents: 0, commands: 0, closes: {}, badPieces: 0, abortedFlowBytes: 0 },
      layerComplete(peer) {
        if (peer.host.kind === 'node') doneAt ??= now;
      },
    };
    const config = schedulerConfig();
    const seederHost = new SimHost({ index: 0, kind: 'seeder', net: netNode(1e9, 1e9), corrupt: false, slow: false, startAt: 0, layers: 1 });
    const nodeHost = new SimHost({ index: 1, kind: 'node', net: netNode(32 * 1024, 32 * 1024), corrupt: false, slow: false, startAt: 0, layers: 1 });
    nodeHost.upFreeAt = busyUntilMs; // as if it had this long of piece frames queued for other peers
    for (const host of [seederHost, nodeHost]) {
      host.online = true;
      const peer = new SwarmPeer(world, host, layer, config, host.index + 1);
      world.peers[0]?.set(peer.id, peer);
      const tick = (): void => {
        peer.handle({ type: 'tick' });
        if (doneAt === undefined) queue.at(now + 250, tick);
      };
      queue.at(host.index, tick); // the seeder announces first
    }
    const net = world.net;
    while (doneAt === undefined && now < 120_000) {
      const tF = net.peekTime();
      const tE = queue.peekTime();
      now = Math.min(tF, tE);
      if (tF <= tE) net.completeNext();
      else queue.popRun()();
    }
    assert.ok(doneAt !== undefined, 'the node completed');
    return doneAt;
  }

  it("a node's requests wait behind the frames already in its upload limiter (not in the fair model)", () => {
    const idle = run('limiter', 0);
    assert.ok(idle >= 4000 && idle < 5000, `4 pieces at 1 piece/s: ${idle} ms`);
    const busy = run('limiter', 10_000);
    assert.ok(busy >= 10_000 + 4000, `no request leaves before 10 s, then 4 pieces: ${busy} ms`);
    assert.ok(run('fair', 10_000) < 5000, 'the fair model does not limit messages');
  });
});
