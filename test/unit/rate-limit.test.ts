/**
 * TokenBucket (shared/wire/rate-limit.ts) on a fake clock: steady rate, burst, splitting of large takes, FIFO,
 * abort, unlimited; LimitedTransport (shared/wire/limited-transport.ts): one bucket shared by two connections halves
 * each one's throughput (fake clock), and real-time sanity checks over MemoryTransport.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { isLayerswarmError } from '../../shared/errors.ts';
import type { Received } from '../../shared/wire/codec.ts';
import { LimitedTransport } from '../../shared/wire/limited-transport.ts';
import { MemoryNetwork, MemoryTransport } from '../../shared/wire/memory-transport.ts';
import { TokenBucket, type Sleep } from '../../shared/wire/rate-limit.ts';
import type { Connection, Transport } from '../../shared/wire/transport.ts';
import { handshake } from './transport-conformance.ts';

/** A manual clock: sleeps wait until advance() moves time past them. */
class FakeClock {
  time = 0;
  readonly #timers: { at: number; resolve: () => void }[] = [];
  readonly sleeps: number[] = [];

  readonly now = (): number => this.time;

  readonly sleep: Sleep = (ms, signal) =>
    new Promise<void>((resolve) => {
      this.sleeps.push(ms);
      const timer = { at: this.time + ms, resolve };
      this.#timers.push(timer);
      signal.addEventListener(
        'abort',
        () => {
          const i = this.#timers.indexOf(timer);
          if (i >= 0) this.#timers.splice(i, 1);
          resolve();
        },
        { once: true },
      );
    });

  /** Let promise chains (and in-memory pipes) run to quiescence. */
  async settle(): Promise<void> {
    for (let i = 0; i < 20; i++) await tick();
  }

