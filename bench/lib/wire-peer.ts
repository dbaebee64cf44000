/**
 * Child processes of `npm run bench:wire` (bench/wire.ts), driven over the fork IPC channel.
 *
 *  - sender: holds the blob in memory (deterministic AES-CTR bytes), reports its piece hashes, and streams it on
 *    command, either as Piece messages over the TCP transport or as plain length-prefixed frames over node:net.
 *  - receiver: listens on command, verifies every piece's sha256 against the expected list as it arrives, and reports
 *    the time from accepting the connection to the last piece verified.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { PROTOCOL_VERSION, type HandshakeMessage } from '../../shared/wire/codec.ts';
import { TcpTransport } from '../../shared/wire/tcp-transport.ts';

export type Mode = 'wire' | 'net';

export type ToSender = { cmd: 'send'; mode: Mode; port: number; pieceLength: number; window: number } | { cmd: 'exit' };
export type FromSender = { cmd: 'ready'; hashes: Record<number, string[]> } | { cmd: 'sent'; ms: number } | { cmd: 'failed'; error: string };
export type ToReceiver = { cmd: 'listen'; mode: Mode; pieceLength: number; hashes: string[] } | { cmd: 'exit' };
export type FromReceiver =
  | { cmd: 'ready'; hashes: Record<number, string[]> }
  | { cmd: 'listening'; port: number }
  | { cmd: 'done'; ms: number; bytes: number; pieces: number; mismatches: number }
  | { cmd: 'failed'; error: string };

const HOST = '127.0.0.1';
const send = (m: FromSender | FromReceiver): void => void process.send?.(m);

export function makeBlob(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16, 1));
  const zeros = Buffer.alloc(Math.min(size, 64 << 20));
  for (let at = 0; at < size; at += zeros.length) out.set(cipher.update(zeros.subarray(0, Math.min(zeros.length, size - at))), at);
  return out;
}

export function pieceHashes(blob: Buffer, pieceLength: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < blob.length; at += pieceLength) out.push(createHash('sha256').update(blob.subarray(at, at + pieceLength)).digest('hex'));
  return out;
}

function handshake(pieceCount: number, pieceLength: number, have: boolean): HandshakeMessage {
  const bitfield = Buffer.alloc(Math.ceil(pieceCount / 8), have ? 0xff : 0);
  const spare = bitfield.length * 8 - pieceCount;
  if (have && spare > 0) bitfield[bitfield.length - 1] = (0xff << spare) & 0xff;
  return { kind: 'handshake', protocolVersion: PROTOCOL_VERSION, peerId: Buffer.alloc(20, have ? 1 : 2), digest: `sha256:${'0'.repeat(64)}`, pieceCount, pieceLength, bitfield };
}

// ---- sender -------------------------------------------------------------------------------------------------

async function sendWire(blob: Buffer, port: number, pieceLength: number, window: number): Promise<void> {
  const connection = await new TcpTransport().connect({ host: HOST, port }, AbortSignal.timeout(10_000));
  const pieceCount = Math.ceil(blob.length / pieceLength);
  await connection.send(handshake(pieceCount, pieceLength, true));
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < pieceCount; i++) {
    const payload = blob.subarray(i * pieceLength, Math.min(blob.length, (i + 1) * pieceLength));
    inflight.push(connection.send({ kind: 'piece', piece: i, length: payload.length }, payload));
    if (inflight.length >= window) await inflight.shift();
  }
  await Promise.all(inflight);
  // The receiver closes once it has verified everything.
  for await (const _ of connection.messages()) {
    // its handshake
  }
  connection.close();
}

/** Same flow control as sendWire (`window` frames in flight, each done when its write callback fires). */
async function sendNet(blob: Buffer, port: number, pieceLength: number, window: number): Promise<void> {
  const socket = connect({ host: HOST, port, noDelay: true });
  await once(socket, 'connect');
  const inflight: Promise<void>[] = [];
  for (let at = 0; at < blob.length; at += pieceLength) {
    const payload = blob.subarray(at, Math.min(blob.length, at + pieceLength));
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE(payload.length);
    socket.cork();
    socket.write(header);
    inflight.push(new Promise<void>((resolve, reject) => socket.write(payload, (err) => (err ? reject(err) : resolve()))));
    socket.uncork();
    if (inflight.length >= window) await inflight.shift();
  }
  await Promise.all(inflight);
  socket.end();
  await once(socket, 'close');
}

