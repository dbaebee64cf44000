/**
 * Completing an abandoned swarm download from the origin: only the pieces the swarm did not deliver are fetched, with
 * one bounded Range request per run of contiguous missing pieces.
 *
 * 1. The partial file the engine kept (`<swarm dir>/<hex>` + `.pieces` sidecar) is opened with PieceFile.open, which
 *    re-hashes every piece the sidecar claims: only pieces that match metainfo.pieceHashes count as held.
 * 2. Nothing held → `nothing_kept` (the caller streams the whole blob from the origin, as before).
 * 3. Each run of missing pieces: `Range: bytes=START-END` (END inclusive). The body is cut into pieces; each piece is
 *    hashed against metainfo.pieceHashes before it is written. A wrong piece, a short or long body → an error.
 *    An origin that answers 200 (ignores Range) → `not_ranged` with that whole-blob body: the caller uses it as the
 *    whole-blob origin stream.
 * 4. The whole file's sha256 must equal the digest; then `repaired` (the caller hands the file to the BlobFetcher,
 *    which hashes it once more while committing it to the store, and deletes it afterwards).
 * On any failure the partial file is deleted and the error thrown (the caller falls back to the whole blob).
 */
import { createHash } from 'node:crypto';
import { LayerswarmError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { pieceRange, type Metainfo } from '../../shared/swarm/metainfo.ts';
import type { Bitfield } from '../swarm/scheduler/bitfield.ts';
import { PieceFile } from '../swarm/engine/piece-file.ts';
import type { BlobRequest, BlobStreamResult } from './blob-source.ts';
import type { OriginRangeOpener } from './origin-source.ts';

export type RepairOutcome =
  | { readonly kind: 'repaired'; readonly path: string; readonly peerBytes: number; readonly originBytes: number; readonly ranges: number }
  | { readonly kind: 'not_ranged'; readonly result: BlobStreamResult }
  | { readonly kind: 'nothing_kept' };

export interface RepairOptions {
  readonly meta: Metainfo;
  /** The engine's download file for meta.digest. */
  readonly path: string;
  readonly request: BlobRequest;
  readonly openRange: OriginRangeOpener;
  readonly signal: AbortSignal;
  readonly log: Logger;
}

/** Runs of contiguous missing pieces, as [first, last] piece indexes (inclusive). */
export function missingRuns(have: Pick<Bitfield, 'has'>, pieces: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  for (let i = 0; i < pieces; i++) {
    if (have.has(i)) continue;
    const last = runs.at(-1);
    if (last !== undefined && last[1] === i - 1) last[1] = i;
    else runs.push([i, i]);
  }
  return runs;
}

export async function repairFromOrigin(o: RepairOptions): Promise<RepairOutcome> {
  const { meta, signal } = o;
  const file = await PieceFile.open(o.path, meta, signal);
  try {
    const held = file.have.count;
    if (held === 0) {
      await file.remove();
      return { kind: 'nothing_kept' };
    }
    const runs = missingRuns(file.have, meta.pieceHashes.length);
    let originBytes = 0;
    for (const [first, last] of runs) {
      const start = pieceRange(meta, first).offset;
      const tail = pieceRange(meta, last);
      const end = tail.offset + tail.length - 1;
      const result = await o.openRange(o.request, start, end, signal);
      if (!result.partial) {
        await file.remove();
        return { kind: 'not_ranged', result };
      }
      originBytes += await writeRun(file, meta, first, last, result.body, signal);
    }
    const digest = await file.digest(signal);
    if (digest !== meta.digest) throw new LayerswarmError('DIGEST_MISMATCH', `repaired file hashes to ${digest}, expected ${meta.digest}`);
    await file.close();
    o.log.info({ pieces: meta.pieceHashes.length, fromPeers: held, ranges: runs.length, originBytes }, 'completed the swarm download with the missing pieces from the origin');
    return { kind: 'repaired', path: o.path, peerBytes: meta.size - originBytes, originBytes, ranges: runs.length };
  } catch (err) {
    await file.remove();
    throw err;
  }
}

/** Cut `body` (bytes of pieces first..last) into pieces, verify and write each; returns the bytes written. */
async function writeRun(file: PieceFile, meta: Metainfo, first: number, last: number, body: BlobStreamResult['body'], signal: AbortSignal): Promise<number> {
  let piece = first;
  let want = pieceRange(meta, piece).length;
  let parts: Buffer[] = [];
  let got = 0;
  let total = 0;
  try {
    for await (const chunk of body) {
      let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      while (buf.byteLength > 0) {
        if (piece > last) throw new LayerswarmError('UPSTREAM_ERROR', `origin sent more than the ${pieceRange(meta, last).offset + pieceRange(meta, last).length - pieceRange(meta, first).offset} bytes asked for`);
        const take = Math.min(want - got, buf.byteLength);
        parts.push(buf.subarray(0, take));
        got += take;
        buf = buf.subarray(take);
        if (got < want) continue;
        const hash = createHash('sha256');
        for (const p of parts) hash.update(p);
        if (hash.digest('hex') !== meta.pieceHashes[piece]) throw new LayerswarmError('DIGEST_MISMATCH', `piece ${piece} from the origin does not match its hash`);
        await file.writePiece(piece, parts, signal);
        total += want;
        piece++;
        parts = [];
        got = 0;
        want = piece <= last ? pieceRange(meta, piece).length : 0;
      }
    }
  } finally {
    body.destroy?.();
  }
  if (piece <= last) throw new LayerswarmError('UPSTREAM_ERROR', `origin body ended at piece ${piece} of ${first}..${last}`);
  return total;
}
