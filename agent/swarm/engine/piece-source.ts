/**
 * Where a torrent reads the pieces it uploads. Only verified pieces are ever read: a PieceSource's `have` lists
 * exactly the pieces it may serve. Implementations: PieceFile (a partial download, piece-file.ts), a complete file
 * (`completeFileSource`), and a blob in the verified BlobStore (`blobStoreSource`).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { throwIfAborted } from '../../../shared/abort.ts';
import { parseDigest } from '../../../shared/digest.ts';
import { LayerswarmError } from '../../../shared/errors.ts';
import { pieceRange, type Metainfo } from '../../../shared/swarm/metainfo.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { fsError } from '../../store/fs-store.ts';
import { Bitfield } from '../scheduler/bitfield.ts';

export interface PieceSource {
  /** Pieces that may be read (verified). Live: a PieceFile adds pieces as they are written. */
  readonly have: Bitfield;
  /** The bytes of a piece in `have` (a fresh Buffer the caller may keep). */
  readPiece(piece: number, signal: AbortSignal): Promise<Buffer>;
  close(): Promise<void>;
}

/** Read `length` bytes at `offset` of an open file; STORE_IO when the file is shorter. */
export async function readRange(fh: FileHandle, offset: number, length: number, what: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, done, length - done, offset + done));
    } catch (err) {
      throw fsError(err, what);
    }
    if (n === 0) throw new LayerswarmError('STORE_IO', `${what}: file ends ${length - done} bytes early`);
    done += n;
  }
  return buf;
}

/** Seed from a complete file the caller has verified (size is checked, content is trusted). */
export async function completeFileSource(path: string, meta: Metainfo): Promise<PieceSource> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw fsError(err, `open ${path}`);
  }
  const size = (await fh.stat()).size;
  if (size !== meta.size) {
    await fh.close();
    throw new LayerswarmError('SIZE_MISMATCH', `${path} is ${size} bytes, ${meta.digest} is ${meta.size}`);
  }
  const have = Bitfield.full(meta.pieceHashes.length);
  return {
    have,
    readPiece: async (piece, signal) => {
      throwIfAborted(signal, `read piece ${piece}`);
      const { offset, length } = pieceRange(meta, piece);
      return readRange(fh, offset, length, `read piece ${piece} of ${path}`);
    },
    close: () => fh.close().catch(() => undefined),
  };
}

/** Seed a blob held (verified) by a BlobStore; each piece read opens a pinned range. */
export async function blobStoreSource(store: BlobStore, meta: Metainfo): Promise<PieceSource> {
  const digest = parseDigest(meta.digest);
  const info = await store.stat(digest);
  if (info === undefined) throw new LayerswarmError('BLOB_UNKNOWN', `${meta.digest} is not in the store`);
  if (info.size !== meta.size) throw new LayerswarmError('SIZE_MISMATCH', `stored ${meta.digest} is ${info.size} bytes, metainfo says ${meta.size}`);
  return {
    have: Bitfield.full(meta.pieceHashes.length),
    readPiece: async (piece, signal) => {
      const { offset, length } = pieceRange(meta, piece);
      if (length === 0) return Buffer.alloc(0);
      const reader = await store.open(digest, { start: offset, end: offset + length - 1 });
      if (reader === undefined) throw new LayerswarmError('BLOB_UNKNOWN', `${meta.digest} left the store`);
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      const stream = reader.stream;
      const onAbort = (): void => void stream.destroy(new LayerswarmError('ABORTED', `read piece ${piece}: aborted`));
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (done + chunk.byteLength > length) throw new LayerswarmError('STORE_IO', `piece ${piece}: store returned too many bytes`);
          chunk.copy(buf, done);
          done += chunk.byteLength;
        }
      } finally {
        signal.removeEventListener('abort', onAbort);
        stream.destroy();
      }
      if (done !== length) throw new LayerswarmError('STORE_IO', `piece ${piece}: store returned ${done} of ${length} bytes`);
      return buf;
    },
    close: async () => undefined,
  };
}
