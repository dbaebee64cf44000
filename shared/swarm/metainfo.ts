/**
 * Metainfo: what turns a blob into a swarm. Keyed by the blob's OCI digest (no infohash indirection):
 * {digest, size, pieceLength, pieceHashes (sha256 of every piece, hex)}. Deterministic for a blob and a policy.
 *
 * The piece-length policy lives here and only here: a power of two near size / targetPieces, clamped to
 * [minPieceLength, maxPieceLength]; a blob no larger than minPieceLength is one piece. Blobs up to
 * originDirectMaxBytes are not worth a swarm (Dragonfly's ≤ 4 MiB rule): the agent fetches them from the origin.
 */
import { LayerswarmError } from '../errors.ts';
import { parseDigest, sha256Hasher } from '../digest.ts';

export interface Metainfo {
  /** "sha256:<hex>" of the whole blob. */
  readonly digest: string;
  readonly size: number;
  readonly pieceLength: number;
  /** sha256 (lowercase hex) of each piece, in order; the last piece may be shorter. */
  readonly pieceHashes: readonly string[];
}

export interface PiecePolicy {
  /** Smallest piece (power of two). Default 1 MiB. */
  readonly minPieceLength: number;
  /** Largest piece (power of two). Default 16 MiB. */
  readonly maxPieceLength: number;
  /** Aimed-for piece count for large blobs. Default 500. */
  readonly targetPieces: number;
  /** Blobs up to this size are fetched straight from the origin, not swarmed. Default 4 MiB. */
  readonly originDirectMaxBytes: number;
}

export const DEFAULT_PIECE_POLICY: PiecePolicy = {
  minPieceLength: 1 << 20,
  maxPieceLength: 16 << 20,
  targetPieces: 500,
  originDirectMaxBytes: 4 << 20,
};

/** Hard caps on metainfo from the network (tracker, peers, seeder). */
export const METAINFO_LIMITS = {
  /** Largest blob a swarm may describe: 1 TiB. */
  maxSize: 2 ** 40,
  /** Most pieces a metainfo may list (1 TiB at 16 MiB pieces = 65 536). */
  maxPieces: 65_536,
  minPieceLength: 1 << 14,
  maxPieceLength: 1 << 26,
} as const;

const isPowerOfTwo = (n: number): boolean => Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0 && n <= 2 ** 30;

export function validatePolicy(policy: PiecePolicy): PiecePolicy {
  const { minPieceLength: min, maxPieceLength: max, targetPieces, originDirectMaxBytes } = policy;
  if (!isPowerOfTwo(min) || !isPowerOfTwo(max) || min > max || min < METAINFO_LIMITS.minPieceLength || max > METAINFO_LIMITS.maxPieceLength) {
    throw new LayerswarmError('CONFIG_INVALID', `piece lengths must be powers of two with ${METAINFO_LIMITS.minPieceLength} ≤ min ≤ max ≤ ${METAINFO_LIMITS.maxPieceLength}, got ${min}..${max}`);
  }
  if (!Number.isSafeInteger(targetPieces) || targetPieces < 1) throw new LayerswarmError('CONFIG_INVALID', `targetPieces must be ≥ 1, got ${targetPieces}`);
  if (!Number.isSafeInteger(originDirectMaxBytes) || originDirectMaxBytes < 0) {
    throw new LayerswarmError('CONFIG_INVALID', `originDirectMaxBytes must be ≥ 0, got ${originDirectMaxBytes}`);
  }
  return policy;
}

/** The piece length for a blob of `size` bytes under `policy`. */
export function pieceLengthFor(size: number, policy: PiecePolicy = DEFAULT_PIECE_POLICY): number {
  if (size <= policy.minPieceLength) return policy.minPieceLength;
  let length = policy.minPieceLength;
  const wanted = size / policy.targetPieces;
  while (length < wanted && length < policy.maxPieceLength) length *= 2;
  return length;
}

