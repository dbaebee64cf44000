/**
 * The Transport conformance suite: every implementation of shared/wire/transport.ts passes it (transport.test.ts
 * runs it for TCP and memory). Covers round trips of every message kind with payloads, ordering, backpressure,
 * close from either side, aborted/refused connects, and a remote that breaks the protocol.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { isLayerswarmError, LayerswarmError } from '../../shared/errors.ts';
import { encodeMessage, PROTOCOL_VERSION, WireDecoder, type HandshakeMessage, type Received, type WireMessage } from '../../shared/wire/codec.ts';
import { isWireError, WireError } from '../../shared/wire/errors.ts';
import type { Connection, Listener, Transport, WireAddress } from '../../shared/wire/transport.ts';

export interface TransportFixture {
  readonly transport: Transport;
  /** Host to listen on (port 0 is used). */
  readonly host: string;
  /** A raw byte stream to a listener, to send what a Connection never would. */
  connectRaw(address: WireAddress): Promise<Duplex>;
  /** An address nothing listens on. */
  deadAddress(): Promise<WireAddress>;
}

const DIGEST = `sha256:${'cd'.repeat(32)}`;
export function handshake(pieceCount = 64, pieceLength = 1 << 20, fill = 0): HandshakeMessage {
  const bitfield = Buffer.alloc(Math.ceil(pieceCount / 8), fill);
  const spare = bitfield.length * 8 - pieceCount;
  if (spare > 0) bitfield[bitfield.length - 1] = (bitfield[bitfield.length - 1] as number) & ~((1 << spare) - 1);
  return { kind: 'handshake', protocolVersion: PROTOCOL_VERSION, peerId: Buffer.alloc(20, 9), digest: DIGEST, pieceCount, pieceLength, bitfield };
}

