/** Writing blob bytes to a destination with explicit flush waits (BlobReader.sendTo of both stores). */
import type { FileHandle } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import type { BlobReader } from './blob-store.ts';
import { LayerswarmError } from '../../shared/errors.ts';

export const SEND_CHUNK_BYTES = 1024 * 1024;

/** dest.write(chunk), settling when the chunk was flushed (or the destination failed). */
export function writeFlushed(dest: Writable, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    if (dest.destroyed || dest.writableEnded) {
      reject(new LayerswarmError('ABORTED', 'destination closed'));
      return;
    }
    dest.write(chunk, (err) => (err ? reject(new LayerswarmError('ABORTED', 'destination failed', { cause: err })) : resolve()));
  });
}

/**
 * Send `length` bytes of `fh` from `start` to `dest` through two reused buffers: read the next chunk while the
 * previous one is being written, reuse a buffer only after its write was flushed.
 */
export async function sendFileRange(
  fh: FileHandle,
  start: number,
  length: number,
  dest: Writable,
  onProgress?: (bytes: number) => void,
  chunkBytes = SEND_CHUNK_BYTES,
): Promise<number> {
  const size = Math.max(1, Math.min(chunkBytes, length));
  const buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)] as const;
  let sent = 0;
  let pending: Promise<void> | undefined;
  try {
    for (let i = 0; sent < length; i ^= 1) {
      const buffer = i === 0 ? buffers[0] : buffers[1];
      const { bytesRead } = await fh.read(buffer, 0, Math.min(size, length - sent), start + sent);
      if (bytesRead === 0) throw new LayerswarmError('STORE_IO', `blob file ended ${length - sent} bytes early`);
      await pending; // the other buffer's write: flushed, so that buffer may be refilled next round
      pending = writeFlushed(dest, buffer.subarray(0, bytesRead));
      pending.catch(() => undefined); // observed by the next await
      sent += bytesRead;
      onProgress?.(bytesRead);
    }
    await pending;
    return sent;
  } catch (err) {
    await pending?.catch(() => undefined);
    throw err;
  }
}

/** Send in-memory chunks to `dest`, each after the previous one was flushed. */
export async function sendChunks(chunks: Iterable<Uint8Array>, dest: Writable, onProgress?: (bytes: number) => void): Promise<number> {
  let sent = 0;
  for (const chunk of chunks) {
    await writeFlushed(dest, chunk);
    sent += chunk.byteLength;
    onProgress?.(chunk.byteLength);
  }
  return sent;
}

/**
 * A BlobReader whose stream is created on first access; `release` (the store's unpin) runs exactly once, when the
 * stream closes or sendTo settles.
 */
export function makeReader(
  size: number,
  openStream: () => Readable,
  send: (dest: Writable, onProgress?: (bytes: number) => void) => Promise<number>,
  release: () => void,
): BlobReader {
  let released = false;
  const releaseOnce = (): void => {
    if (!released) {
      released = true;
      release();
    }
  };
  let stream: Readable | undefined;
  let used = false;
  const claim = (how: string): void => {
    if (used) throw new LayerswarmError('INTERNAL', `blob reader used twice (${how})`);
    used = true;
  };
  return {
    size,
    get stream(): Readable {
      if (!stream) {
        claim('stream');
        stream = openStream();
        stream.once('close', releaseOnce);
      }
      return stream;
    },
    sendTo: async (dest, onProgress) => {
      claim('sendTo');
      try {
        return await send(dest, onProgress);
      } finally {
        releaseOnce();
      }
    },
  };
}
