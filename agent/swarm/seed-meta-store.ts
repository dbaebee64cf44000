/**
 * The agent's persisted metainfo of committed swarm blobs, so a restarted agent can seed what its store holds.
 *
 * One small JSON file per digest, `<dir>/<hex>.json` = `{ metainfo, savedAt }` (dir: `<dataDir>/swarm/meta`), written
 * atomically (shared/atomic-file.ts: temp file, fsync, rename). list() reads every file back, validating it with
 * parseMetainfo and checking it against its name; a bad file is logged and deleted. Files are small (≤ 65 536 piece
 * hashes ≈ 4.3 MiB of JSON; larger files are refused).
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../shared/atomic-file.ts';
import { throwIfAborted } from '../../shared/abort.ts';
import { parseDigest } from '../../shared/digest.ts';
import { LayerswarmError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { parseMetainfo, type Metainfo } from '../../shared/swarm/metainfo.ts';

export interface SeedMetaRecord {
  readonly metainfo: Metainfo;
  /** ms since the epoch: when the blob was committed. */
  readonly savedAt: number;
}

const FILE_RE = /^([a-f0-9]{64})\.json$/;
const MAX_FILE_BYTES = 8 * 2 ** 20;

export class SeedMetaStore {
  readonly dir: string;
  readonly #log: Logger;
  readonly #now: () => number;

  constructor(options: { dir: string; logger: Logger; now?: () => number }) {
    this.dir = options.dir;
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
  }

  async put(metainfo: Metainfo): Promise<void> {
    const record: SeedMetaRecord = { metainfo, savedAt: this.#now() };
    try {
      await writeFileAtomic(this.#path(metainfo.digest), JSON.stringify(record));
    } catch (err) {
      throw new LayerswarmError('STORE_IO', `cannot write metainfo of ${metainfo.digest}: ${(err as Error).message}`, { cause: err });
    }
  }

  async delete(digest: string): Promise<void> {
    await rm(this.#path(digest), { force: true });
  }

  /** Every valid record, newest first. Bad files are deleted; stray temp files too. */
  async list(signal: AbortSignal): Promise<SeedMetaRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new LayerswarmError('STORE_IO', `cannot read ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
    const records: SeedMetaRecord[] = [];
    for (const name of names) {
      throwIfAborted(signal, 'metainfo load');
      const path = join(this.dir, name);
      if (name.startsWith('.tmp-')) {
        await rm(path, { force: true });
        continue;
      }
      const m = FILE_RE.exec(name);
      if (!m) continue;
      try {
        if ((await stat(path)).size > MAX_FILE_BYTES) throw new Error('file too large');
        const raw = JSON.parse(await readFile(path, { encoding: 'utf8', signal })) as Partial<Record<keyof SeedMetaRecord, unknown>>;
        const metainfo = parseMetainfo(raw.metainfo);
        if (metainfo.digest !== `sha256:${m[1] ?? ''}`) throw new Error(`holds metainfo of ${metainfo.digest}`);
        const savedAt = typeof raw.savedAt === 'number' && Number.isFinite(raw.savedAt) ? raw.savedAt : 0;
        records.push({ metainfo, savedAt });
      } catch (err) {
        if (signal.aborted) throw err;
        this.#log.warn({ err, path }, 'deleting an unreadable metainfo file');
        await rm(path, { force: true });
      }
    }
    return records.sort((a, b) => b.savedAt - a.savedAt);
  }

  #path(digest: string): string {
    return join(this.dir, `${parseDigest(digest).hex}.json`);
  }
}
