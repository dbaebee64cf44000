/**
 * The handshake: each side sends Handshake {protocol_version, peer_id, digest, piece_count, piece_length, bitfield}
 * first. The receiver checks digest, piece_count and piece_length against its own metainfo (mismatch → Error
 * HANDSHAKE_MISMATCH and close); the bitfield becomes the scheduler's `peerConnected`. Version and field ranges are
 * already enforced by the wire decoder.
 */
import { raceAbort, withTimeout } from '../../../shared/abort.ts';
import { LayerswarmError } from '../../../shared/errors.ts';
import type { Metainfo } from '../../../shared/swarm/metainfo.ts';
import { PROTOCOL_VERSION, type HandshakeMessage, type Received } from '../../../shared/wire/codec.ts';
import { WireError } from '../../../shared/wire/errors.ts';
import type { Connection, Transport, WireAddress } from '../../../shared/wire/transport.ts';
import { Bitfield } from '../scheduler/bitfield.ts';
import { peerIdFromBytes, peerIdToBytes } from './peer-id.ts';

export function makeHandshake(selfId: string, meta: Metainfo, have: Bitfield): HandshakeMessage {
  return {
    kind: 'handshake', protocolVersion: PROTOCOL_VERSION, peerId: peerIdToBytes(selfId), digest: meta.digest,
    pieceCount: meta.pieceHashes.length, pieceLength: meta.pieceLength, bitfield: have.toBytes(),
  };
}

export interface RemoteHandshake {
  readonly peerId: string;
  readonly bitfield: Bitfield;
}

/** Check a peer's handshake against our metainfo; throws WireError HANDSHAKE_MISMATCH. */
export function checkHandshake(h: HandshakeMessage, meta: Metainfo): RemoteHandshake {
  const count = meta.pieceHashes.length;
  if (h.digest !== meta.digest || h.pieceCount !== count || h.pieceLength !== meta.pieceLength) {
    throw new WireError('HANDSHAKE_MISMATCH', `handshake for ${h.digest} (${h.pieceCount} × ${h.pieceLength}) does not match ${meta.digest} (${count} × ${meta.pieceLength})`);
  }
  return { peerId: peerIdFromBytes(h.peerId), bitfield: Bitfield.fromBytes(h.bitfield, count) };
}

/** Send our Handshake, waiting at most `timeoutMs` for the transport to take it. */
export async function sendHandshake(connection: Connection, handshake: HandshakeMessage, signal: AbortSignal, timeoutMs: number): Promise<void> {
  await raceAbort(connection.send(handshake), withTimeout(signal, timeoutMs), `handshake to ${connection.remote}`);
}

/** A connection whose message iterator has been started (the handshake was read from it). */
export interface OpenedConnection {
  readonly connection: Connection;
  readonly messages: AsyncIterator<Received>;
}

/**
 * Read the first message, which must be a Handshake, within `timeoutMs`. A polite Error from the peer (it refused
 * us) rejects with that WireError; a timeout with PEER_UNAVAILABLE. The caller closes the connection on rejection.
 */
export async function readHandshake(connection: Connection, signal: AbortSignal, timeoutMs: number): Promise<{ opened: OpenedConnection; handshake: HandshakeMessage }> {
  const messages = connection.messages()[Symbol.asyncIterator]();
  const deadline = withTimeout(signal, timeoutMs);
  const first = await raceAbort(messages.next(), deadline, `handshake from ${connection.remote}`, () =>
    signal.aborted
      ? new LayerswarmError('ABORTED', `handshake from ${connection.remote}: aborted`)
      : new LayerswarmError('PEER_UNAVAILABLE', `no handshake from ${connection.remote} within ${timeoutMs} ms`));
  if (first.done === true) throw (await connection.closed) ?? new LayerswarmError('PEER_UNAVAILABLE', `${connection.remote} closed before its handshake`);
  const { message } = first.value;
  if (message.kind === 'error') throw new WireError(message.code, `peer ${connection.remote} refused: ${message.message}`, { remote: true });
  if (message.kind !== 'handshake') throw new WireError('UNEXPECTED_MESSAGE', `${message.kind} before the handshake`);
  return { opened: { connection, messages }, handshake: message };
}

export interface DialInput {
  readonly transport: Transport;
  readonly address: WireAddress;
  /** The peer id the tracker named: the answer must carry it. */
  readonly peerId: string;
  readonly handshake: HandshakeMessage;
  readonly meta: Metainfo;
  readonly signal: AbortSignal;
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  /** Called with the connection as soon as it is up (engine-wide connection accounting). */
  readonly track: (connection: Connection) => void;
}

/** Connect, send our Handshake first, read and check the answer. The connection is closed on any failure. */
export async function dialPeer(input: DialInput): Promise<{ opened: OpenedConnection; remote: RemoteHandshake }> {
  const connection = await input.transport.connect(input.address, withTimeout(input.signal, input.connectTimeoutMs));
  input.track(connection);
  try {
    await sendHandshake(connection, input.handshake, input.signal, input.handshakeTimeoutMs);
    const { opened, handshake } = await readHandshake(connection, input.signal, input.handshakeTimeoutMs);
    const remote = checkHandshake(handshake, input.meta);
    if (remote.peerId !== input.peerId) throw new WireError('HANDSHAKE_MISMATCH', `expected peer ${input.peerId}, got ${remote.peerId}`);
    return { opened, remote };
  } catch (err) {
    connection.close(err instanceof WireError && !err.remote ? err : undefined);
    throw err;
  }
}
