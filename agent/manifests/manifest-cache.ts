/**
 * Manifests by digest (immutable, so cached for good, bounded by count) and the last known digest of each tag (for
 * stale-if-error). Bytes are stored exactly as the origin sent them, with their Content-Type, and only after their
 * sha256 was computed here: the digest is the cache key, so a stored manifest is verified by construction.
 *
 * Layout under `dir`: manifests/sha256/<hex> (bytes) + <hex>.type (Content-Type);
 * tags/<registry host>/<repository>/<tag>.json ({digest, contentType, resolvedAt}).
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../shared/logging.ts';
import { LayerswarmError } from '../../shared/errors.ts';
import { parseDigest, sha256Digest, type Digest } from '../../shared/digest.ts';
import { writeFileAtomic } from '../../shared/atomic-file.ts';

export interface CachedManifest {
  digest: Digest;
  contentType: string;
  body: Buffer;
}

export interface TagResolution {
  digest: string;
  contentType: string;
  resolvedAt: number;
}

export interface ManifestCacheOptions {
  dir: string;
  maxManifests: number;
  logger: Logger;
  now: () => number;
}

export class ManifestCache {
  readonly #o: ManifestCacheOptions;
  /** Known digests (hex) in least-recently-used order. */
  readonly #known = new Set<string>();

  constructor(options: ManifestCacheOptions) {
    this.#o = options;
  }

  get count(): number {
    return this.#known.size;
  }

  async init(): Promise<void> {
    const dir = join(this.#o.dir, 'manifests', 'sha256');
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new LayerswarmError('STORE_IO', `cannot read manifest cache ${dir}`, { cause: err });
    }
    const entries: Array<{ hex: string; mtime: number }> = [];
    for (const name of names) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const st = await stat(join(dir, name)).catch(() => undefined);
      if (st) entries.push({ hex: name, mtime: st.mtimeMs });
    }
    entries.sort((a, b) => a.mtime - b.mtime);
    for (const e of entries) this.#known.add(e.hex);
    await this.#evict();
  }

  async get(digest: Digest): Promise<CachedManifest | undefined> {
    if (!this.#known.has(digest.hex)) return undefined;
    const base = join(this.#o.dir, 'manifests', 'sha256', digest.hex);
    try {
      const [body, contentType] = await Promise.all([readFile(base), readFile(`${base}.type`, 'utf8')]);
      if (sha256Digest(body).hex !== digest.hex) {
        this.#o.logger.error({ digest: digest.value }, 'cached manifest is corrupt; dropping it');
        await this.#drop(digest.hex);
        return undefined;
      }
      this.#known.delete(digest.hex);
      this.#known.add(digest.hex);
      return { digest, contentType, body };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#known.delete(digest.hex);
        return undefined;
      }
      throw new LayerswarmError('STORE_IO', `cannot read cached manifest ${digest.value}`, { cause: err });
    }
  }

  /** Store verified bytes under their own digest. Returns that digest. Failures are logged, not thrown. */
  async put(body: Buffer, contentType: string): Promise<Digest> {
    const digest = sha256Digest(body);
    if (this.#known.has(digest.hex)) return digest;
    const base = join(this.#o.dir, 'manifests', 'sha256', digest.hex);
    try {
      await writeFileAtomic(`${base}.type`, contentType);
      await writeFileAtomic(base, body);
      this.#known.add(digest.hex);
      await this.#evict();
    } catch (err) {
      this.#o.logger.warn({ err, digest: digest.value }, 'could not cache manifest');
    }
    return digest;
  }

  async recordTag(host: string, name: string, tag: string, digest: string, contentType: string): Promise<void> {
    const resolution: TagResolution = { digest, contentType, resolvedAt: this.#o.now() };
    try {
      await writeFileAtomic(this.#tagPath(host, name, tag), JSON.stringify(resolution));
    } catch (err) {
      this.#o.logger.warn({ err, name, tag }, 'could not record tag resolution');
    }
  }

  async lastTag(host: string, name: string, tag: string): Promise<TagResolution | undefined> {
    try {
      const parsed = JSON.parse(await readFile(this.#tagPath(host, name, tag), 'utf8')) as TagResolution;
      parseDigest(parsed.digest);
      return parsed;
    } catch {
      return undefined;
    }
  }

  #tagPath(host: string, name: string, tag: string): string {
    // name and tag passed the OCI grammar (no "..", no "/" in tags); the host is encoded.
    return join(this.#o.dir, 'tags', encodeURIComponent(host), name, `${tag}.json`);
  }

  async #evict(): Promise<void> {
    while (this.#known.size > this.#o.maxManifests) {
      const oldest = this.#known.values().next();
      if (oldest.done) return;
      await this.#drop(oldest.value);
    }
  }

  async #drop(hex: string): Promise<void> {
    this.#known.delete(hex);
    const base = join(this.#o.dir, 'manifests', 'sha256', hex);
    await Promise.all([rm(base, { force: true }), rm(`${base}.type`, { force: true })]);
  }
}
