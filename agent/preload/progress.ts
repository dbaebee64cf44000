/**
 * Progress of a preheat or preload job for the CLI: one line per blob. On a TTY the block is redrawn in place; to a
 * pipe or file a line is written whenever a blob changes state, so logs stay readable. Writes to the injected stream.
 */
import type { JobItem, JobView } from './jobs.ts';

export interface ProgressOutput {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/** 1.5 MiB, 950 B: sizes for people (config values use shared/config/units.ts formatBytes). */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

const short = (digest: string): string => digest.replace(/^sha256:/, '').slice(0, 12);

export function itemLine(item: JobItem): string {
  const size = item.size === undefined ? '?' : humanBytes(item.size);
  const what = item.state === 'failed' ? `${item.error?.code ?? 'ERROR'}: ${item.error?.message ?? ''}` : (item.result ?? '');
  const plat = item.platforms.length > 0 ? ` [${item.platforms.join(',')}]` : '';
  return `  ${item.kind.padEnd(6)} ${short(item.digest)}  ${size.padStart(9)}  ${item.state.padEnd(8)} ${what}${plat}`.trimEnd();
}

export function headerLine(job: JobView): string {
  const platforms = job.manifests.map((m) => m.platform).filter((p) => p !== undefined);
  return `${job.kind} ${job.image} → ${job.digest}${platforms.length > 0 ? ` (${platforms.join(', ')})` : ''}: ${job.items.length} blobs, ${humanBytes(job.totals.totalBytes)} [job ${job.id}]`;
}

export function summaryLine(job: JobView, ms: number): string {
  const t = job.totals;
  return `${job.state === 'done' ? 'done' : job.state}: ${t.done} done, ${t.skipped} skipped, ${t.failed} failed; ${humanBytes(t.bytes)} of ${humanBytes(t.totalBytes)} in ${(ms / 1000).toFixed(1)} s`;
}

export class ProgressRenderer {
  readonly #out: ProgressOutput;
  readonly #printed = new Map<string, string>();
  #drawn = 0;
  #headed = false;

  constructor(out: ProgressOutput) {
    this.#out = out;
  }

  update(job: JobView): void {
    if (!this.#headed) {
      this.#out.write(`${headerLine(job)}\n`);
      this.#headed = true;
    }
    if (this.#out.isTTY) {
      const lines = job.items.map(itemLine);
      this.#out.write(`${this.#drawn > 0 ? `\x1b[${this.#drawn}A` : ''}${lines.map((l) => `\x1b[2K${l}\n`).join('')}`);
      this.#drawn = lines.length;
      return;
    }
    for (const item of job.items) {
      if (item.state === 'queued' || this.#printed.get(item.digest) === item.state) continue;
      this.#printed.set(item.digest, item.state);
      this.#out.write(`${itemLine(item)}\n`);
    }
  }
}
