import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { Bitfield } from '../../agent/swarm/scheduler/bitfield.ts';
import { DEFAULT_SCHEDULER_CONFIG, schedulerConfig, type SchedulerConfig } from '../../agent/swarm/scheduler/config.ts';
import { Availability, rarestFirst, sequential } from '../../agent/swarm/scheduler/piece-picker.ts';
import { Scheduler } from '../../agent/swarm/scheduler/scheduler.ts';
import { ManualClock, seededRng, type SchedulerCommand, type SchedulerEvent } from '../../agent/swarm/scheduler/types.ts';
import { LayerswarmError } from '../../shared/errors.ts';

const PIECE = 1 << 20;

function setup(pieceCount: number, have: number[] | 'all', config: Partial<SchedulerConfig> = {}, seed = 1): {
  s: Scheduler; clock: ManualClock; send: (e: SchedulerEvent) => string[];
} {
  const clock = new ManualClock(0);
  const bits = have === 'all' ? Bitfield.full(pieceCount) : Bitfield.of(pieceCount, have);
  const s = new Scheduler({
    selfId: 'me', blob: { size: pieceCount * PIECE, pieceLength: PIECE, pieceCount }, have: bits, config: schedulerConfig(config), clock, rng: seededRng(seed),
  });
  return { s, clock, send: (e) => s.handle(e).map(show) };
}

function show(c: SchedulerCommand): string {
  return [c.type, 'peerId' in c ? c.peerId : '', 'piece' in c ? `#${c.piece}` : '', 'reason' in c ? c.reason : ''].filter(Boolean).join(' ');
}

const all = (n: number): Bitfield => Bitfield.full(n);
const connected = (peerId: string, bitfield: Bitfield): SchedulerEvent => ({ type: 'peerConnected', peerId, bitfield });
const peers = (...ids: string[]): SchedulerEvent => ({ type: 'peersDiscovered', peers: ids.map((peerId) => ({ peerId, address: `10.0.0.1:${peerId}` })) });
const requests = (out: string[], peer?: string): string[] => out.filter((c) => c.startsWith(`request ${peer ?? ''}`));

describe('Bitfield', () => {
  test('set/clear/has/count and the wire form (MSB first), spare bits and wrong lengths rejected', () => {
    const b = Bitfield.of(10, [0, 3, 9]);
    assert.equal(b.count, 3);
    assert.ok(b.has(3) && !b.has(4) && !b.has(10) && !b.has(-1));
    assert.deepEqual([...b.toBytes()], [0b1001_0000, 0b0100_0000]);
    assert.equal(b.set(3), false);
    assert.equal(b.clear(3), true);
    assert.equal(b.count, 2);
    const back = Bitfield.fromBytes(Uint8Array.of(0b1001_0000, 0b0100_0000), 10);
    assert.deepEqual([...back.pieces()], [0, 3, 9]);
    assert.throws(() => Bitfield.fromBytes(Uint8Array.of(0, 0b0010_0000), 10), RangeError);
    assert.throws(() => Bitfield.fromBytes(Uint8Array.of(0), 10), RangeError);
    assert.throws(() => b.set(10), RangeError);
    assert.ok(Bitfield.full(9).complete);
  });
});

describe('scheduler config and injected RNG', () => {
  test('defaults follow Kraken (10 conns, pipeline 3); bad values throw CONFIG_INVALID', () => {
    assert.equal(DEFAULT_SCHEDULER_CONFIG.maxConnections, 10);
    assert.equal(DEFAULT_SCHEDULER_CONFIG.pipelineDepth, 3);
    assert.equal(schedulerConfig({ pipelineDepth: 5 }).pipelineDepth, 5);
    assert.throws(() => schedulerConfig({ pipelineDepth: 0 }), (e: unknown) => e instanceof LayerswarmError && e.code === 'CONFIG_INVALID' && /pipelineDepth/.test(e.message));
    assert.throws(() => schedulerConfig({ requestTimeoutMs: 1.5 }), LayerswarmError);
    assert.equal(DEFAULT_SCHEDULER_CONFIG.seedFreshFirst, true);
    assert.throws(() => schedulerConfig({ seedFreshFirst: 'yes' as unknown as boolean }), (e: unknown) => e instanceof LayerswarmError && /seedFreshFirst/.test(e.message));
  });

  test('seededRng is deterministic and in [0, 1)', () => {
    const a = seededRng(42);
    const b = seededRng(42);
    const xs = Array.from({ length: 1000 }, () => a.next());
    assert.deepEqual(Array.from({ length: 1000 }, () => b.next()), xs);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.notEqual(seededRng(43).next(), xs[0]);
  });
});

