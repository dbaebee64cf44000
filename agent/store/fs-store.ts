/**
 * FsBlobStore: the BlobStore on a local directory.
 *
 * Layout: `<dir>/blobs/sha256/<hex>` holds committed, verified blobs; `<dir>/tmp/<hex>.<uuid>.part` holds writes in
 * progress. Nothing in blobs/ is ever partial: a writer streams into its temp file while hashing, and commit checks
 * the size and digest, writes the last-use time as mtime, fsyncs the file, renames it into blobs/ and fsyncs that
 * directory. init() deletes everything in tmp/ (a crash leaves only temp files behind) and indexes blobs/, so a
 * directory belongs to one store instance at a time.
 *
 * Last use survives restarts as the file's mtime: set at commit and refreshed on open (at most once per
 * USE_PERSIST_INTERVAL_MS per blob, in the background). atime is not used: relatime/noatime mounts make it unreliable.
 * init() trusts the content of blobs/ (it was verified before the rename) and does not re-hash it.
 *
 * Operations on one digest's file (publish, unlink, mtime) are serialized, so an eviction and a new commit of the
 * same blob never interleave. ENOSPC/EDQUOT anywhere is STORE_FULL, any other file-system error STORE_IO (with cause).
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../../shared/digest.ts';
import { throwIfAborted } from '../../shared/abort.ts';
import { LayerswarmError } from '../../shared/errors.ts';
import { silentLogger, type Logger } from '../../shared/logging.ts';
import type { BlobInfo, BlobReader, BlobStore, BlobWriter, ByteRange, StoreUsage } from './blob-store.ts';
import { makeReader, sendFileRange } from './send.ts';
import { LruIndex } from './lru.ts';
import { VerifyingWriter, storeFullError, type WriterHost, type WriterSink } from './writer.ts';

export interface FsBlobStoreOptions {
  /** Data directory; created by init(). */
  readonly dir: string;
  /** Size cap of the cached blobs, in bytes. */
  readonly capBytes: number;
  readonly logger?: Logger;
  /** Clock for LRU bookkeeping and persisted last-use times (default Date.now). */
  readonly now?: () => number;
  /** Called after every change of usage (commit, eviction, delete), e.g. to update a cache-size gauge. */
  readonly onChange?: (usage: StoreUsage) => void;
  /** Called once per blob evicted to make room (metrics). Must not throw. */
  readonly onEvict?: (size: number) => void;
}

/** Read streams move 1 MiB per chunk: disk-speed serving without many small reads. */
export const READ_HIGH_WATER_MARK = 1024 * 1024;
/** An open refreshes the blob's mtime on disk at most this often. */
export const USE_PERSIST_INTERVAL_MS = 1000;
const HEX_RE = /^[a-f0-9]{64}$/;
const STAT_BATCH = 64;

