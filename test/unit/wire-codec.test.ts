/**
 * Wire codec: golden vectors (test/fixtures/wire-vectors/vectors.json), every cap and error code, arbitrary
 * chunking, zero-copy payloads, and no allocation for a claimed length before the bytes arrive.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { layerswarm } from '../../shared/wire/gen/wire.gen.js';
import {
  decodeHeader,
  encodeMessage,
  PROTOCOL_VERSION,
  WireDecoder,
  type HandshakeMessage,
  type Received,
  type WireMessage,
} from '../../shared/wire/codec.ts';
import { ByteQueue, frame, MAX_HEADER_BYTES } from '../../shared/wire/frame.ts';
import { isWireError, WIRE_ERROR_CODES, wireErrorCodeOf, type WireErrorCode } from '../../shared/wire/errors.ts';
import { isLayerswarmError } from '../../shared/errors.ts';

const pb = layerswarm.wire.v1;

interface Vector {
  name: string;
  message: Record<string, unknown>;
  payload?: string;
  hex: string;
}
const { vectors } = JSON.parse(readFileSync(new URL('../fixtures/wire-vectors/vectors.json', import.meta.url), 'utf8')) as { vectors: Vector[] };

function toMessage(m: Record<string, unknown>): WireMessage {
  if (m.kind !== 'handshake') return m as unknown as WireMessage;
  return { ...m, peerId: Buffer.from(m.peerId as string, 'hex'), bitfield: Buffer.from(m.bitfield as string, 'hex') } as unknown as HandshakeMessage;
}

const DIGEST = `sha256:${'ab'.repeat(32)}`;
function handshake(over: Partial<HandshakeMessage> = {}): HandshakeMessage {
  const pieceCount = over.pieceCount ?? 65_536;
  return {
    kind: 'handshake',
    protocolVersion: PROTOCOL_VERSION,
    peerId: Buffer.alloc(20, 1),
    digest: DIGEST,
    pieceCount,
    pieceLength: 1 << 20,
    bitfield: Buffer.alloc(Math.ceil(pieceCount / 8)),
    ...over,
  };
}

/** Raw frame for a protobuf envelope the encoder would refuse to produce. */
function rawFrame(p: layerswarm.wire.v1.Message.$Properties): Buffer {
  return frame(pb.Message.encode(p).finish());
}

/** A decoder past a valid handshake. */
function primed(over: Partial<HandshakeMessage> = {}, maxPieceLength?: number): WireDecoder {
  const d = new WireDecoder({ maxPieceLength });
  assert.equal(d.push(encodeMessage(handshake(over))).length, 1);
  return d;
}

function throwsWire(fn: () => unknown, code: WireErrorCode): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isWireError(err), `expected WireError, got ${String(err)}`);
    assert.equal(err.wireCode, code, err.message);
    assert.ok(isLayerswarmError(err, 'PROTOCOL_ERROR'));
    assert.equal(err.remote, false);
    return true;
  });
}

/** Decode `bytes` pushed in the given chunk sizes (cycled). */
function decodeChunked(d: WireDecoder, bytes: Buffer, sizes: () => number): Received[] {
  const out: Received[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = Math.max(1, Math.min(bytes.length - at, sizes()));
    out.push(...d.push(bytes.subarray(at, at + n)));
    at += n;
  }
  d.end();
  return out;
}

const flat = (r: Received): unknown => ({ message: r.message, payload: r.payload ? Buffer.concat(r.payload).toString('hex') : undefined });