describe('(f) rarest-first piece selection', () => {
  test('picks the least available candidates; ties broken by the RNG, reproducibly', () => {
    const availability = new Availability(6);
    for (const [piece, n] of [[0, 3], [1, 1], [2, 2], [3, 1], [4, 5], [5, 1]] as const) for (let i = 0; i < n; i++) availability.increment(piece);
    const pick = (seed: number, limit: number, isCandidate = (_: number): boolean => true): number[] =>
      rarestFirst.pick({ pieces: [0, 1, 2, 3, 4, 5], limit, isCandidate, availability, rng: seededRng(seed) });
    assert.deepEqual(new Set(pick(1, 3)), new Set([1, 3, 5]));
    assert.deepEqual(pick(1, 4).slice(3), [2]);
    assert.deepEqual(pick(1, 2, (p) => p !== 1 && p !== 3 && p !== 5), [2, 0]);
    assert.deepEqual(pick(9, 1), pick(9, 1));
    const firsts = new Set(Array.from({ length: 100 }, (_, seed) => pick(seed, 1)[0]));
    assert.deepEqual(firsts, new Set([1, 3, 5]), 'every tied piece gets picked for some seed');
    assert.deepEqual(sequential.pick({ pieces: [5, 4, 3, 2, 1, 0], limit: 2, isCandidate: (p) => p > 0, availability, rng: seededRng(1) }), [1, 2]);
  });

  test('through the scheduler: each new peer is asked for the piece fewest peers have', () => {
    const { send } = setup(4, [], { pipelineDepth: 1 });
    send(connected('c', Bitfield.of(4, [0, 1])));
    assert.deepEqual(send(connected('b', Bitfield.of(4, [0, 1, 2]))), ['request b #2']);
    assert.deepEqual(send(connected('a', all(4))), ['request a #3']);
  });
});

describe('scheduler roles', () => {
  test('a complete peer never requests or dials; it serves and closes other complete peers', () => {
    const { send } = setup(4, 'all');
    assert.deepEqual(send(peers('x', 'y')), []);
    assert.deepEqual(send(connected('x', new Bitfield(4))), []);
    assert.deepEqual(send({ type: 'have', peerId: 'x', piece: 2 }), []);
    assert.deepEqual(send({ type: 'requestReceived', peerId: 'x', piece: 1 }), ['sendPiece x #1']);
    assert.deepEqual(send(connected('z', all(4))), ['close z both_complete']);
  });

  test('verified pieces are announced with sendHave to peers lacking them; completion → complete + announce + closes', () => {
    const { send } = setup(2, [0]);
    send(connected('seed', all(2)));
    send(connected('leech', new Bitfield(2)));
    send({ type: 'pieceReceived', peerId: 'seed', piece: 1 });
    assert.deepEqual(send({ type: 'pieceVerified', piece: 1 }), ['sendHave leech #1', 'complete', 'announce completed', 'close seed both_complete']);
  });

  test('announces: started on the first tick, then every announceIntervalMs, seed interval once complete', () => {
    const { send, clock } = setup(1, [], { announceIntervalMs: 5_000, seedAnnounceIntervalMs: 60_000, minAnnounceIntervalMs: 1_000, maxConnections: 2, maxOutboundConnections: 1 });
    assert.deepEqual(send({ type: 'tick' }), ['announce started']);
    // Candidates to dial (a dial in progress fills the outbound share): no early announce.
    assert.deepEqual(send({ type: 'peersDiscovered', peers: [{ peerId: 'p', address: 'h:1' }, { peerId: 'q', address: 'h:2' }] }), ['connect p']);
    clock.advance(4_999);
    assert.deepEqual(send({ type: 'tick' }), []);
    clock.advance(1);
    assert.deepEqual(send({ type: 'tick' }), ['announce periodic']);
    // The dial fails: q is dialled, then q fails too and nobody is left → announce early, minAnnounceIntervalMs after the last.
    assert.deepEqual(send({ type: 'peerClosed', peerId: 'p' }), ['connect q']);
    assert.deepEqual(send({ type: 'peerClosed', peerId: 'q' }), []);
    clock.advance(999);
    assert.deepEqual(send({ type: 'tick' }), []);
    clock.advance(1);
    assert.deepEqual(send({ type: 'tick' }), ['announce periodic']);
    clock.advance(1_000);
    assert.deepEqual(send({ type: 'tick' }), ['announce periodic']);
    send(connected('s', all(1)));
    send({ type: 'pieceReceived', peerId: 's', piece: 0 });
    send({ type: 'pieceVerified', piece: 0 });
    clock.advance(59_999);
    assert.deepEqual(send({ type: 'tick' }), []);
    clock.advance(1);
    assert.deepEqual(send({ type: 'tick' }), ['announce periodic']);
  });
});

