/**
 * The seeder's metainfo, one JSON file per digest under `<dataDir>/metainfo/<hex>.json`, with where the blob came
 * from (so it can be fetched again after an eviction). Writes are atomic (temp file, fsync, rename, fsync of the
 * directory); load() reads everything at start, validating each file with parseMetainfo and dropping (with a
 * warning) files that do not parse or do not match their name. In memory afterwards: metainfo is small.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { throwIfAborted } from '../../shared/abort.ts';
import type { Digest } from '../../shared/digest.ts';
import { LayerswarmError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { parseMetainfo, type Metainfo } from '../../shared/swarm/metainfo.ts';

export interface MetainfoRecord {
  readonly metainfo: Metainfo;
  /** Registry host and repository the blob was fetched from. */
  readonly registry: string;
  readonly repository: string;
  /** ms since the epoch. */
  readonly producedAt: number;
}

const FILE_RE = /^([a-f0-9]{64})\.json$/;
/** Largest metainfo file read back (65 536 piece hashes ≈ 4.3 MiB of JSON). */
const MAX_FILE_BYTES = 8 * 2 ** 20;

export class MetainfoStore {
  readonly dir: string;
  readonly #log: Logger;
  readonly #records = new Map<string, MetainfoRecord>();

  constructor(options: { dataDir: string; logger: Logger }) {
    this.dir = join(options.dataDir, 'metainfo');
    this.#log = options.logger;
  }

  get count(): number {
    return this.#records.size;
  }

  get(digest: string): MetainfoRecord | undefined {
    return this.#records.get(digest);
  }

  all(): MetainfoRecord[] {
    return [...this.#records.values()];
  }

  /** Create the directory, remove stale temp files, read every record. */
  async load(signal: AbortSignal): Promise<number> {
    await mkdir(this.dir, { recursive: true }).catch((err: unknown) => {
      throw new LayerswarmError('STORE_IO', `cannot create ${this.dir}: ${(err as Error).message}`, { cause: err });
    });
    for (const name of await readdir(this.dir)) {
      throwIfAborted(signal, 'metainfo load');
      const path = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        await rm(path, { force: true });
        continue;
      }
      const m = FILE_RE.exec(name);
      if (!m) {
        this.#log.warn({ path }, 'ignoring unexpected file in the metainfo directory');
        continue;
      }
      try {
        const text = await readFile(path, { encoding: 'utf8', signal });
        if (text.length > MAX_FILE_BYTES) throw new Error('file too large');
        const record = parseRecord(JSON.parse(text) as unknown);
        if (record.metainfo.digest !== `sha256:${m[1] ?? ''}`) throw new Error(`holds metainfo of ${record.metainfo.digest}`);
        this.#records.set(record.metainfo.digest, record);
      } catch (err) {
        this.#log.warn({ err, path }, 'dropping unreadable metainfo file');
        await rm(path, { force: true });
      }
    }
    this.#log.info({ dir: this.dir, count: this.#records.size }, 'metainfo loaded');
    return this.#records.size;
  }

  /** Persist atomically, then remember. */
  async put(record: MetainfoRecord, signal: AbortSignal): Promise<void> {
    throwIfAborted(signal, 'metainfo write');
    const hex = record.metainfo.digest.slice('sha256:'.length);
    const path = join(this.dir, `${hex}.json`);
    const temp = join(this.dir, `.${hex}.${randomUUID()}.tmp`);
    try {
      const fh = await open(temp, 'wx', 0o644);
      try {
        await fh.writeFile(JSON.stringify(record));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, path);
      const dh = await open(this.dir, 'r');
      try {
        await dh.sync().catch(() => undefined);
      } finally {
        await dh.close();
      }
    } catch (err) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw new LayerswarmError('STORE_IO', `cannot write metainfo ${path}: ${(err as Error).message}`, { cause: err });
    }
    this.#records.set(record.metainfo.digest, record);
  }

  async delete(digest: Digest): Promise<void> {
    this.#records.delete(digest.value);
    await rm(join(this.dir, `${digest.hex}.json`), { force: true });
  }
}

function parseRecord(raw: unknown): MetainfoRecord {
  if (typeof raw !== 'object' || raw === null) throw new Error('not an object');
  const r = raw as Record<string, unknown>;
  if (typeof r.registry !== 'string' || typeof r.repository !== 'string' || typeof r.producedAt !== 'number') throw new Error('registry, repository or producedAt missing');
  return { metainfo: parseMetainfo(r.metainfo), registry: r.registry, repository: r.repository, producedAt: r.producedAt };
}