export function runSender(size: number, pieceLengths: number[]): void {
  const blob = makeBlob(size);
  const hashes: Record<number, string[]> = {};
  for (const p of pieceLengths) hashes[p] = pieceHashes(blob, p);
  send({ cmd: 'ready', hashes });
  process.on('message', (m: ToSender) => {
    if (m.cmd === 'exit') process.exit(0);
    const t0 = performance.now();
    (m.mode === 'wire' ? sendWire(blob, m.port, m.pieceLength, m.window) : sendNet(blob, m.port, m.pieceLength, m.window)).then(
      () => send({ cmd: 'sent', ms: performance.now() - t0 }),
      (err: unknown) => send({ cmd: 'failed', error: String(err) }),
    );
  });
}

// ---- receiver -----------------------------------------------------------------------------------------------

interface Tally {
  pieces: number;
  mismatches: number;
  bytes: number;
}

async function receiveWire(pieceLength: number, hashes: string[]): Promise<void> {
  const transport = new TcpTransport();
  let t0 = 0;
  const tally: Tally = { pieces: 0, mismatches: 0, bytes: 0 };
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const listener = await transport.listen({ host: HOST, port: 0 }, (connection) => {
    t0 = performance.now();
    void (async () => {
      await connection.send(handshake(hashes.length, pieceLength, false));
      for await (const r of connection.messages()) {
        if (!r.payload) continue;
        const h = createHash('sha256');
        for (const p of r.payload) h.update(p);
        if (h.digest('hex') !== hashes[r.message.piece]) tally.mismatches++;
        tally.pieces++;
        tally.bytes += r.message.length;
        if (tally.pieces === hashes.length) break;
      }
      const ms = performance.now() - t0;
      connection.close();
      send({ cmd: 'done', ms, ...tally });
      finish();
    })().catch((err: unknown) => send({ cmd: 'failed', error: String(err) }));
  });
  send({ cmd: 'listening', port: listener.address.port });
  await finished;
  await listener.close();
}

async function receiveNet(hashes: string[]): Promise<void> {
  const tally: Tally = { pieces: 0, mismatches: 0, bytes: 0 };
  const server = createServer({ noDelay: true });
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  server.on('connection', (socket: Socket) => {
    const t0 = performance.now();
    // Plain streaming receiver: 4-byte length, then hash the frame's bytes as they arrive (no reassembly).
    const prefix = Buffer.alloc(4);
    let prefixHave = 0;
    let remaining = -1;
    let hash = createHash('sha256');
    socket.on('data', (chunk: Buffer) => {
      let at = 0;
      while (at < chunk.length) {
        if (remaining < 0) {
          const n = Math.min(4 - prefixHave, chunk.length - at);
          chunk.copy(prefix, prefixHave, at, at + n);
          prefixHave += n;
          at += n;
          if (prefixHave === 4) {
            remaining = prefix.readUInt32BE(0);
            prefixHave = 0;
            hash = createHash('sha256');
          }
          continue;
        }
        const n = Math.min(remaining, chunk.length - at);
        hash.update(chunk.subarray(at, at + n));
        at += n;
        remaining -= n;
        tally.bytes += n;
        if (remaining === 0) {
          if (hash.digest('hex') !== hashes[tally.pieces]) tally.mismatches++;
          tally.pieces++;
          remaining = -1;
          if (tally.pieces === hashes.length) {
            send({ cmd: 'done', ms: performance.now() - t0, ...tally });
            socket.end();
            done();
          }
        }
      }
    });
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  send({ cmd: 'listening', port: (server.address() as { port: number }).port });
  await finished;
  await new Promise((resolve) => server.close(resolve));
}

export function runReceiver(): void {
  process.on('message', (m: ToReceiver) => {
    if (m.cmd === 'exit') process.exit(0);
    (m.mode === 'wire' ? receiveWire(m.pieceLength, m.hashes) : receiveNet(m.hashes)).catch((err: unknown) =>
      send({ cmd: 'failed', error: String(err) }),
    );
  });
  send({ cmd: 'ready', hashes: {} });
}