describe('(d) endgame', () => {
  test('last pieces are requested from two peers; the first copy cancels the late duplicate', () => {
    const { s, send } = setup(4, [0, 1], { endgameThreshold: 2 });
    assert.deepEqual(requests(send(connected('a', all(4)))).sort(), ['request a #2', 'request a #3']);
    assert.deepEqual(requests(send(connected('b', all(4)))).sort(), ['request b #2', 'request b #3']);
    assert.ok(s.stats().endgame);
    assert.deepEqual(send({ type: 'pieceReceived', peerId: 'a', piece: 2 }), ['cancel b #2']);
    assert.deepEqual(send({ type: 'pieceReceived', peerId: 'b', piece: 3 }), ['cancel a #3']);
    assert.deepEqual(send({ type: 'pieceReceived', peerId: 'a', piece: 3 }), [], 'a copy that crossed the cancel is only counted');
    assert.equal(s.stats().wastedPieces, 1);
  });

  test('outside endgame a piece is never requested twice', () => {
    const { send } = setup(8, [0, 1], { endgameThreshold: 2 });
    assert.equal(requests(send(connected('a', all(8)))).length, 3);
    assert.equal(requests(send(connected('b', all(8)))).length, 3);
    assert.deepEqual(requests(send(connected('c', all(8)))).length, 0, 'six missing pieces, all already asked for');
  });
});

