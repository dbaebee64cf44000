import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import Fastify from 'fastify';
import { MetainfoRegistry, metainfoWeight, type MetainfoRegistryOptions, type SeederCall } from '../../tracker/metainfo-registry.ts';
import { isTrackerError } from '../../tracker/errors.ts';
import type { Metainfo } from '../../shared/swarm/metainfo.ts';

const hex = (s: string): string => createHash('sha256').update(s).digest('hex');
function meta(i: number, pieces = 2): Metainfo {
  const pieceLength = 1 << 20;
  return { digest: `sha256:${hex(`blob ${i}`)}`, size: pieces * pieceLength - 5, pieceLength, pieceHashes: Array.from({ length: pieces }, (_, k) => hex(`${i}/${k}`)) };
}

function registry(over: Partial<MetainfoRegistryOptions> = {}): { reg: MetainfoRegistry; clock: { now: number }; results: string[] } {
  const clock = { now: 0 };
  const results: string[] = [];
  const reg = new MetainfoRegistry({
    now: () => clock.now, seederTtlMs: 60_000, maxSeeders: 10, seederRequestTimeoutMs: 2000, maxInFlight: 8, cacheBytes: 1 << 20,
    onResult: (r) => results.push(r), ...over,
  });
  return { reg, clock, results };
}

/** Answers after 10 s unless aborted (a ref'd timer: AbortSignal.timeout alone would not keep the loop alive). */
const slowCall: SeederCall = (_seeder, _req, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(meta(99)), 10_000);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    });
  });

