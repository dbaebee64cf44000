import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { computeMetainfo, DEFAULT_PIECE_POLICY, parseMetainfo, pieceCount, pieceLengthFor, pieceRange, shouldSwarm, validatePolicy } from '../../shared/swarm/metainfo.ts';
import { isLayerswarmError } from '../../shared/errors.ts';

const MiB = 1 << 20;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('piece length policy', () => {
  test('power of two near size/500, clamped to 1–16 MiB', () => {
    assert.equal(pieceLengthFor(1000), MiB);
    assert.equal(pieceLengthFor(MiB), MiB);
    assert.equal(pieceLengthFor(100 * MiB), MiB);
    assert.equal(pieceLengthFor(500 * MiB), MiB);
    assert.equal(pieceLengthFor(501 * MiB), 2 * MiB);
    assert.equal(pieceLengthFor(3000 * MiB), 8 * MiB);
    assert.equal(pieceLengthFor(100_000 * MiB), 16 * MiB);
    assert.ok(pieceCount(100_000 * MiB, 16 * MiB) > 500, 'the clamp wins over the target');
  });
  test('small blobs go straight to the origin', () => {
    assert.equal(shouldSwarm(4 * MiB), false);
    assert.equal(shouldSwarm(4 * MiB + 1), true);
  });
  test('invalid policies are refused', () => {
    assert.throws(() => validatePolicy({ ...DEFAULT_PIECE_POLICY, minPieceLength: 3 * MiB }), (e) => isLayerswarmError(e, 'CONFIG_INVALID'));
    assert.throws(() => validatePolicy({ ...DEFAULT_PIECE_POLICY, minPieceLength: 32 * MiB }), (e) => isLayerswarmError(e, 'CONFIG_INVALID'));
    assert.equal(validatePolicy(DEFAULT_PIECE_POLICY), DEFAULT_PIECE_POLICY);
  });
});

describe('metainfo', () => {
  const data = randomBytes(2 * MiB + 12345);
  const digest = `sha256:${sha(data)}`;

  test('deterministic whatever the chunking, piece hashes match the bytes', async () => {
    const a = await computeMetainfo(digest, [data], data.length);
    const chunks = (function* () { for (let i = 0; i < data.length; i += 7777) yield data.subarray(i, i + 7777); })();
    const b = await computeMetainfo(digest, chunks, data.length);
    assert.deepEqual(a, b);
    assert.equal(a.pieceLength, MiB);
    assert.equal(a.pieceHashes.length, 3);
    for (let i = 0; i < 3; i++) {
      const { offset, length } = pieceRange(a, i);
      assert.equal(a.pieceHashes[i], sha(data.subarray(offset, offset + length)));
    }
    assert.equal(pieceRange(a, 2).length, 12345);
  });

  test('wrong bytes or size are refused', async () => {
    const other = Buffer.from(data);
    other.writeUInt8(other.readUInt8(0) ^ 1, 0);
    await assert.rejects(computeMetainfo(digest, [other], data.length), (e) => isLayerswarmError(e, 'DIGEST_MISMATCH'));
    await assert.rejects(computeMetainfo(digest, [data.subarray(1)], data.length), (e) => isLayerswarmError(e, 'SIZE_MISMATCH'));
  });

  test('empty blob: one empty piece', async () => {
    const m = await computeMetainfo(`sha256:${sha(Buffer.alloc(0))}`, [], 0);
    assert.deepEqual(m.pieceHashes, [sha(Buffer.alloc(0))]);
  });

  test('metainfo from the network is validated', async () => {
    const m = await computeMetainfo(digest, [data], data.length);
    assert.deepEqual(parseMetainfo(JSON.parse(JSON.stringify(m))), m);
    const bad: Array<[string, unknown]> = [
      ['not an object', 'x'],
      ['digest', { ...m, digest: 'sha256:../x' }],
      ['size', { ...m, size: -1 }],
      ['pieceLength', { ...m, pieceLength: 3000 }],
      ['count', { ...m, pieceHashes: m.pieceHashes.slice(1) }],
      ['hex', { ...m, pieceHashes: [...m.pieceHashes.slice(1), 'Z'.repeat(64)] }],
    ];
    for (const [what, input] of bad) assert.throws(() => parseMetainfo(input), (e) => isLayerswarmError(e), what);
  });
});
