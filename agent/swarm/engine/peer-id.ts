/** Peer ids: 20 random bytes per engine (process), 40 lowercase hex characters for the tracker and the scheduler. */
import { randomBytes } from 'node:crypto';
import { LayerswarmError } from '../../../shared/errors.ts';

export const PEER_ID_BYTES = 20;
const HEX_RE = /^[0-9a-f]{40}$/;

/** A fresh random peer id, as hex. */
export function newPeerId(): string {
  return randomBytes(PEER_ID_BYTES).toString('hex');
}

export function peerIdToBytes(hex: string): Buffer {
  if (!HEX_RE.test(hex)) throw new LayerswarmError('CONFIG_INVALID', `peer id must be ${PEER_ID_BYTES * 2} lowercase hex characters`);
  return Buffer.from(hex, 'hex');
}

export function peerIdFromBytes(bytes: Uint8Array): string {
  if (bytes.byteLength !== PEER_ID_BYTES) throw new LayerswarmError('PROTOCOL_ERROR', `peer id of ${bytes.byteLength} bytes`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