function bytesOf(n: number, seed: number): Buffer {
  const r = rng(seed);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

describe('golden vectors', () => {
  test('cover every message kind', () => {
    const kinds = new Set(vectors.map((v) => v.message.kind));
    assert.deepEqual([...kinds].sort(), ['cancel', 'complete', 'error', 'handshake', 'have', 'keepAlive', 'piece', 'request']);
  });

  for (const v of vectors) {
    test(`${v.name}: encode gives the vector's bytes`, () => {
      assert.equal(encodeMessage(toMessage(v.message)).toString('hex'), v.hex);
    });

    test(`${v.name}: decoding the vector gives the message`, () => {
      const d = v.message.kind === 'handshake' ? new WireDecoder() : primed();
      const payload = Buffer.from(v.payload ?? '', 'hex');
      const got = d.push(Buffer.concat([Buffer.from(v.hex, 'hex'), payload]));
      assert.equal(got.length, 1);
      const r = got[0] as Received;
      assert.deepEqual(r.message, toMessage(v.message));
      if (v.message.kind === 'piece') assert.equal(Buffer.concat(r.payload ?? []).toString('hex'), v.payload);
      else assert.equal(r.payload, undefined);
      d.end();
    });
  }

  test('the error code table matches the generated enum', () => {
    assert.deepEqual({ ...pb.Error.Code }, WIRE_ERROR_CODES);
  });
});

describe('decode caps and error codes', () => {
  test('FRAME_TOO_LARGE as soon as the length prefix arrives; 64 KiB exactly is accepted', () => {
    const d = primed();
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(MAX_HEADER_BYTES + 1);
    throwsWire(() => d.push(prefix), 'FRAME_TOO_LARGE');
    const huge = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    throwsWire(() => new WireDecoder().push(huge), 'FRAME_TOO_LARGE');

    // A Have padded with an unknown field (ignored) to exactly MAX_HEADER_BYTES.
    const have = pb.Message.encode({ have: { piece: 3 } }).finish();
    const padLength = MAX_HEADER_BYTES - have.length - 1 - 3; // tag + 3-byte length varint
    const w = pb.Message.encode({ have: { piece: 3 } });
    w.uint32((15 << 3) | 2).bytes(Buffer.alloc(padLength));
    const body = w.finish();
    assert.equal(body.length, MAX_HEADER_BYTES);
    assert.deepEqual(primed().push(frame(body)).map((r) => r.message), [{ kind: 'have', piece: 3 }]);
  });

  test('PAYLOAD_TOO_LARGE over the handshake piece length or the local cap', () => {
    throwsWire(() => primed({ pieceLength: 1 << 16 }).push(encodeMessage({ kind: 'piece', piece: 0, length: (1 << 16) + 1 })), 'PAYLOAD_TOO_LARGE');
    assert.equal(primed({ pieceLength: 1 << 16 }).push(encodeMessage({ kind: 'piece', piece: 0, length: 1 << 16 })).length, 0);
    throwsWire(() => primed({ pieceLength: 1 << 22 }, 1 << 20).push(encodeMessage({ kind: 'piece', piece: 0, length: (1 << 20) + 1 })), 'PAYLOAD_TOO_LARGE');
  });

  test('UNSUPPORTED_VERSION', () => {
    const h = handshake();
    for (const v of [0, 2, 0xffff_ffff]) {
      const bytes = rawFrame({ handshake: { ...h, protocolVersion: v } });
      throwsWire(() => new WireDecoder().push(bytes), 'UNSUPPORTED_VERSION');
    }
    throwsWire(() => encodeMessage({ ...h, protocolVersion: 2 }), 'UNSUPPORTED_VERSION');
  });

  test('UNEXPECTED_MESSAGE: anything but handshake/error first, a second handshake', () => {
    for (const m of [{ kind: 'have', piece: 0 }, { kind: 'keepAlive' }, { kind: 'complete' }, { kind: 'piece', piece: 0, length: 0 }] as WireMessage[]) {
      throwsWire(() => new WireDecoder().push(encodeMessage(m)), 'UNEXPECTED_MESSAGE');
    }
    throwsWire(() => primed().push(encodeMessage(handshake())), 'UNEXPECTED_MESSAGE');
    const err = new WireDecoder().push(encodeMessage({ kind: 'error', code: 'OVERLOADED', message: 'busy' }));
    assert.deepEqual(err[0]?.message, { kind: 'error', code: 'OVERLOADED', message: 'busy' });
  });

  test('PIECE_OUT_OF_RANGE for have/request/cancel/piece ≥ piece_count', () => {
    for (const kind of ['have', 'request', 'cancel'] as const) {
      throwsWire(() => primed({ pieceCount: 10, bitfield: Buffer.alloc(2) }).push(encodeMessage({ kind, piece: 10 })), 'PIECE_OUT_OF_RANGE');
      assert.equal(primed({ pieceCount: 10, bitfield: Buffer.alloc(2) }).push(encodeMessage({ kind, piece: 9 })).length, 1);
    }
    throwsWire(() => primed({ pieceCount: 10, bitfield: Buffer.alloc(2) }).push(encodeMessage({ kind: 'piece', piece: 10, length: 1 })), 'PIECE_OUT_OF_RANGE');
  });

  const malformed: [string, Buffer][] = [
    ['garbage', frame(Buffer.from([0xff, 0xff, 0xff]))],
    ['truncated varint', frame(Buffer.from([0x12, 0x02, 0x08, 0x80]))],
    ['empty envelope', frame(Buffer.alloc(0))],
    ['unknown field only', frame(Buffer.from([0x78, 0x01]))],
    ['peer id of 19 bytes', rawFrame({ handshake: { ...handshake(), peerId: Buffer.alloc(19) } })],
    ['peer id of 21 bytes', rawFrame({ handshake: { ...handshake(), peerId: Buffer.alloc(21) } })],
    ['digest not sha256', rawFrame({ handshake: { ...handshake(), digest: `sha512:${'ab'.repeat(32)}` } })],
    ['digest upper-case', rawFrame({ handshake: { ...handshake(), digest: `sha256:${'AB'.repeat(32)}` } })],
    ['digest too long', rawFrame({ handshake: { ...handshake(), digest: `sha256:${'ab'.repeat(4000)}` } })],
    ['piece_count 0', rawFrame({ handshake: { ...handshake({ pieceCount: 1 }), pieceCount: 0, bitfield: Buffer.alloc(0) } })],
    ['piece_count 65537', rawFrame({ handshake: { ...handshake(), pieceCount: 65_537, bitfield: Buffer.alloc(8193) } })],
    ['piece_length not a power of two', rawFrame({ handshake: { ...handshake(), pieceLength: 3 << 20 } })],
    ['piece_length too small', rawFrame({ handshake: { ...handshake(), pieceLength: 1 << 13 } })],
    ['piece_length too large', rawFrame({ handshake: { ...handshake(), pieceLength: 1 << 27 } })],
    ['bitfield too short', rawFrame({ handshake: { ...handshake({ pieceCount: 9 }), bitfield: Buffer.alloc(1) } })],
    ['bitfield too long', rawFrame({ handshake: { ...handshake({ pieceCount: 9 }), bitfield: Buffer.alloc(3) } })],
    ['bitfield spare bits set', rawFrame({ handshake: { ...handshake({ pieceCount: 9 }), bitfield: Buffer.from([0xff, 0x81]) } })],
  ];
  for (const [name, bytes] of malformed) {
    test(`MALFORMED_MESSAGE: ${name}`, () => throwsWire(() => new WireDecoder().push(bytes), 'MALFORMED_MESSAGE'));
  }

  test('an envelope with two kinds: the last one wins (protobuf oneof semantics)', () => {
    assert.deepEqual(primed().push(frame(Buffer.from([0x12, 0x00, 0x3a, 0x00]))).map((r) => r.message), [{ kind: 'complete' }]);
  });

  test('MALFORMED_MESSAGE when the stream ends inside a frame or a payload', () => {
    const d1 = new WireDecoder();
    d1.push(encodeMessage(handshake()).subarray(0, 10));
    throwsWire(() => d1.end(), 'MALFORMED_MESSAGE');
    const d2 = primed();
    d2.push(Buffer.concat([encodeMessage({ kind: 'piece', piece: 1, length: 100 }), Buffer.alloc(99)]));
    throwsWire(() => d2.end(), 'MALFORMED_MESSAGE');
    const d3 = primed();
    d3.push(Buffer.from([0, 0]));
    throwsWire(() => d3.end(), 'MALFORMED_MESSAGE');
  });

  test('a failed decoder stays failed', () => {
    const d = new WireDecoder();
    throwsWire(() => d.push(encodeMessage({ kind: 'have', piece: 1 })), 'UNEXPECTED_MESSAGE');
    throwsWire(() => d.push(encodeMessage(handshake())), 'UNEXPECTED_MESSAGE');
    throwsWire(() => d.end(), 'UNEXPECTED_MESSAGE');
  });

  test('unknown error numbers read as INTERNAL; error messages are cut to 1 KiB', () => {
    assert.equal(wireErrorCodeOf(0), 'INTERNAL');
    assert.equal(wireErrorCodeOf(999), 'INTERNAL');
    const got = new WireDecoder().push(rawFrame({ error: { code: 999 as layerswarm.wire.v1.Error.Code, message: 'x'.repeat(5000) } }));
    assert.deepEqual(got[0]?.message, { kind: 'error', code: 'INTERNAL', message: 'x'.repeat(1024) });
    const sent = decodeHeader(encodeMessage({ kind: 'error', code: 'INTERNAL', message: 'y'.repeat(3000) }).subarray(4));
    assert.equal(sent.kind === 'error' && sent.message.length, 1024);
  });

  test('every wire error code round-trips in an Error message', () => {
    for (const code of Object.keys(WIRE_ERROR_CODES).filter((c) => c !== 'UNSPECIFIED') as WireErrorCode[]) {
      const m: WireMessage = { kind: 'error', code, message: code.toLowerCase() };
      assert.deepEqual(new WireDecoder().push(encodeMessage(m))[0]?.message, m);
    }
  });

  test('encode refuses what a peer would reject', () => {
    throwsWire(() => encodeMessage({ ...handshake(), peerId: Buffer.alloc(4) }), 'MALFORMED_MESSAGE');
    throwsWire(() => encodeMessage({ kind: 'have', piece: -1 }), 'MALFORMED_MESSAGE');
    throwsWire(() => encodeMessage({ kind: 'piece', piece: 0, length: 2 ** 32 }), 'MALFORMED_MESSAGE');
    throwsWire(() => encodeMessage({ kind: 'error', code: 'UNSPECIFIED' as WireErrorCode, message: '' }), 'MALFORMED_MESSAGE');
  });
});

describe('chunking and zero copy', () => {
  const big = Buffer.alloc((1 << 20) + 123);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
  const stream: WireMessage[] = [
    handshake({ pieceCount: 100, pieceLength: 1 << 21, bitfield: Buffer.from([0x80, ...Buffer.alloc(11), 0x10]) }),
    { kind: 'have', piece: 99 },
    { kind: 'piece', piece: 1, length: big.length },
    { kind: 'request', piece: 5 },
    { kind: 'piece', piece: 2, length: 0 },
    { kind: 'piece', piece: 3, length: 3 },
    { kind: 'cancel', piece: 5 },
    { kind: 'keepAlive' },
    { kind: 'complete' },
    { kind: 'error', code: 'SHUTTING_DOWN', message: 'bye' },
  ];
  const payloads = new Map<number, Buffer>([[1, big], [2, Buffer.alloc(0)], [3, Buffer.from('xyz')]]);
  const bytes = Buffer.concat(stream.flatMap((m) => (m.kind === 'piece' ? [encodeMessage(m), payloads.get(m.piece) as Buffer] : [encodeMessage(m)])));
  const expected = stream.map((m) => flat(m.kind === 'piece' ? { message: m, payload: [payloads.get(m.piece) as Buffer] } : ({ message: m } as Received)));

  test('one chunk', () => assert.deepEqual(decodeChunked(new WireDecoder(), bytes, () => bytes.length).map(flat), expected));

  test('1-byte chunks (header part: the payload in 1-byte chunks too)', () => {
    // 1 MiB payload in 1-byte chunks is slow but bounded; this also proves peekUInt32BE across chunks.
    assert.deepEqual(decodeChunked(new WireDecoder(), bytes, () => 1).map(flat), expected);
  });

  test('random splits (seeded)', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const r = rng(seed);
      const max = seed % 2 === 0 ? 17 : 300_000;
      assert.deepEqual(decodeChunked(new WireDecoder(), bytes, () => 1 + Math.floor(r() * max)).map(flat), expected, `seed ${seed}`);
    }
  });

  test('a payload is slices of the received chunks: one Buffer when contiguous, several when it spans chunks', () => {
    const d = primed();
    const body = bytesOf(10_000, 1);
    const header = encodeMessage({ kind: 'piece', piece: 0, length: body.length });
    const chunk = Buffer.concat([header, body, encodeMessage({ kind: 'keepAlive' })]);
    const [r] = d.push(chunk);
    assert.equal(r?.payload?.length, 1);
    const only = r?.payload?.[0] as Buffer;
    assert.equal(only.buffer, chunk.buffer, 'no copy');
    assert.equal(only.byteOffset, chunk.byteOffset + header.length);
    assert.deepEqual(only, body);

    const d2 = primed();
    const a = Buffer.concat([header, body.subarray(0, 3000)]);
    const b = body.subarray(3000, 7000);
    const c = body.subarray(7000);
    assert.deepEqual(d2.push(a), []);
    assert.deepEqual(d2.push(b), []);
    const [r2] = d2.push(c);
    assert.deepEqual(r2?.payload?.map((p) => p.byteLength), [3000, 4000, 3000]);
    assert.equal(r2?.payload?.[1], b, 'whole chunks are passed as they are');
    assert.deepEqual(Buffer.concat(r2?.payload ?? []), body);
  });

  test('a payload dribbled in tiny chunks is coalesced (bounded Buffer count), order kept', () => {
    const d = primed();
    const body = bytesOf(100_000, 2);
    const stream = Buffer.concat([encodeMessage({ kind: 'piece', piece: 0, length: body.length }), body]);
    const r = rng(3);
    const got = decodeChunked(d, stream, () => (r() < 0.9 ? 1 + Math.floor(r() * 50) : 1500 + Math.floor(r() * 3000)));
    assert.equal(got.length, 1);
    const payload = got[0]?.payload ?? [];
    assert.deepEqual(Buffer.concat(payload), body);
    assert.ok(payload.length < 200, `${payload.length} buffers for 100 000 bytes`);
    for (const p of payload) assert.ok(p.byteLength >= 1, 'no empty slices');
  });

  test('a 64 KiB header in 1-byte chunks decodes in linear time', () => {
    const w = pb.Message.encode({ have: { piece: 3 } });
    w.uint32((15 << 3) | 2).bytes(Buffer.alloc(MAX_HEADER_BYTES - 8));
    const f = frame(w.finish());
    const d = primed();
    const started = performance.now();
    let n = 0;
    for (let i = 0; i < f.length; i++) n += d.push(f.subarray(i, i + 1)).length;
    assert.equal(n, 1);
    // Quadratic reassembly took > 2 s here; linear takes ~30 ms.
    assert.ok(performance.now() - started < 1000, `${Math.round(performance.now() - started)} ms`);
  });

  test('no allocation proportional to a claimed length before the bytes arrive', () => {
    const hs = encodeMessage(handshake({ pieceLength: 1 << 26 }));
    const lie = encodeMessage({ kind: 'piece', piece: 0, length: 1 << 26 });
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(MAX_HEADER_BYTES);
    const decoders: WireDecoder[] = [];
    globalThis.gc?.();
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 200; i++) {
      const d = new WireDecoder();
      d.push(hs);
      d.push(lie);
      d.push(Buffer.alloc(10));
      decoders.push(d);
      const h = new WireDecoder();
      h.push(prefix);
      h.push(Buffer.alloc(5));
      decoders.push(h);
    }
    const grown = process.memoryUsage().arrayBuffers - before;
    // 200 × (64 MiB + 64 KiB) claimed; allocating any of it would be ≥ 12.8 GB.
    assert.ok(grown < 16 << 20, `arrayBuffers grew by ${grown}`);
    assert.equal(decoders.length, 400);
  });
});

describe('ByteQueue', () => {
  test('peek across chunks, take slices, takeContiguous copies only when split', () => {
    const q = new ByteQueue();
    q.push(Buffer.from([0x00]));
    q.push(Buffer.alloc(0));
    q.push(Buffer.from([0x01, 0x02]));
    assert.equal(q.peekUInt32BE(), undefined);
    q.push(Buffer.from([0x03, 0x04, 0x05]));
    assert.equal(q.peekUInt32BE(), 0x00010203);
    assert.equal(q.length, 6);
    q.skip(2);
    assert.deepEqual([...q.takeContiguous(3)], [0x02, 0x03, 0x04]);
    assert.equal(q.length, 1);
    assert.throws(() => q.take(2, () => undefined), RangeError);
  });
});
