/**
 * Apply or remove layerswarm's containerd mirror configuration in a hosts directory
 * (`<hosts-dir>/<registry>/hosts.toml`, see hosts-toml.ts).
 *
 * Rules:
 * - Files are written atomically (temporary file in the same directory, fsync, rename), mode 0644.
 * - A hosts.toml that layerswarm did not write is moved aside once, to `hosts.toml.layerswarm-backup`, before ours
 *   replaces it. If a different backup already exists, nothing is written at all (CONFIG_INVALID): we never destroy
 *   an operator's file.
 * - Applying twice changes nothing the second time (every entry reports "unchanged").
 * - Removing deletes only our own files, restores the backup if there is one, and removes the registry directory
 *   when it is left empty. Removing twice reports "absent".
 * - Every registry is checked before anything is written, so a bad argument or a conflict leaves the directory as it was.
 */
import { mkdir, readFile, rename, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic as writeAtomic } from '../../shared/atomic-file.ts';
import { LayerswarmError } from '../../shared/errors.ts';
import {
  hostDirName,
  isManagedHostsToml,
  normalizeMirrorUrl,
  normalizeRegistry,
  originUrl,
  renderHostsToml,
} from './hosts-toml.ts';

export const HOSTS_FILE = 'hosts.toml';
export const BACKUP_SUFFIX = '.layerswarm-backup';

export type ConfigureActionKind =
  | 'created' // our file written where there was none
  | 'updated' // our file rewritten with new content
  | 'unchanged' // our file already as wanted
  | 'backed-up' // an operator's file moved aside before ours replaced it
  | 'removed' // our file deleted
  | 'restored' // the backup put back in place
  | 'kept' // an operator's file left alone on --remove
  | 'absent'; // nothing to remove

export interface ConfigureAction {
  readonly action: ConfigureActionKind;
  /** Normalised registry host (or `_default`). */
  readonly registry: string;
  /** File acted on. */
  readonly path: string;
  readonly detail?: string;
}

export interface ApplyContainerdOptions {
  readonly hostsDir: string;
  /** Mirror (agent) base URL. */
  readonly mirror: string;
  /** Registry hosts to route through the mirror: `host[:port]`, `docker.io`, or `_default`. */
  readonly registries: readonly string[];
  /** Registry hosts (`host` or `host:port`) whose origin is plain HTTP. Loopback hosts always are. */
  readonly insecureRegistries?: readonly string[];
}

export interface RemoveContainerdOptions {
  readonly hostsDir: string;
  readonly registries: readonly string[];
}

export function hostsTomlPath(hostsDir: string, registry: string): string {
  return join(hostsDir, hostDirName(registry), HOSTS_FILE);
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw storeError(`cannot read ${path}`, err);
  }
}

function storeError(message: string, cause: unknown): LayerswarmError {
  const why = cause instanceof Error ? `: ${cause.message}` : '';
  return new LayerswarmError('STORE_IO', `${message}${why}`, { cause });
}

/** Write a file atomically (temp file in the same directory, fsync, rename), as a store error on failure. */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
  try {
    await writeAtomic(path, data, mode);
  } catch (err) {
    throw storeError(`cannot write ${path}`, err);
  }
}

function normalizeRegistries(registries: readonly string[]): string[] {
  if (registries.length === 0) {
    throw new LayerswarmError('CONFIG_INVALID', 'no registry given: name at least one with --registry HOST[:PORT]');
  }
  return [...new Set(registries.map(normalizeRegistry))];
}

interface PlannedFile {
  registry: string;
  dir: string;
  path: string;
  backupPath: string;
  existing: Buffer | undefined;
  backup: Buffer | undefined;
}

async function inspect(hostsDir: string, registry: string): Promise<PlannedFile> {
  const path = hostsTomlPath(hostsDir, registry);
  const backupPath = `${path}${BACKUP_SUFFIX}`;
  return {
    registry,
    dir: join(hostsDir, hostDirName(registry)),
    path,
    backupPath,
    existing: await readIfExists(path),
    backup: await readIfExists(backupPath),
  };
}

