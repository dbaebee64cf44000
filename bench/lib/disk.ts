/**
 * Disk probe: how long this machine takes to write a file of a given size (into the page cache) and then fsync it.
 * The agent fsyncs every blob before publishing it (and before serving its first byte), so on a cold pull this cost
 * is on the critical path; the registry-direct baseline has nothing like it.
 */
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface FsyncProbe {
  bytes: number;
  /** Buffered writes of `bytes` (1 MiB each), no sync. */
  writeSeconds: number;
  /** The fsync that follows. */
  fsyncSeconds: number;
}

export async function probeFsync(dir: string, bytes: number): Promise<FsyncProbe> {
  const path = join(dir, `fsync-probe-${process.pid}`);
  const chunk = randomBytes(1024 * 1024);
  const fh = await open(path, 'wx');
  try {
    const t0 = performance.now();
    for (let off = 0; off < bytes; off += chunk.length) {
      await fh.write(chunk, 0, Math.min(chunk.length, bytes - off), off);
    }
    const t1 = performance.now();
    await fh.sync();
    const t2 = performance.now();
    return { bytes, writeSeconds: (t1 - t0) / 1000, fsyncSeconds: (t2 - t1) / 1000 };
  } finally {
    await fh.close();
    await rm(path, { force: true });
  }
}
