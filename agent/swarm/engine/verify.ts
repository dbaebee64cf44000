/** Never trust a peer: a received piece counts only when its length and sha256 match the metainfo. */
import { createHash } from 'node:crypto';
import { pieceRange, type Metainfo } from '../../../shared/swarm/metainfo.ts';

/** Check a received piece (its payload slices, in order) against metainfo.pieceHashes. */
export function verifyPiece(meta: Metainfo, piece: number, payload: readonly Buffer[]): { ok: boolean; length: number } {
  let length = 0;
  const hash = createHash('sha256');
  for (const b of payload) {
    length += b.byteLength;
    hash.update(b);
  }
  const expected = meta.pieceHashes[piece];
  return { ok: expected !== undefined && length === pieceRange(meta, piece).length && hash.digest('hex') === expected, length };
}