/** Write (or confirm) a managed hosts.toml for every registry. */
export async function applyContainerdHosts(options: ApplyContainerdOptions): Promise<ConfigureAction[]> {
  const mirror = normalizeMirrorUrl(options.mirror);
  const registries = normalizeRegistries(options.registries);
  const insecure = (options.insecureRegistries ?? []).map(normalizeRegistry);

  const plans: (PlannedFile & { content: string })[] = [];
  for (const registry of registries) {
    const plan = await inspect(options.hostsDir, registry);
    const content = renderHostsToml({ registry, mirror, insecureRegistries: insecure });
    const foreign = plan.existing !== undefined && !isManagedHostsToml(plan.existing.toString('utf8'));
    if (foreign && plan.backup !== undefined && !plan.backup.equals(plan.existing as Buffer)) {
      throw new LayerswarmError(
        'CONFIG_INVALID',
        `${plan.path} was not written by layerswarm and ${plan.backupPath} already holds a different file; ` +
          'move one of them away and run again',
      );
    }
    plans.push({ ...plan, content });
  }

  const actions: ConfigureAction[] = [];
  for (const plan of plans) {
    const { registry, path } = plan;
    const server = originUrl(registry, insecure);
    const detail = `${registry} → ${mirror}, then ${server ?? 'the image\'s own registry'}`;
    if (plan.existing !== undefined && plan.existing.toString('utf8') === plan.content) {
      actions.push({ action: 'unchanged', registry, path, detail });
      continue;
    }
    try {
      await mkdir(plan.dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw storeError(`cannot create ${plan.dir}`, err);
    }
    const managed = plan.existing !== undefined && isManagedHostsToml(plan.existing.toString('utf8'));
    if (plan.existing !== undefined && !managed) {
      if (plan.backup === undefined) await writeFileAtomic(plan.backupPath, plan.existing);
      actions.push({
        action: 'backed-up',
        registry,
        path: plan.backupPath,
        detail: plan.backup === undefined ? `previous ${path}` : 'identical backup already present',
      });
    }
    await writeFileAtomic(path, plan.content);
    actions.push({ action: plan.existing !== undefined && managed ? 'updated' : 'created', registry, path, detail });
  }
  return actions;
}

/** Delete our hosts.toml for every registry, restoring backups; operators' files are left alone. */
export async function removeContainerdHosts(options: RemoveContainerdOptions): Promise<ConfigureAction[]> {
  const registries = normalizeRegistries(options.registries);
  const plans: PlannedFile[] = [];
  for (const registry of registries) plans.push(await inspect(options.hostsDir, registry));

  const actions: ConfigureAction[] = [];
  for (const plan of plans) {
    const { registry, path } = plan;
    if (plan.existing !== undefined && !isManagedHostsToml(plan.existing.toString('utf8'))) {
      actions.push({ action: 'kept', registry, path, detail: 'not written by layerswarm' });
      continue;
    }
    if (plan.existing !== undefined) {
      try {
        await unlink(path);
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw storeError(`cannot delete ${path}`, err);
      }
    }
    if (plan.backup !== undefined) {
      try {
        await rename(plan.backupPath, path);
      } catch (err) {
        throw storeError(`cannot restore ${plan.backupPath}`, err);
      }
      actions.push({ action: 'restored', registry, path, detail: `from ${plan.backupPath}` });
      continue;
    }
    if (plan.existing === undefined) {
      actions.push({ action: 'absent', registry, path });
      continue;
    }
    actions.push({ action: 'removed', registry, path });
    try {
      await rmdir(plan.dir);
    } catch (err) {
      // Left in place when something else lives there (certificates, other files).
      if (!isErrno(err, 'ENOTEMPTY') && !isErrno(err, 'EEXIST') && !isErrno(err, 'ENOENT')) {
        throw storeError(`cannot remove ${plan.dir}`, err);
      }
    }
  }
  return actions;
}

/** One line per action, for printing. */
export function formatAction(action: ConfigureAction): string {
  return `${action.action.padEnd(9)} ${action.path}${action.detail === undefined ? '' : `  (${action.detail})`}`;
}