function bytes(n: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const sha = (parts: readonly Buffer[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

/** Collect every message until the iterator ends; resolves {items, error}. */
async function drain(c: Connection, limit = Infinity): Promise<{ items: Received[]; error?: unknown }> {
  const items: Received[] = [];
  try {
    for await (const r of c.messages()) {
      items.push(r.payload ? { message: r.message, payload: [Buffer.concat(r.payload)] } : r);
      if (items.length >= limit) break;
    }
    return { items };
  } catch (error) {
    return { items, error };
  }
}

/** All bytes a raw stream receives until it ends. */
function readAllRaw(raw: Duplex): Promise<Buffer> {
  const parts: Buffer[] = [];
  return new Promise((resolve) => {
    raw.on('data', (c: Buffer) => parts.push(c));
    raw.on('end', () => resolve(Buffer.concat(parts)));
    raw.on('close', () => resolve(Buffer.concat(parts)));
    raw.on('error', () => undefined);
  });
}

const signal = (): AbortSignal => AbortSignal.timeout(5000);

export function transportConformance(name: string, make: () => TransportFixture): void {
  describe(`Transport conformance: ${name}`, () => {
    const fx = make();
    const listeners: Listener[] = [];
    after(async () => {
      await Promise.all(listeners.map((l) => l.close()));
    });

    /** A listener whose connections are handed out by accept(). */
    async function server(): Promise<{ address: WireAddress; accept: () => Promise<Connection> }> {
      const waiting: Connection[] = [];
      const takers: ((c: Connection) => void)[] = [];
      const listener = await fx.transport.listen({ host: fx.host, port: 0 }, (c) => {
        const take = takers.shift();
        if (take) take(c);
        else waiting.push(c);
      });
      listeners.push(listener);
      return {
        address: listener.address,
        accept: () => {
          const c = waiting.shift();
          return c ? Promise.resolve(c) : new Promise((resolve) => takers.push(resolve));
        },
      };
    }

    async function pair(): Promise<{ client: Connection; server: Connection; address: WireAddress }> {
      const s = await server();
      const client = await fx.transport.connect(s.address, signal());
      return { client, server: await s.accept(), address: s.address };
    }

    test('listen on port 0 reports a real port', async () => {
      const s = await server();
      assert.ok(s.address.port > 0);
      assert.equal(s.address.host, fx.host);
    });

    test('round trip of every message kind, both directions, with payloads', async () => {
      const { client, server: srv } = await pair();
      const p1 = bytes(100_000, 1);
      const p2 = [bytes(10, 2), bytes(70_000, 3), bytes(1, 4)];
      const sent: [WireMessage, Buffer | Buffer[] | undefined][] = [
        [handshake(64, 1 << 20, 0xff), undefined],
        [{ kind: 'have', piece: 63 }, undefined],
        [{ kind: 'request', piece: 1 }, undefined],
        [{ kind: 'piece', piece: 1, length: p1.length }, p1],
        [{ kind: 'piece', piece: 2, length: 70_011 }, p2],
        [{ kind: 'piece', piece: 3, length: 0 }, Buffer.alloc(0)],
        [{ kind: 'cancel', piece: 4 }, undefined],
        [{ kind: 'keepAlive' }, undefined],
        [{ kind: 'complete' }, undefined],
        [{ kind: 'error', code: 'SHUTTING_DOWN', message: 'bye' }, undefined],
      ];
      for (const [from, to] of [[client, srv], [srv, client]] as const) {
        const got = drain(to, sent.length);
        for (const [m, p] of sent) await from.send(m, p);
        const { items, error } = await got;
        assert.equal(error, undefined);
        assert.deepEqual(items.map((r) => r.message), sent.map(([m]) => m));
        for (const [i, [m, p]] of sent.entries()) {
          const r = items[i] as Received;
          if (m.kind === 'piece') assert.equal(sha(r.payload ?? []), sha(p === undefined ? [] : Buffer.isBuffer(p) ? [p] : p));
          else assert.equal(r.payload, undefined);
        }
      }
      client.close();
      srv.close();
    });

    test('ordering: many small and large messages arrive in order, payloads intact', async () => {
      const { client, server: srv } = await pair();
      const n = 300;
      const got = drain(srv, n + 1);
      await client.send(handshake(n, 1 << 16));
      const sends: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        if (i % 3 === 0) {
          const p = bytes(1 + ((i * 997) % (1 << 16)), i);
          sends.push(client.send({ kind: 'piece', piece: i, length: p.length }, p));
        } else sends.push(client.send({ kind: 'have', piece: i }));
      }
      await Promise.all(sends);
      const { items, error } = await got;
      assert.equal(error, undefined);
      assert.equal(items.length, n + 1);
      for (let i = 0; i < n; i++) {
        const r = items[i + 1] as Received;
        assert.equal('piece' in r.message && r.message.piece, i);
        if (r.payload) assert.deepEqual(r.payload[0], bytes(1 + ((i * 997) % (1 << 16)), i));
      }
      client.close();
      srv.close();
    });

    test('a flood of small messages arrives in order, in linear time', async () => {
      const { client, server: srv } = await pair();
      const n = 30_000;
      const started = performance.now();
      const got = drain(srv, n + 1);
      const sends: Promise<void>[] = [client.send(handshake(65_536))];
      for (let i = 0; i < n; i++) sends.push(client.send({ kind: 'have', piece: i }));
      await Promise.all(sends);
      const { items, error } = await got;
      assert.equal(error, undefined);
      assert.equal(items.length, n + 1);
      items.slice(1).forEach((r, i) => assert.equal('piece' in r.message && r.message.piece, i));
      assert.ok(performance.now() - started < 10_000, `${Math.round(performance.now() - started)} ms`);
      client.close();
      srv.close();
    });

    test('backpressure: send() stays pending while the peer does not read, and completes once it does', async () => {
      const { client, server: srv } = await pair();
      const pieces = 96;
      const piece = bytes(1 << 20, 7);
      await client.send(handshake(pieces, 1 << 20));
      let resolved = 0;
      const sends: Promise<void>[] = [];
      for (let i = 0; i < pieces; i++) sends.push(client.send({ kind: 'piece', piece: i, length: piece.length }, piece).then(() => void resolved++));
      await delay(300);
      assert.ok(resolved < pieces - 16, `only bounded buffering expected, but ${resolved} of ${pieces} sends completed`);
      const { items, error } = await drain(srv, pieces + 1);
      await Promise.all(sends);
      assert.equal(error, undefined);
      assert.equal(items.length, pieces + 1);
      const want = sha([piece]);
      for (const r of items.slice(1)) assert.equal(sha(r.payload ?? []), want);
      client.close();
      srv.close();
    });

    test('peer close: the iterator ends, both sides resolve closed cleanly, later sends reject', async () => {
      const { client, server: srv } = await pair();
      const got = drain(srv);
      await client.send(handshake());
      await client.send({ kind: 'have', piece: 1 });
      client.close();
      const { items, error } = await got;
      assert.equal(error, undefined);
      assert.deepEqual(items.map((r) => r.message.kind), ['handshake', 'have']);
      assert.equal(await srv.closed, undefined);
      assert.equal(await client.closed, undefined);
      await assert.rejects(client.send({ kind: 'keepAlive' }), (e: unknown) => isLayerswarmError(e, 'PEER_UNAVAILABLE'));
      await assert.rejects(srv.send({ kind: 'keepAlive' }), (e: unknown) => isLayerswarmError(e));
    });

    test('close(error) sends Error(code) first: the peer sees it, its closed resolves with the remote WireError', async () => {
      const { client, server: srv } = await pair();
      const got = drain(client);
      srv.close(new WireError('DIGEST_UNKNOWN', 'not here'));
      const { items, error } = await got;
      assert.equal(error, undefined);
      assert.deepEqual(items.map((r) => r.message), [{ kind: 'error', code: 'DIGEST_UNKNOWN', message: 'not here' }]);
      const why = await client.closed;
      assert.ok(isWireError(why, 'DIGEST_UNKNOWN') && why.remote);
      assert.ok(isWireError(await srv.closed, 'DIGEST_UNKNOWN'));
      // A non-wire error goes out as INTERNAL.
      const p2 = await pair();
      const got2 = drain(p2.client);
      p2.server.close(new LayerswarmError('STORE_IO', 'disk broke'));
      assert.deepEqual((await got2).items.map((r) => r.message), [{ kind: 'error', code: 'INTERNAL', message: 'disk broke' }]);
    });

    test('the local side ending its iteration early does not break the connection', async () => {
      const { client, server: srv } = await pair();
      await client.send(handshake());
      for await (const r of srv.messages()) {
        assert.equal(r.message.kind, 'handshake');
        break;
      }
      await client.send({ kind: 'have', piece: 0 });
      srv.close();
      assert.equal(await client.closed, undefined);
    });

    test('a peer that drops mid-frame: the iterator throws', async () => {
      const s = await server();
      const raw = await fx.connectRaw(s.address);
      const srv = await s.accept();
      const got = drain(srv);
      raw.write(encodeMessage(handshake()));
      raw.write(encodeMessage({ kind: 'piece', piece: 0, length: 1000 }));
      raw.write(Buffer.alloc(10));
      await delay(20);
      raw.destroy();
      const { items, error } = await got;
      assert.deepEqual(items.map((r) => r.message.kind), ['handshake']);
      assert.ok(isLayerswarmError(error, 'PROTOCOL_ERROR') || isLayerswarmError(error, 'PEER_UNAVAILABLE'), String(error));
      assert.ok(isLayerswarmError(await srv.closed));
    });

    for (const [what, bad, code] of [
      ['an oversize frame', Buffer.from([0x00, 0x10, 0x00, 0x00]), 'FRAME_TOO_LARGE'],
      ['a piece over the piece length', encodeMessage({ kind: 'piece', piece: 0, length: (1 << 20) + 1 }), 'PAYLOAD_TOO_LARGE'],
      ['malformed protobuf', Buffer.from([0, 0, 0, 2, 0xff, 0xff]), 'MALFORMED_MESSAGE'],
      ['a second handshake', encodeMessage(handshake()), 'UNEXPECTED_MESSAGE'],
    ] as const) {
      test(`${what} from the remote: Error(${code}) is sent and the connection closes`, async () => {
        const s = await server();
        const raw = await fx.connectRaw(s.address);
        const answer = readAllRaw(raw);
        const srv = await s.accept();
        const got = drain(srv);
        raw.write(Buffer.concat([encodeMessage(handshake()), bad]));
        const { items, error } = await got;
        assert.deepEqual(items.map((r) => r.message.kind), ['handshake']);
        assert.ok(isWireError(error, code), String(error));
        assert.ok(isWireError(await srv.closed, code));
        const reply = new WireDecoder().push(await answer);
        assert.deepEqual(reply.map((r) => r.message.kind === 'error' && r.message.code), [code]);
      });
    }

    test('a message before the handshake: Error(UNEXPECTED_MESSAGE) and close', async () => {
      const s = await server();
      const raw = await fx.connectRaw(s.address);
      const answer = readAllRaw(raw);
      const srv = await s.accept();
      raw.write(encodeMessage({ kind: 'have', piece: 0 }));
      const { error } = await drain(srv);
      assert.ok(isWireError(error, 'UNEXPECTED_MESSAGE'));
      const reply = new WireDecoder().push(await answer);
      assert.equal(reply[0]?.message.kind === 'error' && reply[0].message.code, 'UNEXPECTED_MESSAGE');
    });

    test('connect: an aborted signal rejects with ABORTED, a dead address with PEER_UNAVAILABLE', async () => {
      const s = await server();
      await assert.rejects(fx.transport.connect(s.address, AbortSignal.abort()), (e: unknown) => isLayerswarmError(e, 'ABORTED'));
      const ac = new AbortController();
      const pending = fx.transport.connect(s.address, ac.signal);
      ac.abort();
      await assert.rejects(pending, (e: unknown) => isLayerswarmError(e, 'ABORTED'));
      await assert.rejects(fx.transport.connect(await fx.deadAddress(), signal()), (e: unknown) => isLayerswarmError(e, 'PEER_UNAVAILABLE'));
    });

    test('send rejects a payload that does not match the message', async () => {
      const { client, server: srv } = await pair();
      await assert.rejects(client.send({ kind: 'piece', piece: 0, length: 5 }, Buffer.alloc(4)), (e: unknown) => isLayerswarmError(e, 'INTERNAL'));
      await assert.rejects(client.send({ kind: 'have', piece: 0 }, Buffer.alloc(4)), (e: unknown) => isLayerswarmError(e, 'INTERNAL'));
      client.close();
      srv.close();
    });

    test('Listener.close closes the connections it accepted', async () => {
      const listener = await fx.transport.listen({ host: fx.host, port: 0 }, () => undefined);
      const client = await fx.transport.connect(listener.address, signal());
      const got = drain(client);
      await listener.close();
      const { error } = await got;
      assert.equal(error, undefined);
      assert.equal(await client.closed, undefined);
      await assert.rejects(fx.transport.connect(listener.address, signal()), (e: unknown) => isLayerswarmError(e, 'PEER_UNAVAILABLE'));
    });
  });
}
