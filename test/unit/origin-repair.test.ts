// repairFromOrigin (agent/source/origin-repair.ts): coalesced Range requests for the missing pieces only, every piece
// verified, the whole-blob answer of an origin that ignores Range passed through, bad bytes rejected and the partial
// file deleted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { missingRuns, repairFromOrigin } from '../../agent/source/origin-repair.ts';
import type { OriginRangeResult } from '../../agent/source/origin-source.ts';
import type { BlobRequest } from '../../agent/source/blob-source.ts';
import { PieceFile } from '../../agent/swarm/engine/piece-file.ts';
import { Bitfield } from '../../agent/swarm/scheduler/bitfield.ts';
import { isLayerswarmError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logging.ts';
import { computeMetainfo, pieceRange, type Metainfo } from '../../shared/swarm/metainfo.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const PIECE = 64 * 1024;
const data = randomBytes(10 * PIECE + 1234); // 11 pieces, the last one short
const request = {} as BlobRequest;
const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

function chunked(bytes: Buffer, size = 10_000): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

describe('repairFromOrigin', () => {
  let dir: string;
  let meta: Metainfo;
  let n = 0;
  before(async () => {
    dir = await makeTempDir('origin-repair-');
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    meta = await computeMetainfo(digest, [data], data.length, { minPieceLength: PIECE, maxPieceLength: PIECE, targetPieces: 1, originDirectMaxBytes: 0 });
    assert.equal(meta.pieceHashes.length, 11);
  });
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  /** A partial file holding `pieces`. */
  async function partial(pieces: number[]): Promise<string> {
    const path = join(dir, `partial-${n++}`);
    const file = await PieceFile.open(path, meta, AbortSignal.timeout(5000));
    for (const p of pieces) {
      const { offset, length } = pieceRange(meta, p);
      await file.writePiece(p, [data.subarray(offset, offset + length)], AbortSignal.timeout(5000));
    }
    await file.close();
    return path;
  }

  test('missingRuns coalesces contiguous missing pieces', () => {
    const have = new Bitfield(8);
    for (const i of [0, 3, 4, 7]) have.set(i);
    assert.deepEqual(missingRuns(have, 8), [[1, 2], [5, 6]]);
  });

  test('only the missing runs are asked for; the result is the verified blob', async () => {
    const path = await partial([0, 1, 4, 5, 6]);
    const asked: Array<[number, number]> = [];
    const outcome = await repairFromOrigin({
      meta, path, request, signal: AbortSignal.timeout(5000), log: silentLogger(),
      openRange: async (_r, start, end): Promise<OriginRangeResult> => {
        asked.push([start, end]);
        return { partial: true, body: chunked(data.subarray(start, end + 1)) };
      },
    });
    assert.equal(outcome.kind, 'repaired');
    assert.deepEqual(asked, [[2 * PIECE, 4 * PIECE - 1], [7 * PIECE, data.length - 1]]);
    if (outcome.kind !== 'repaired') return;
    assert.equal(outcome.originBytes, data.length - 5 * PIECE);
    assert.equal(outcome.peerBytes, 5 * PIECE);
    assert.equal(outcome.ranges, 2);
    assert.ok((await readFile(path)).equals(data));
  });

  test('an origin that ignores Range: its whole-blob answer is passed through, the partial file deleted', async () => {
    const path = await partial([3]);
    const whole = chunked(data);
    const outcome = await repairFromOrigin({
      meta, path, request, signal: AbortSignal.timeout(5000), log: silentLogger(),
      openRange: async () => ({ partial: false, size: data.length, body: whole }),
    });
    assert.equal(outcome.kind, 'not_ranged');
    if (outcome.kind === 'not_ranged') assert.equal(outcome.result.body, whole);
    assert.equal(await exists(path), false);
    assert.equal(await exists(`${path}.pieces`), false);
  });

  test('nothing kept: no request at all', async () => {
    const path = await partial([]);
    let calls = 0;
    const outcome = await repairFromOrigin({
      meta, path, request, signal: AbortSignal.timeout(5000), log: silentLogger(),
      openRange: async () => {
        calls++;
        throw new Error('unexpected');
      },
    });
    assert.equal(outcome.kind, 'nothing_kept');
    assert.equal(calls, 0);
    assert.equal(await exists(path), false);
  });

  test('wrong or short bytes from the origin: rejected, partial file deleted', async () => {
    for (const bad of ['corrupt', 'short', 'long'] as const) {
      const path = await partial([0]);
      await assert.rejects(
        repairFromOrigin({
          meta, path, request, signal: AbortSignal.timeout(5000), log: silentLogger(),
          openRange: async (_r, start, end) => {
            const bytes = Buffer.from(data.subarray(start, end + 1));
            if (bad === 'corrupt') bytes.writeUInt8(bytes.readUInt8(PIECE + 5) ^ 1, PIECE + 5);
            const body = bad === 'short' ? bytes.subarray(0, bytes.length - 1) : bad === 'long' ? Buffer.concat([bytes, Buffer.from('x')]) : bytes;
            return { partial: true, body: chunked(body) };
          },
        }),
        (err: unknown) => isLayerswarmError(err, bad === 'corrupt' ? 'DIGEST_MISMATCH' : 'UPSTREAM_ERROR'),
        bad,
      );
      assert.equal(await exists(path), false, bad);
    }
  });
});
