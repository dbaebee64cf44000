import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PriorityHandoutPolicy, peerClass, type Peer, type Rng } from '../../tracker/handout-policy.ts';

let n = 0;
function peer(over: Partial<Peer> = {}): Peer {
  n++;
  return { peerId: n.toString(16).padStart(40, '0'), address: `10.0.${n >> 8}.${n & 255}`, port: 7000, complete: false, seeder: false, pieces: 0, zone: undefined, ...over };
}

/** Deterministic RNG (mulberry32). */
function seeded(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const policy = new PriorityHandoutPolicy();

describe('default handout policy', () => {
  const caller = peer();
  const completed = [peer({ complete: true }), peer({ complete: true })];
  const seeders = [peer({ seeder: true, complete: true }), peer({ seeder: true, complete: true })];
  const incomplete = [peer(), peer(), peer()];
  const all = [...incomplete, caller, ...seeders, ...completed];

  test('completed peers, then seeders, then incomplete peers', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const out = policy.choose(caller, all, 100, seeded(seed));
      assert.equal(out.length, 7);
      assert.deepEqual(out.map(peerClass), [0, 0, 1, 1, 2, 2, 2]);
    }
  });

  test('never the caller, by id or by endpoint', () => {
    const restarted = peer({ address: caller.address, port: caller.port, complete: true });
    const out = policy.choose(caller, [...all, restarted], 100, seeded(3));
    assert.ok(!out.some((p) => p.peerId === caller.peerId));
    assert.ok(!out.includes(restarted));
    assert.deepEqual(policy.choose(caller, [caller], 10, seeded(1)), []);
  });

  test('bounded by the limit, higher classes kept', () => {
    const out = policy.choose(caller, all, 3, seeded(7));
    assert.deepEqual(out.map(peerClass), [0, 0, 1]);
    assert.deepEqual(policy.choose(caller, all, 0, seeded(7)), []);
  });

  test('randomised within a class, every peer reachable, input untouched', () => {
    const many = Array.from({ length: 50 }, () => peer());
    const copy = [...many];
    const seen = new Map<string, number>();
    const firsts = new Set<string>();
    for (let seed = 1; seed <= 200; seed++) {
      const out = policy.choose(caller, many, 10, seeded(seed));
      assert.equal(new Set(out.map((p) => p.peerId)).size, 10, 'no duplicates');
      firsts.add(out[0]?.peerId ?? '');
      for (const p of out) seen.set(p.peerId, (seen.get(p.peerId) ?? 0) + 1);
    }
    assert.deepEqual(many, copy);
    assert.equal(seen.size, 50, 'every peer is handed out sometimes');
    assert.ok(firsts.size > 20, 'the order varies');
    // 200 × 10 picks over 50 peers: 40 each on average; a fair sampler stays well inside 15..70.
    for (const count of seen.values()) assert.ok(count > 15 && count < 70, `count ${count}`);
  });

  test('same-zone peers first within each class', () => {
    const zoned = { ...caller, zone: 'eu-1a' };
    const pool = [
      peer({ complete: true, zone: 'eu-1b' }), peer({ complete: true, zone: 'eu-1a' }),
      peer({ seeder: true, zone: 'eu-1a' }), peer({ seeder: true }),
      peer({ zone: 'eu-1b' }), peer({ zone: 'eu-1a' }), peer({ zone: 'eu-1a' }),
    ];
    for (let seed = 1; seed <= 10; seed++) {
      const out = policy.choose(zoned, pool, 100, seeded(seed));
      assert.deepEqual(out.map((p) => [peerClass(p), p.zone === 'eu-1a']), [
        [0, true], [0, false], [1, true], [1, false], [2, true], [2, true], [2, false],
      ]);
    }
    // Without a caller zone, zones do not matter: both completed peers can come first.
    const firsts = new Set(Array.from({ length: 30 }, (_, i) => policy.choose(caller, pool, 1, seeded(i + 1))[0]?.zone));
    assert.deepEqual([...firsts].sort(), ['eu-1a', 'eu-1b']);
  });
});