describe('(e) request timeouts', () => {
  test('expired requests are cancelled and re-requested elsewhere; the slow peer is avoided, then closed', () => {
    const { s, send, clock } = setup(4, [], { requestTimeoutMs: 1_000, pipelineDepth: 2, maxConsecutiveTimeouts: 3, endgameThreshold: 0 });
    const toA = requests(send(connected('a', all(4))));
    const toB = requests(send(connected('b', all(4))));
    assert.equal(toA.length + toB.length, 4);
    clock.set(100); // b answers in 100 ms: 4 × the piece latency stays below requestTimeoutMs
    for (const r of toB) send({ type: 'pieceReceived', peerId: 'b', piece: Number(r.split('#')[1]) });
    clock.set(1_000);
    const out = send({ type: 'tick' });
    const aPieces = toA.map((r) => r.split('#')[1]);
    assert.deepEqual(out.filter((c) => c.startsWith('cancel')).sort(), aPieces.map((p) => `cancel a #${p}`).sort());
    assert.deepEqual(requests(out).sort(), aPieces.map((p) => `request b #${p}`).sort());
    assert.equal(s.peerStats('a')?.timeouts, 2);
    assert.ok(!out.some((c) => c.startsWith('close')), 'two timeouts: not closed yet');
    // The next timeout in a row closes the peer and keeps it away.
    const { send: send2, clock: clock2 } = setup(2, [], { requestTimeoutMs: 100, maxConsecutiveTimeouts: 1, slowPeerBackoffMs: 5_000 });
    send2(connected('slow', all(2)));
    clock2.set(100);
    assert.ok(send2({ type: 'tick' }).includes('close slow unresponsive'));
    assert.deepEqual(send2(connected('slow', all(2))), ['close slow blacklisted']);
    clock2.set(5_100);
    assert.equal(requests(send2(connected('slow', all(2)))).length, 2, 'welcome back after slowPeerBackoffMs');
  });

  test('when pieces take long to arrive, the request timeout grows to 4 piece latencies (never below requestTimeoutMs)', () => {
    const { send, clock } = setup(8, [], { requestTimeoutMs: 1_000, pipelineDepth: 2, endgameThreshold: 0 });
    const first = requests(send(connected('a', all(8))));
    assert.equal(first.length, 2);
    clock.set(800);
    const [, second] = first;
    assert.ok(second);
    send({ type: 'pieceReceived', peerId: 'a', piece: Number(first[0]?.split('#')[1]) }); // latency 800 ms
    clock.set(3_199);
    assert.ok(!send({ type: 'tick' }).some((c) => c.startsWith('cancel')), 'requested at 0: not expired before 4 × 800 ms');
    clock.set(3_200);
    assert.ok(send({ type: 'tick' }).includes(`cancel a #${second.split('#')[1]}`), 'expired at 4 × 800 ms');
  });

  test('a rejected request backs off from that peer and goes elsewhere', () => {
    const { send, clock } = setup(3, [], { pipelineDepth: 1, endgameThreshold: 0 });
    const [first] = requests(send(connected('a', all(3))));
    assert.ok(first);
    const piece = Number(first.split('#')[1]);
    send(connected('b', all(3)));
    const out = send({ type: 'requestRejected', peerId: 'a', piece });
    assert.ok(!out.some((c) => c.startsWith('request a')), 'a is backed off');
    clock.set(500);
    assert.ok(!requests(send({ type: 'tick' }), 'a').includes(`request a #${piece}`), 'b has the piece: a is not asked for it again soon');
  });

  test('a rejection from the only holder: asked again after rejectBackoffMs', () => {
    const { send, clock } = setup(1, [], { rejectBackoffMs: 500 });
    send(connected('a', all(1)));
    assert.deepEqual(send({ type: 'requestRejected', peerId: 'a', piece: 0 }), []);
    clock.set(499);
    assert.deepEqual(requests(send({ type: 'tick' })), []);
    clock.set(500);
    assert.deepEqual(requests(send({ type: 'tick' })), ['request a #0']);
  });

  test('once pieces arrive, a rejection costs a quarter of the piece latency, and the piece is avoided for 4 latencies', () => {
    const { send, clock } = setup(6, [], { pipelineDepth: 1, endgameThreshold: 0, rejectBackoffMs: 500, requestTimeoutMs: 10_000 });
    const [first] = requests(send(connected('a', Bitfield.of(6, [0, 1, 2]))));
    assert.ok(first);
    clock.set(200);
    const [second] = requests(send({ type: 'pieceReceived', peerId: 'a', piece: Number(first.split('#')[1]) }), 'a');
    assert.ok(second, 'a delivered in 200 ms and is asked for the next piece');
    const rejected = Number(second.split('#')[1]);
    assert.deepEqual(send({ type: 'requestRejected', peerId: 'a', piece: rejected }), [], 'only a has it: nothing to ask elsewhere');
    clock.set(249);
    assert.deepEqual(requests(send({ type: 'tick' })), [], 'backoff L/4 = 50 ms (not the configured 500)');
    clock.set(250);
    assert.equal(requests(send({ type: 'tick' }), 'a').length, 1, 'asked again after 50 ms');

    // Another holder: the rejecting peer is not asked for that piece for 4 L = 800 ms, but for others after L/4.
    const t = setup(6, [], { pipelineDepth: 1, endgameThreshold: 0 });
    const [x] = requests(t.send(connected('a', all(6))));
    assert.ok(x);
    t.clock.set(200);
    const [y] = requests(t.send({ type: 'pieceReceived', peerId: 'a', piece: Number(x.split('#')[1]) }), 'a');
    assert.ok(y);
    const refused = Number(y.split('#')[1]);
    t.send(connected('b', Bitfield.of(6, [refused])));
    t.send({ type: 'requestRejected', peerId: 'a', piece: refused });
    t.clock.set(250);
    const retry = requests(t.send({ type: 'tick' }), 'a');
    assert.equal(retry.length, 1);
    assert.notEqual(retry[0], `request a #${refused}`, 'not the refused piece within 800 ms');
  });
});

describe('(c) bad pieces', () => {
  test('pieceFailed closes and blacklists the sender, re-requests the piece elsewhere, never redials it', () => {
    const { send, clock } = setup(2, [], { pipelineDepth: 1, blacklistMs: 60_000, endgameThreshold: 0 });
    const [toEvil] = requests(send(connected('evil', all(2))));
    assert.ok(toEvil);
    const piece = Number(toEvil.split('#')[1]);
    send(connected('good', all(2)));
    send({ type: 'pieceReceived', peerId: 'evil', piece });
    const out = send({ type: 'pieceFailed', peerId: 'evil', piece });
    assert.deepEqual(out, ['close evil bad_piece'], 'good has no free pipeline slot yet');
    assert.deepEqual(send({ type: 'pieceReceived', peerId: 'good', piece: 1 - piece }), [`request good #${piece}`], 'the failed piece goes to good');
    assert.deepEqual(send(peers('evil')), [], 'not redialled');
    assert.deepEqual(send(connected('evil', all(2))), ['close evil blacklisted']);
    clock.set(60_000);
    assert.deepEqual(send(peers('evil')), ['connect evil'], 'forgiven after blacklistMs');
  });
});