/** Map a file-system error: ENOSPC/EDQUOT → STORE_FULL, anything else → STORE_IO. LayerswarmErrors pass as they are. */
export function fsError(err: unknown, what: string): LayerswarmError {
  if (err instanceof LayerswarmError) return err;
  const code = errno(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new LayerswarmError('STORE_FULL', `${what}: no space left on the store's file system (${code})`, { cause: err });
  }
  return new LayerswarmError('STORE_IO', `${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Await a file-system operation; its failure becomes fsError(err, what). */
async function io<T>(p: Promise<T>, what: string): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw fsError(err, what);
  }
}

export class FsBlobStore implements BlobStore {
  readonly dir: string;
  readonly #blobDir: string;
  readonly #tmpDir: string;
  readonly #index: LruIndex;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #onChange: ((usage: StoreUsage) => void) | undefined;
  readonly #onEvict: ((size: number) => void) | undefined;
  readonly #writers = new Set<VerifyingWriter>();
  /** Tail of the serialized file operations, per digest hex. */
  readonly #locks = new Map<string, Promise<void>>();
  readonly #background = new Set<Promise<void>>();
  readonly #host: WriterHost;
  #initializing: Promise<void> | undefined;
  #initialized = false;
  #closed = false;

  constructor(options: FsBlobStoreOptions) {
    this.dir = options.dir;
    this.#blobDir = join(options.dir, 'blobs', 'sha256');
    this.#tmpDir = join(options.dir, 'tmp');
    this.#now = options.now ?? Date.now;
    this.#index = new LruIndex({ capBytes: options.capBytes, now: this.#now });
    this.#log = options.logger ?? silentLogger();
    this.#onChange = options.onChange;
    this.#onEvict = options.onEvict;
    this.#host = {
      log: this.#log,
      reserve: (digest, total, more) => this.#reserve(digest, total, more),
      release: (bytes) => this.#index.release(bytes),
      done: (writer) => this.#writers.delete(writer),
    };
  }

  init(signal?: AbortSignal): Promise<void> {
    this.#initializing ??= this.#init(signal).catch((err: unknown) => {
      this.#initializing = undefined; // a failed init may be retried
      throw err;
    });
    return this.#initializing;
  }

  async #init(signal: AbortSignal | undefined): Promise<void> {
    throwIfAborted(signal, 'blob store init');
    // One level at a time below `dir`: a recursive mkdir reports ENOENT where the real cause is e.g. EROFS.
    for (const [d, recursive] of [[this.dir, true], [join(this.dir, 'blobs'), false], [this.#blobDir, false], [this.#tmpDir, false]] as const) {
      await mkdir(d, { recursive }).catch((err: unknown) => {
        if (errno(err) !== 'EEXIST') throw fsError(err, `cannot create blob store directory ${d}`);
      });
    }
    const probe = join(this.#tmpDir, `.probe-${randomUUID()}`);
    await io(writeFile(probe, '').then(() => rm(probe)), `blob store directory ${this.#tmpDir} is not writable`);
    const stale = await io(readdir(this.#tmpDir), `cannot list ${this.#tmpDir}`);
    for (const name of stale) {
      const path = join(this.#tmpDir, name);
      await io(rm(path, { recursive: true, force: true }), `cannot remove stale temp file ${path}`);
    }
    throwIfAborted(signal, 'blob store init');
    this.#index.load(await this.#scanBlobs(signal));
    this.#initialized = true;
    await Promise.all(this.#index.makeRoom(0).victims.map((v) => this.#evicted(v.key, v.size, v.lastUse)));
    this.#log.info({ dir: this.dir, blobs: this.#index.count, bytes: this.#index.bytes, staleTemps: stale.length }, 'blob store ready');
    this.#changed();
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    this.#check();
    const e = this.#index.get(digest.hex);
    return e ? { digest, size: e.size } : undefined;
  }

  async open(digest: Digest, range?: ByteRange): Promise<BlobReader | undefined> {
    this.#check();
    const hex = digest.hex;
    const entry = this.#index.get(hex);
    if (!entry) return undefined;
    const start = range?.start ?? 0;
    const end = range ? range.end : entry.size - 1;
    if (range && (start < 0 || start > end || end >= entry.size)) {
      throw new LayerswarmError('RANGE_NOT_SATISFIABLE', `range ${start}-${end} is outside blob ${digest.value} (${entry.size} bytes)`);
    }
    const previousUse = entry.lastUse;
    this.#index.pin(hex); // synchronously, before any await: from here on it cannot be evicted
    let fh: FileHandle;
    try {
      fh = await open(this.#blobPath(hex), 'r');
    } catch (err) {
      if (errno(err) !== 'ENOENT') {
        this.#unpin(hex);
        throw fsError(err, `cannot open blob ${digest.value}`);
      }
      this.#log.warn({ digest: digest.value }, 'blob file vanished from the store directory; dropping it from the index');
      this.#index.forget(hex);
      this.#changed();
      return undefined;
    }
    const lastUse = this.#index.peek(hex)?.lastUse ?? previousUse;
    if (lastUse - previousUse >= USE_PERSIST_INTERVAL_MS) this.#persistUse(hex, lastUse);
    const size = entry.size === 0 ? 0 : end - start + 1;
    return makeReader(
      size,
      // An empty blob has no valid `end`: read it to EOF (immediately). The stream closes the file handle.
      () => fh.createReadStream({ ...(entry.size === 0 ? {} : { start, end }), highWaterMark: READ_HIGH_WATER_MARK }),
      async (dest, onProgress) => {
        try {
          return await sendFileRange(fh, start, size, dest, onProgress);
        } finally {
          await fh.close().catch(() => undefined);
        }
      },
      () => this.#unpin(hex),
    );
  }

  async createWriter(digest: Digest, options: { expectedSize?: number } = {}): Promise<BlobWriter> {
    this.#check();
    const expected = options.expectedSize;
    if (expected !== undefined && (!Number.isSafeInteger(expected) || expected < 0)) {
      throw new LayerswarmError('SIZE_INVALID', `invalid expected size ${expected} for blob ${digest.value}`);
    }
    if (expected) await this.#reserve(digest, expected, expected);
    const tempPath = join(this.#tmpDir, `${digest.hex}.${randomUUID()}.part`);
    const fh = await io(open(tempPath, 'wx', 0o644), `cannot create temp file for blob ${digest.value}`).catch((err: unknown) => {
      this.#index.release(expected ?? 0);
      throw err;
    });
    const writer = new VerifyingWriter(digest, expected, expected ?? 0, this.#tempSink(digest, tempPath, fh), this.#host);
    this.#writers.add(writer);
    return writer;
  }

  #tempSink(digest: Digest, tempPath: string, fh: FileHandle): WriterSink {
    let fhClosed = false;
    const closeFh = async () => {
      if (fhClosed) return;
      fhClosed = true;
      await fh.close(); // waits for a write in flight
    };
    return {
      write: async (chunk, position) => {
        for (let off = 0; off < chunk.byteLength; ) {
          const { bytesWritten } = await fh.write(chunk, off, chunk.byteLength - off, position + off);
          if (bytesWritten <= 0) throw new Error(`write to ${tempPath} made no progress`);
          off += bytesWritten;
        }
      },
      publish: async (size, reserved) => {
        const t = this.#now() / 1000; // the last use, persisted as mtime
        await fh.utimes(t, t);
        await fh.sync();
        await closeFh();
        return this.#publish(digest, tempPath, size, reserved);
      },
      discard: async () => {
        await closeFh().catch(() => undefined);
        await rm(tempPath, { force: true });
      },
      error: (err, what) => fsError(err, `${what} (${tempPath})`),
    };
  }

  async delete(digest: Digest): Promise<boolean> {
    this.#check();
    const result = this.#index.delete(digest.hex);
    if (result === 'removed') {
      this.#changed();
      await this.#unlinkBlob(digest.hex);
    }
    return result !== 'absent';
  }

  usage(): StoreUsage {
    return { bytes: this.#index.bytes, count: this.#index.count, capBytes: this.#index.capBytes };
  }

  /** Bytes promised to writers in progress (not part of usage().bytes). */
  get reservedBytes(): number {
    return this.#index.reserved;
  }

  /** Abort writers in progress (removing their temp files) and wait for pending file operations. Open read streams
   * keep working. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#writers].map((w) => w.abort()));
    await Promise.all([...this.#locks.values(), ...this.#background]);
  }

  #check(): void {
    if (!this.#initialized) throw new LayerswarmError('INTERNAL', 'FsBlobStore.init() must be called before use');
    if (this.#closed) throw new LayerswarmError('INTERNAL', 'the blob store is closed');
  }

  #blobPath(hex: string): string {
    return join(this.#blobDir, hex);
  }

  async #scanBlobs(signal: AbortSignal | undefined): Promise<{ key: string; size: number; lastUse: number }[]> {
    const names = await io(readdir(this.#blobDir), `cannot list ${this.#blobDir}`);
    const found: { key: string; size: number; lastUse: number }[] = [];
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      throwIfAborted(signal, 'blob store init');
      await Promise.all(
        names.slice(i, i + STAT_BATCH).map(async (name) => {
          const path = join(this.#blobDir, name);
          const st = HEX_RE.test(name) ? await io(stat(path), `cannot stat ${path}`) : undefined;
          if (st?.isFile()) found.push({ key: name, size: st.size, lastUse: st.mtimeMs });
          else this.#log.warn({ path }, 'ignoring unexpected entry in the blob directory');
        }),
      );
    }
    return found;
  }

  /** Not async on purpose: the reservation (or the STORE_FULL throw) happens synchronously, before any await. */
  #reserve(digest: Digest, total: number, more: number): Promise<void> {
    const room = this.#index.tryReserve(total, more);
    if (!room.fits) throw storeFullError(digest.value, total, this.#index);
    if (room.victims.length > 0) this.#changed();
    return Promise.all(room.victims.map((v) => this.#evicted(v.key, v.size, v.lastUse))).then(() => undefined);
  }

  async #evicted(hex: string, size: number, lastUse: number): Promise<void> {
    this.#onEvict?.(size);
    this.#log.info({ digest: `sha256:${hex}`, size, lastUse: new Date(lastUse).toISOString() }, 'evicted blob (least recently used)');
    await this.#unlinkBlob(hex);
  }

  /** Move a verified temp file into blobs/ and index it (or drop it when the blob is there already). */
  #publish(digest: Digest, tempPath: string, size: number, reserved: number): Promise<BlobInfo> {
    return this.#serial(digest.hex, async () => {
      if (this.#index.peek(digest.hex)) {
        // Committed concurrently, or still on disk for a reader while its delete is deferred: same bytes, keep it.
        await rm(tempPath, { force: true }).catch((err: unknown) => this.#log.warn({ err, tempPath }, 'cannot remove duplicate temp file'));
      } else {
        const path = this.#blobPath(digest.hex);
        await io(rename(tempPath, path), `cannot move blob ${digest.value} into place`);
        await this.#syncDir(this.#blobDir).catch(async (err: unknown) => {
          await rm(path, { force: true }).catch(() => undefined); // not durable: do not publish it
          throw err;
        });
      }
      this.#index.release(reserved);
      this.#index.add(digest.hex, size);
      this.#changed();
      return { digest, size };
    });
  }

  async #syncDir(path: string): Promise<void> {
    const dh = await io(open(path, 'r'), `cannot open directory ${path}`);
    try {
      await dh.sync();
    } catch (err) {
      if (errno(err) !== 'EINVAL' && errno(err) !== 'ENOTSUP') throw fsError(err, `cannot fsync directory ${path}`);
    } finally {
      await dh.close().catch(() => undefined);
    }
  }

  #unlinkBlob(hex: string): Promise<void> {
    return this.#serial(hex, () =>
      unlink(this.#blobPath(hex)).catch((err: unknown) => {
        if (errno(err) !== 'ENOENT') this.#log.warn({ err, digest: `sha256:${hex}` }, 'cannot remove blob file');
      }),
    );
  }

  #serial<T>(hex: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.#locks.get(hex) ?? Promise.resolve()).then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.#locks.set(hex, tail);
    void tail.then(() => this.#locks.get(hex) === tail && this.#locks.delete(hex));
    return run;
  }

  #unpin(hex: string): void {
    if (!this.#index.unpin(hex)) return;
    this.#changed();
    this.#track(this.#unlinkBlob(hex)); // a deferred delete became due
  }

  #persistUse(hex: string, lastUse: number): void {
    const t = lastUse / 1000;
    const update = async () => {
      if (this.#index.peek(hex)) await utimes(this.#blobPath(hex), t, t);
    };
    this.#track(this.#serial(hex, update).catch((err: unknown) => this.#log.debug({ err, hex }, 'cannot update blob mtime')));
  }

  #track(p: Promise<void>): void {
    const settled = p.catch((err: unknown) => this.#log.warn({ err }, 'background store operation failed'));
    this.#background.add(settled);
    void settled.finally(() => this.#background.delete(settled));
  }

  #changed(): void {
    try {
      this.#onChange?.(this.usage());
    } catch (err) {
      this.#log.warn({ err }, 'store onChange hook threw');
    }
  }
}