describe('metainfo registry', () => {
  test('10 concurrent gets → one seeder call; later gets are hits', async () => {
    const m = meta(1);
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const call: SeederCall = async (_seeder, req) => {
      calls++;
      assert.equal(req.repository, 'library/app');
      await gate;
      return m;
    };
    const { reg, results } = registry({ call });
    reg.registerSeeder('s1', 'http://127.0.0.1:1/');
    const gets = Array.from({ length: 10 }, () => reg.get({ digest: m.digest, repository: 'library/app' }));
    await new Promise((r) => setImmediate(r));
    assert.equal(reg.inFlightCount, 1);
    release();
    for (const got of await Promise.all(gets)) assert.deepEqual(got, m);
    assert.equal(calls, 1);
    assert.deepEqual(await reg.get({ digest: m.digest, repository: 'library/app' }), m);
    assert.equal(calls, 1);
    assert.deepEqual(results.sort(), ['hit', ...Array(9).fill('joined'), 'produced'].sort());
    assert.equal(reg.inFlightCount, 0);
  });

  test('seeder failure → SEEDER_FAILED for everyone waiting; a later get retries and succeeds', async () => {
    const m = meta(2);
    let calls = 0;
    const call: SeederCall = async () => {
      calls++;
      if (calls === 1) throw new Error('connection refused');
      return m;
    };
    const { reg } = registry({ call });
    reg.registerSeeder('s1', 'http://127.0.0.1:1');
    const failed = await Promise.allSettled([reg.get({ digest: m.digest, repository: 'a' }), reg.get({ digest: m.digest, repository: 'a' })]);
    for (const r of failed) assert.ok(r.status === 'rejected' && isTrackerError(r.reason, 'SEEDER_FAILED') && /connection refused/.test(String(r.reason.message)));
    assert.deepEqual(await reg.get({ digest: m.digest, repository: 'a' }), m);
    assert.equal(calls, 2);
  });

  test('no seeder, slow seeder, invalid or wrong metainfo: clear errors', async () => {
    const m = meta(3);
    const none = registry().reg;
    await assert.rejects(none.get({ digest: m.digest, repository: 'a' }), (e) => isTrackerError(e, 'NO_SEEDER') && e.status === 503);

    const slow = registry({ seederRequestTimeoutMs: 50, call: slowCall }).reg;
    slow.registerSeeder('s', 'http://x.invalid');
    await assert.rejects(slow.get({ digest: m.digest, repository: 'a' }), (e) => isTrackerError(e, 'SEEDER_TIMEOUT') && e.status === 504);

    const junk = registry({ call: async () => ({ ...m, pieceHashes: ['nope'] }) }).reg;
    junk.registerSeeder('s', 'http://x.invalid');
    await assert.rejects(junk.get({ digest: m.digest, repository: 'a' }), (e) => isTrackerError(e, 'METAINFO_INVALID') && e.status === 502);

    const other = registry({ call: async () => meta(4) }).reg;
    other.registerSeeder('s', 'http://x.invalid');
    await assert.rejects(other.get({ digest: m.digest, repository: 'a' }), (e) => isTrackerError(e, 'METAINFO_INVALID') && /asked for/.test(e.message));
  });

  test('a caller that gives up does not cancel the production others wait for', async () => {
    const m = meta(5);
    const call: SeederCall = () => new Promise((resolve) => setTimeout(() => resolve(m), 30));
    const { reg } = registry({ call });
    reg.registerSeeder('s', 'http://x.invalid');
    const ac = new AbortController();
    const impatient = reg.get({ digest: m.digest, repository: 'a' }, ac.signal);
    const patient = reg.get({ digest: m.digest, repository: 'a' });
    ac.abort();
    await assert.rejects(impatient, (e) => isTrackerError(e, 'ABORTED'));
    assert.deepEqual(await patient, m);
  });

  test('bounded: productions in flight, known metainfo by bytes (LRU), seeders by count and TTL', async () => {
    const { reg, clock } = registry({ maxInFlight: 1, cacheBytes: 3 * metainfoWeight(meta(0, 100)), call: () => new Promise(() => undefined) });
    reg.registerSeeder('s', 'http://x.invalid');
    void reg.get({ digest: meta(6).digest, repository: 'a' }).catch(() => undefined);
    await assert.rejects(reg.get({ digest: meta(7).digest, repository: 'a' }), (e) => isTrackerError(e, 'TRACKER_FULL'));

    for (let i = 10; i < 13; i++) reg.put(meta(i, 100));
    assert.ok(reg.peek(meta(10, 100).digest));
    reg.put(meta(13, 100)); // evicts the least recently used (peek does not count as a use)
    assert.equal(reg.knownCount, 3);
    assert.equal(reg.peek(meta(10, 100).digest), undefined);
    assert.ok(reg.knownBytes <= 3 * metainfoWeight(meta(0, 100)));

    for (let i = 1; i < 10; i++) reg.registerSeeder(`s${i}`, 'http://x.invalid');
    assert.throws(() => reg.registerSeeder('one-too-many', 'http://x.invalid'), (e) => isTrackerError(e, 'TRACKER_FULL'));
    clock.now += 60_000;
    assert.equal(reg.seeders().length, 0);
    reg.registerSeeder('one-too-many', 'http://x.invalid/');
    assert.deepEqual(reg.seeders().map((s) => s.url), ['http://x.invalid']);
    await reg.close();
  });

  test('put: validated, idempotent, conflicting metainfo refused', () => {
    const { reg } = registry();
    const m = meta(20);
    assert.deepEqual(reg.put(m), { meta: m, created: true });
    assert.equal(reg.put(structuredClone(m)).created, false);
    assert.throws(() => reg.put({ ...m, pieceHashes: [hex('x'), hex('y')] }), (e) => isTrackerError(e, 'METAINFO_CONFLICT') && e.status === 409);
    assert.throws(() => reg.put({ ...m, size: -1 }), (e) => isTrackerError(e, 'METAINFO_INVALID') && e.status === 400);
  });

  test('rendezvous choice: a digest sticks to one seeder', () => {
    const { reg } = registry();
    for (const id of ['a', 'b', 'c']) reg.registerSeeder(id, `http://${id}.invalid`);
    const first = new Map<string, string>();
    for (let i = 0; i < 30; i++) first.set(meta(i).digest, reg.seedersFor(meta(i).digest)[0]?.id ?? '');
    assert.equal(new Set(first.values()).size, 3, 'digests spread over seeders');
    reg.registerSeeder('b', 'http://b.invalid'); // heartbeat changes nothing
    for (const [digest, id] of first) assert.equal(reg.seedersFor(digest)[0]?.id, id);
  });

  test('over HTTP: POST {seeder}/v1/metainfo; error statuses reported', async () => {
    const m = meta(30);
    const seeder = Fastify();
    const bodies: unknown[] = [];
    seeder.post('/v1/metainfo', async (request, reply) => {
      bodies.push(request.body);
      const body = request.body as { repository: string };
      if (body.repository === 'broken') return reply.code(500).send({ errors: [{ code: 'UNKNOWN', message: 'disk on fire' }] });
      return m;
    });
    await seeder.listen({ host: '127.0.0.1', port: 0 });
    const { port } = seeder.server.address() as { port: number };
    const { reg } = registry();
    try {
      reg.registerSeeder('s', `http://127.0.0.1:${port}`);
      await assert.rejects(reg.get({ digest: m.digest, repository: 'broken' }), (e) => isTrackerError(e, 'SEEDER_FAILED') && /500.*disk on fire/.test(e.message));
      assert.deepEqual(await reg.get({ digest: m.digest, repository: 'library/app', registry: 'registry.example:5000' }), m);
      assert.deepEqual(bodies[1], { digest: m.digest, repository: 'library/app', registry: 'registry.example:5000' });
    } finally {
      await reg.close();
      await seeder.close();
    }
  });
});