describe('(g) caps', () => {
  test('connection cap: dials stop at maxConnections (self skipped), inbound beyond it is closed, a close frees a slot', () => {
    const { send } = setup(4, [], { maxConnections: 3, maxOutboundConnections: 3 });
    assert.deepEqual(send(peers('me', 'p1', 'p2', 'p3', 'p4', 'p5')), ['connect p1', 'connect p2', 'connect p3']);
    send(connected('p1', new Bitfield(4)));
    assert.deepEqual(send(connected('in', new Bitfield(4))), ['close in capacity']);
    assert.deepEqual(send({ type: 'peerClosed', peerId: 'p2' }), ['connect p4'], 'a failed dial frees its slot');
    assert.deepEqual(send(connected('p1', new Bitfield(4))), ['close p1 duplicate']);
  });

  test('outbound share: our own dials stop at maxOutboundConnections, the rest of the cap takes inbound', () => {
    const { send } = setup(4, [], { maxConnections: 4, maxOutboundConnections: 2 });
    assert.deepEqual(send(peers('p1', 'p2', 'p3')), ['connect p1', 'connect p2']);
    send(connected('p1', new Bitfield(4)));
    assert.deepEqual(send(connected('in1', new Bitfield(4))), []);
    assert.deepEqual(send(connected('in2', new Bitfield(4))), []);
    assert.deepEqual(send(connected('in3', new Bitfield(4))), ['close in3 capacity']);
    assert.deepEqual(send({ type: 'peerClosed', peerId: 'in1' }), [], 'an inbound close frees no outbound slot');
    assert.deepEqual(send({ type: 'peerClosed', peerId: 'p1' }), ['connect p3'], 'an outbound close does');
  });

  test('upload slots: at most maxUploadSlots sends, a bounded queue, rejections beyond, cancel and close drop queued', () => {
    const { s, send } = setup(4, 'all', { maxUploadSlots: 2, maxUploadQueue: 2 });
    for (const p of ['a', 'b', 'c']) send(connected(p, new Bitfield(4)));
    const ask = (peerId: string, piece: number): string[] => send({ type: 'requestReceived', peerId, piece });
    assert.deepEqual(ask('a', 0), ['sendPiece a #0']);
    assert.deepEqual(ask('b', 0), ['sendPiece b #0']);
    assert.deepEqual(ask('c', 0), []);
    assert.deepEqual(ask('c', 1), []);
    assert.deepEqual(ask('a', 1), ['rejectRequest a #1']);
    assert.deepEqual(ask('stranger', 1), ['rejectRequest stranger #1']);
    send({ type: 'cancelReceived', peerId: 'c', piece: 0 });
    assert.deepEqual(send({ type: 'uploadDone', peerId: 'a', piece: 0 }), ['sendPiece c #1']);
    assert.deepEqual(send({ type: 'uploadDone', peerId: 'a', piece: 0 }), [], 'a second uploadDone is ignored');
    assert.equal(s.stats().piecesUploaded, 1);
    assert.equal(s.stats().bytesUploaded, PIECE);
    assert.equal(s.stats().peakUploads, 2);
  });

  test('seedFreshFirst: a complete node serves never-sent pieces first and rejects queued duplicates meanwhile', () => {
    const run = (seedFreshFirst: boolean): string[][] => {
      const { send } = setup(4, 'all', { maxUploadSlots: 1, seedFreshFirst });
      for (const p of ['a', 'b', 'c', 'd']) send(connected(p, new Bitfield(4)));
      const ask = (peerId: string, piece: number): string[] => send({ type: 'requestReceived', peerId, piece });
      const done = (peerId: string, piece: number): string[] => send({ type: 'uploadDone', peerId, piece });
      return [
        ask('a', 0), ask('b', 0), ask('c', 1), // #0 is being sent; b's #0 is a duplicate, c's #1 fresh
        done('a', 0),
        send({ type: 'have', peerId: 'a', piece: 0 }),
        ask('d', 1), // only a duplicate queued (c is getting #1): served rather than idling
        done('c', 1),
      ];
    };
    assert.deepEqual(run(true), [['sendPiece a #0'], [], [], ['rejectRequest b #0', 'sendPiece c #1'], [], [], ['sendPiece d #1']]);
    // Off: plain FIFO, b's duplicate goes first (and 'c #1' was never started, so its uploadDone frees nothing).
    assert.deepEqual(run(false), [['sendPiece a #0'], [], [], ['sendPiece b #0'], [], [], []], 'off: plain FIFO');
  });

  test('seedFreshFirst: the queue is served fewest copies first (sent by us or held by a connected peer)', () => {
    const { send } = setup(4, 'all', { maxUploadSlots: 1 });
    send(connected('a', new Bitfield(4)));
    send(connected('b', Bitfield.of(4, [2])));
    const ask = (peerId: string, piece: number): string[] => send({ type: 'requestReceived', peerId, piece });
    assert.deepEqual(ask('a', 0), ['sendPiece a #0']);
    assert.deepEqual([ask('a', 2), ask('a', 3)], [[], []]);
    assert.deepEqual(send({ type: 'uploadDone', peerId: 'a', piece: 0 }), ['rejectRequest a #2', 'sendPiece a #3'], 'b holds #2');
  });

  test('maxUploadSlots 0: download only, every request rejected', () => {
    const { send } = setup(2, 'all', { maxUploadSlots: 0 });
    send(connected('a', new Bitfield(2)));
    assert.deepEqual(send({ type: 'requestReceived', peerId: 'a', piece: 0 }), ['rejectRequest a #0']);
  });

  test('a leecher without the piece rejects', () => {
    const { send } = setup(4, [1]);
    send(connected('a', new Bitfield(4)));
    assert.deepEqual(send({ type: 'requestReceived', peerId: 'a', piece: 0 }), ['rejectRequest a #0']);
    assert.deepEqual(send({ type: 'requestReceived', peerId: 'a', piece: 1 }), ['sendPiece a #1']);
  });
});