/** True when the blob should go through the swarm (else: straight from the origin). */
export function shouldSwarm(size: number, policy: PiecePolicy = DEFAULT_PIECE_POLICY): boolean {
  return size > policy.originDirectMaxBytes;
}

export function pieceCount(size: number, pieceLength: number): number {
  return size === 0 ? 1 : Math.ceil(size / pieceLength);
}

/** Byte offset and length of piece `index`. */
export function pieceRange(meta: Pick<Metainfo, 'size' | 'pieceLength'>, index: number): { offset: number; length: number } {
  const offset = index * meta.pieceLength;
  return { offset, length: Math.max(0, Math.min(meta.pieceLength, meta.size - offset)) };
}

/**
 * Compute metainfo from the blob's bytes (any chunking), verifying the whole digest as well. Throws DIGEST_MISMATCH
 * or SIZE_MISMATCH when the bytes are not the blob.
 */
export async function computeMetainfo(
  digest: string,
  bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  size: number,
  policy: PiecePolicy = DEFAULT_PIECE_POLICY,
): Promise<Metainfo> {
  const expected = parseDigest(digest);
  const pieceLength = pieceLengthFor(size, policy);
  const whole = sha256Hasher();
  const pieceHashes: string[] = [];
  let piece = sha256Hasher();
  let inPiece = 0;
  let total = 0;
  for await (const chunk of bytes) {
    whole.update(chunk);
    total += chunk.byteLength;
    for (let offset = 0; offset < chunk.byteLength; ) {
      const n = Math.min(chunk.byteLength - offset, pieceLength - inPiece);
      piece.update(chunk.subarray(offset, offset + n));
      inPiece += n;
      offset += n;
      if (inPiece === pieceLength) {
        pieceHashes.push(piece.digest('hex'));
        piece = sha256Hasher();
        inPiece = 0;
      }
    }
  }
  if (inPiece > 0 || pieceHashes.length === 0) pieceHashes.push(piece.digest('hex'));
  if (total !== size) throw new LayerswarmError('SIZE_MISMATCH', `blob ${digest}: expected ${size} bytes, got ${total}`);
  const actual = whole.digest('hex');
  if (actual !== expected.hex) throw new LayerswarmError('DIGEST_MISMATCH', `blob ${digest}: bytes hash to sha256:${actual}`);
  return { digest: expected.value, size, pieceLength, pieceHashes };
}

/** Validate metainfo that came from the network; returns a clean copy. Throws METAINFO_INVALID (or DIGEST_INVALID). */
export function parseMetainfo(input: unknown): Metainfo {
  const bad = (why: string): LayerswarmError => new LayerswarmError('METAINFO_INVALID', `invalid metainfo: ${why}`);
  if (typeof input !== 'object' || input === null) throw bad('not an object');
  const m = input as Record<string, unknown>;
  if (typeof m.digest !== 'string') throw bad('digest missing');
  const digest = parseDigest(m.digest).value;
  const size = m.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > METAINFO_LIMITS.maxSize) throw bad(`size ${String(size)} out of range`);
  const pieceLength = m.pieceLength;
  if (typeof pieceLength !== 'number' || !isPowerOfTwo(pieceLength) || pieceLength < METAINFO_LIMITS.minPieceLength || pieceLength > METAINFO_LIMITS.maxPieceLength) {
    throw bad(`pieceLength ${String(pieceLength)} is not a power of two in range`);
  }
  const hashes = m.pieceHashes;
  if (!Array.isArray(hashes) || hashes.length > METAINFO_LIMITS.maxPieces) throw bad('pieceHashes must be a list of at most 65536');
  if (hashes.length !== pieceCount(size, pieceLength)) throw bad(`${hashes.length} piece hashes for ${pieceCount(size, pieceLength)} pieces`);
  for (const h of hashes) if (typeof h !== 'string' || !/^[a-f0-9]{64}$/.test(h)) throw bad('a piece hash is not 64 lowercase hex characters');
  return { digest, size, pieceLength, pieceHashes: [...(hashes as string[])] };
}