  /** Move time forward by `ms`, firing due timers in order and settling after each. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    await this.settle();
    for (;;) {
      let next: { at: number; resolve: () => void } | undefined;
      for (const t of this.#timers) if (t.at <= end && (!next || t.at < next.at)) next = t;
      if (!next) break;
      this.time = Math.max(this.time, next.at);
      this.#timers.splice(this.#timers.indexOf(next), 1);
      next.resolve();
      await this.settle();
    }
    this.time = end;
    await this.settle();
  }
}

function bucket(clock: FakeClock, rate: number, burst: number): TokenBucket {
  return new TokenBucket({ rate, burst, now: clock.now, sleep: clock.sleep });
}

/** Record when (fake ms) a take resolves or rejects. */
function timed(clock: FakeClock, p: Promise<void>): { at?: number; error?: unknown } {
  const out: { at?: number; error?: unknown } = {};
  p.then(
    () => (out.at = clock.time),
    (error: unknown) => {
      out.at = clock.time;
      out.error = error;
    },
  );
  return out;
}

describe('TokenBucket (fake clock)', () => {
  test('steady rate: back-to-back takes complete at rate after the initial burst', async () => {
    const clock = new FakeClock();
    const b = bucket(clock, 1000, 100); // 1 byte per ms
    const times: number[] = [];
    const run = (async () => {
      for (let i = 0; i < 10; i++) {
        await b.take(100);
        times.push(clock.time);
      }
    })();
    await clock.advance(5000);
    await run;
    assert.deepEqual(times, [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
    // 100 bytes per 100 ms = the rate; no time was spent sleeping more than needed.
    assert.ok(clock.sleeps.every((ms) => ms === 100), String(clock.sleeps));
  });

  test('burst: idle time accumulates at most `burst` tokens', async () => {
    const clock = new FakeClock();
    const b = bucket(clock, 1000, 500);
    await b.take(500); // starts full
    await clock.advance(10_000); // idle far longer than needed to refill
    assert.equal(b.available, 500);
    const first = timed(clock, b.take(500));
    const second = timed(clock, b.take(500));
    await clock.settle();
    assert.equal(first.at, 10_000, 'the burst is available at once');
    assert.equal(second.at, undefined, 'but no more than the burst');
    await clock.advance(499);
    assert.equal(second.at, undefined);
    await clock.advance(1);
    assert.equal(second.at, 10_500);
  });

  test('a take larger than the burst is granted in burst-sized chunks and takes bytes/rate', async () => {
    const clock = new FakeClock();
    const b = bucket(clock, 1000, 100);
    const big = timed(clock, b.take(10_000)); // 100× the burst
    await clock.advance(20_000);
    // 100 bytes at once, then 9 900 bytes at 1 byte/ms.
    assert.equal(big.at, 9_900);
    assert.equal(big.error, undefined);
    assert.ok(clock.sleeps.every((ms) => ms <= 100), 'never waits for more than one burst at a time');
    assert.equal(clock.sleeps.length, 99);
  });

  test('FIFO: later takers, however small, never overtake an earlier waiting one', async () => {
    const clock = new FakeClock();
    const b = bucket(clock, 1000, 100);
    const order: string[] = [];
    const a = timed(clock, b.take(300).then(() => void order.push('a')));
    const s1 = timed(clock, b.take(10).then(() => void order.push('b')));
    const s2 = timed(clock, b.take(10).then(() => void order.push('c')));
    await clock.settle();
    assert.equal(b.waiting, 3);
    await clock.advance(1_000);
    assert.deepEqual(order, ['a', 'b', 'c']);
    assert.equal(a.at, 200); // 100 up front + 200 at 1 byte/ms
    assert.equal(s1.at, 210);
    assert.equal(s2.at, 220);
    // A take arriving while another waits queues behind it even when enough tokens for it are already there.
    await b.take(b.available);
    const head = timed(clock, b.take(100));
    await clock.advance(60); // 60 tokens accrued towards head's 100
    const late = timed(clock, b.take(10));
    await clock.settle();
    assert.equal(late.at, undefined, 'the late small take must not jump the queue');
    await clock.advance(100);
    assert.equal(head.at, 1_100);
    assert.equal(late.at, 1_110);
  });

  test('sharing: two takers on one bucket each get half the rate', async () => {
    const clock = new FakeClock();
    const b = bucket(clock, 1000, 100);
    const granted = [0, 0];
    let running = true;
    const loops = [0, 1].map(async (i) => {
      while (running) {
        await b.take(50);
        if (running) granted[i] = (granted[i] ?? 0) + 50;
      }
    });
    await clock.advance(10_000);
    running = false;
    await clock.advance(1_000);
    await Promise.all(loops);
    // 100 burst + 10 000 ms × 1 byte/ms, split evenly.
    assert.deepEqual(granted, [5_050, 5_050]);
  });

  test('abort: rejects with ABORTED, refunds its granted chunks, and the queue moves on', async () => {
    const clock = new FakeClock();
    const b = bucket(clock, 1000, 100);
    await assert.rejects(b.take(10, AbortSignal.abort()), (e: unknown) => isLayerswarmError(e, 'ABORTED'));
    const ac = new AbortController();
    const big = timed(clock, b.take(1_000, ac.signal)); // gets 100 at once, then waits
    const small = timed(clock, b.take(100));
    await clock.advance(150); // big has 200 granted, 50 tokens accrued towards its next chunk
    ac.abort();
    await clock.settle();
    assert.ok(isLayerswarmError(big.error, 'ABORTED'), String(big.error));
    // The 200 granted bytes were never used: refunded (capped at the burst), so the next take goes at once
    // (without the refund it would wait for 50 more ms).
    assert.equal(small.at, 150);
    assert.equal(b.waiting, 0);
    // A waiter that is not at the head leaves the queue without consuming anything.
    assert.equal(b.available, 0);
    const ac2 = new AbortController();
    const head = timed(clock, b.take(100));
    const middle = timed(clock, b.take(100, ac2.signal));
    const tail = timed(clock, b.take(100));
    await clock.settle();
    ac2.abort();
    await clock.advance(200);
    assert.ok(isLayerswarmError(middle.error, 'ABORTED'));
    assert.equal(middle.at, 150);
    assert.equal(head.at, 250);
    assert.equal(tail.at, 350);
  });

  test('rate 0 or Infinity is unlimited: never sleeps', async () => {
    for (const rate of [0, Infinity]) {
      const b = new TokenBucket({
        rate,
        burst: 1,
        sleep: () => {
          throw new Error('slept');
        },
      });
      assert.equal(b.unlimited, true);
      await b.take(1 << 30);
      await Promise.all(Array.from({ length: 100 }, () => b.take(1 << 24)));
      await assert.rejects(b.take(1, AbortSignal.abort()), (e: unknown) => isLayerswarmError(e, 'ABORTED'));
    }
  });

  test('invalid settings are refused', () => {
    assert.throws(() => new TokenBucket({ rate: -1 }), (e: unknown) => isLayerswarmError(e, 'CONFIG_INVALID'));
    assert.throws(() => new TokenBucket({ rate: Number.NaN }), (e: unknown) => isLayerswarmError(e, 'CONFIG_INVALID'));
    assert.throws(() => new TokenBucket({ rate: 1000, burst: 0 }), (e: unknown) => isLayerswarmError(e, 'CONFIG_INVALID'));
    assert.equal(new TokenBucket({ rate: 1 << 20 }).burst, 1 << 20);
  });
});

async function pairOn(transport: Transport, listenOn: Transport = transport): Promise<{ client: Connection; server: Connection; close: () => Promise<void> }> {
  let accepted!: (c: Connection) => void;
  const server = new Promise<Connection>((resolve) => (accepted = resolve));
  const listener = await listenOn.listen({ host: 'peer', port: 0 }, accepted);
  const client = await transport.connect(listener.address, AbortSignal.timeout(5000));
  return { client, server: await server, close: () => listener.close() };
}

/** Counts payload bytes received on `c` until it ends. */
function countPayload(c: Connection): { bytes: number; done: Promise<void> } {
  const out = { bytes: 0, done: Promise.resolve() };
  out.done = (async () => {
    for await (const r of c.messages()) {
      const payload = (r as Received).payload;
      if (payload) for (const p of payload) out.bytes += p.byteLength;
    }
  })().catch(() => undefined);
  return out;
}

describe('LimitedTransport', () => {
  test('one upload bucket shared by two connections halves each one\'s throughput (fake clock)', async () => {
    const clock = new FakeClock();
    const upload = bucket(clock, 100_000, 16_384); // 100 kB/s
    const network = new MemoryNetwork();
    const limited = new LimitedTransport(new MemoryTransport(network), { upload });
    const plain = new MemoryTransport(network);
    const piece = Buffer.alloc(10_000, 7);

    /** Sends pieces back to back on `n` connections for 1 s of fake time; payload bytes received per connection. */
    async function run(n: number): Promise<number[]> {
      const pairs = await Promise.all(Array.from({ length: n }, () => pairOn(limited, plain)));
      const counters = pairs.map((p) => countPayload(p.server));
      for (const p of pairs) await p.client.send(handshake(64, 1 << 14));
      await clock.advance(1_000); // refill after the handshakes
      let running = true;
      const senders = pairs.map(async (p) => {
        for (let i = 0; running; i++) await p.client.send({ kind: 'piece', piece: i % 64, length: piece.length }, piece).catch(() => undefined);
      });
      for (let t = 0; t < 1_000; t += 10) await clock.advance(10);
      const got = counters.map((c) => c.bytes);
      running = false;
      for (const p of pairs) p.client.close();
      await clock.advance(1_000);
      await Promise.all([...senders, ...counters.map((c) => c.done), ...pairs.map((p) => p.close())]);
      return got;
    }

    const [solo = 0] = await run(1);
    const [a = 0, b = 0] = await run(2);
    // Solo: ~16 kB burst + 100 kB in 1 s at 10 kB a piece (frames add a few bytes each).
    assert.ok(solo >= 100_000 && solo <= 120_000, `solo ${solo}`);
    assert.ok(Math.abs(a - b) <= 10_000, `shared unevenly: ${a} vs ${b}`);
    assert.ok(Math.abs(a + b - solo) <= 20_000, `shared total ${a + b} vs solo ${solo}`);
    assert.ok(a <= solo * 0.6 && b <= solo * 0.6, `each should get about half: ${a}, ${b} of ${solo}`);
  });

  test('download limit: delivery waits for the charge, reading stops meanwhile (fake clock)', async () => {
    const clock = new FakeClock();
    const download = bucket(clock, 100_000, 16_384);
    const network = new MemoryNetwork();
    const limited = new LimitedTransport(new MemoryTransport(network), { download });
    const { client, server, close } = await pairOn(new MemoryTransport(network), limited);
    const counter = countPayload(server);
    await client.send(handshake(64, 1 << 14));
    const piece = Buffer.alloc(10_000, 1);
    const sends = Array.from({ length: 30 }, (_, i) => client.send({ kind: 'piece', piece: i, length: piece.length }, piece));
    await clock.settle();
    assert.ok(counter.bytes <= 20_000, `only the burst is delivered before time passes: ${counter.bytes}`);
    await clock.advance(1_000);
    assert.ok(counter.bytes >= 100_000 && counter.bytes <= 120_000, `1 s at 100 kB/s: ${counter.bytes}`);
    await clock.advance(3_000);
    await Promise.all(sends);
    assert.equal(counter.bytes, 300_000);
    client.close();
    await clock.advance(100);
    await counter.done;
    await close();
  });

  test('a local close() while a send waits for its charge: the send rejects, the bucket queue is left empty', async () => {
    const clock = new FakeClock();
    const upload = bucket(clock, 1_000, 1_000);
    const limited = new LimitedTransport(new MemoryTransport(), { upload });
    const { client, server, close } = await pairOn(limited);
    void countPayload(server);
    await client.send(handshake(64, 1 << 14));
    const piece = Buffer.alloc(10_000);
    const pending = client.send({ kind: 'piece', piece: 0, length: piece.length }, piece);
    await clock.settle();
    assert.equal(upload.waiting, 1);
    client.close();
    await assert.rejects(pending, (e: unknown) => isLayerswarmError(e, 'PEER_UNAVAILABLE'));
    assert.equal(upload.waiting, 0);
    await close();
  });

  test('real time: 2 MiB with a 4 MiB/s upload limit takes about half a second', async () => {
    const upload = new TokenBucket({ rate: 4 << 20, burst: 64 << 10 });
    const limited = new LimitedTransport(new MemoryTransport(), { upload });
    const { client, server, close } = await pairOn(limited);
    const counter = countPayload(server);
    await client.send(handshake(64, 1 << 18));
    const piece = Buffer.alloc(256 << 10, 3);
    const started = performance.now();
    for (let i = 0; i < 8; i++) await client.send({ kind: 'piece', piece: i, length: piece.length }, piece);
    const elapsed = performance.now() - started;
    client.close();
    await counter.done;
    assert.equal(counter.bytes, 2 << 20);
    // (2 MiB − 64 KiB burst) / 4 MiB/s ≈ 0.48 s.
    assert.ok(elapsed >= 400, `too fast for the limit: ${Math.round(elapsed)} ms`);
    assert.ok(elapsed <= 1_500, `too slow: ${Math.round(elapsed)} ms`);
    await close();
  });

  test('real time: 2 MiB with a 4 MiB/s download limit takes about half a second', async () => {
    const download = new TokenBucket({ rate: 4 << 20, burst: 64 << 10 });
    const network = new MemoryNetwork();
    const { client, server, close } = await pairOn(new MemoryTransport(network), new LimitedTransport(new MemoryTransport(network), { download }));
    await client.send(handshake(64, 1 << 18));
    const piece = Buffer.alloc(256 << 10, 3);
    const started = performance.now();
    const sends = Array.from({ length: 8 }, (_, i) => client.send({ kind: 'piece', piece: i, length: piece.length }, piece));
    let bytes = 0;
    for await (const r of server.messages()) {
      for (const p of r.payload ?? []) bytes += p.byteLength;
      if (bytes >= 2 << 20) break;
    }
    const elapsed = performance.now() - started;
    await Promise.all(sends);
    client.close();
    assert.ok(elapsed >= 400, `too fast for the limit: ${Math.round(elapsed)} ms`);
    assert.ok(elapsed <= 1_500, `too slow: ${Math.round(elapsed)} ms`);
    await close();
  });
});