describe('idle connections', () => {
  test('closed after idleTimeoutMs only when someone waits for the slot (or we seed)', () => {
    const { send, clock } = setup(4, [0], { maxConnections: 1, idleTimeoutMs: 1_000 });
    send(connected('useless', Bitfield.of(4, [0])));
    clock.set(1_000);
    assert.deepEqual(send({ type: 'tick' }).filter((c) => c.startsWith('close')), [], 'nobody waiting: keep it');
    send(peers('other'));
    assert.deepEqual(send({ type: 'tick' }), ['close useless idle', 'connect other']);
    const seeder = setup(2, 'all', { idleTimeoutMs: 1_000 });
    seeder.send(connected('l', new Bitfield(2)));
    seeder.send({ type: 'requestReceived', peerId: 'l', piece: 0 });
    seeder.clock.set(5_000);
    assert.deepEqual(seeder.send({ type: 'tick' }).filter((c) => c.startsWith('close')), [], 'an upload in progress is activity');
    seeder.send({ type: 'uploadDone', peerId: 'l', piece: 0 });
    seeder.clock.set(5_999);
    assert.deepEqual(seeder.send({ type: 'tick' }).filter((c) => c.startsWith('close')), []);
    seeder.clock.set(6_000);
    assert.deepEqual(seeder.send({ type: 'tick' }).filter((c) => c.startsWith('close')), ['close l idle']);
  });
});

describe('purity', () => {
  test('nothing under agent/swarm/scheduler touches Node I/O, timers, wall time or Math.random', () => {
    const dir = new URL('../../agent/swarm/scheduler/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    assert.ok(files.length >= 10);
    for (const file of files) {
      const code = readFileSync(new URL(file, dir), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      for (const banned of [/from 'node:/, /\bDate\b/, /\bset(Timeout|Interval|Immediate)\b/, /Math\.random/, /\bprocess\./, /\bperformance\./]) {
        assert.doesNotMatch(code, banned, `${file} uses ${banned}`);
      }
      for (const [, from] of code.matchAll(/from '([^']+)'/g)) {
        assert.ok(from?.startsWith('./') || from === '../../../shared/errors.ts' || from === '../../../shared/swarm/metainfo.ts', `${file} imports ${from}`);
      }
    }
  });
});
