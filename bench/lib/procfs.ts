/** Linux /proc readings for the benchmarks: resident set size, CPU time, finding a process by its command line. */
import { execFileSync } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/** VmRSS of a process in KiB, or undefined when it is gone. */
export async function readRssKiB(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

let ticks: number | undefined;
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** User + system CPU seconds a process (all its threads) has used so far, or undefined when it is gone. */
export async function readCpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may contain spaces): state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / clockTicks() : undefined;
  } catch {
    return undefined;
  }
}

/** The first process whose command line (NUL-separated args joined by spaces) satisfies `match`. */
export async function findPid(match: (cmdline: string) => boolean): Promise<number | undefined> {
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0').join(' ').trim();
      if (match(cmdline)) return Number(name);
    } catch {
      // Exited meanwhile.
    }
  }
  return undefined;
}

/** [milliseconds since the sampler started, RSS in KiB]. */
export type RssPoint = [number, number];

export interface RssTrace {
  intervalMs: number;
  /** One series per sampled process name. */
  series: Record<string, RssPoint[]>;
}

/**
 * Samples VmRSS of some processes every `intervalMs` until stop(). Reads are sequential (a slow tick delays the
 * next one instead of piling up), so the effective interval is at least intervalMs.
 */
export class RssSampler {
  readonly #pids: Record<string, number>;
  readonly #intervalMs: number;
  readonly #series: Record<string, RssPoint[]> = {};
  #running = false;
  #loop: Promise<void> | undefined;
  #t0 = 0;

  constructor(pids: Record<string, number | undefined>, intervalMs: number) {
    this.#pids = Object.fromEntries(Object.entries(pids).filter((e): e is [string, number] => e[1] !== undefined));
    this.#intervalMs = intervalMs;
    for (const name of Object.keys(this.#pids)) this.#series[name] = [];
  }

  start(): this {
    if (this.#running) return this;
    this.#running = true;
    this.#t0 = performance.now();
    this.#loop = (async () => {
      while (this.#running) {
        const tick = performance.now();
        await this.#sample();
        const wait = this.#intervalMs - (performance.now() - tick);
        if (wait > 0) await delay(wait);
      }
    })();
    return this;
  }

  /** Milliseconds since start(), on the samples' time axis. */
  now(): number {
    return performance.now() - this.#t0;
  }

  async stop(): Promise<RssTrace> {
    this.#running = false;
    await this.#loop;
    await this.#sample(); // one last point, so short runs still have an end
    return { intervalMs: this.#intervalMs, series: this.#series };
  }

  async #sample(): Promise<void> {
    const t = Math.round(this.now());
    await Promise.all(
      Object.entries(this.#pids).map(async ([name, pid]) => {
        const kib = await readRssKiB(pid);
        if (kib !== undefined) this.#series[name]?.push([t, kib]);
      }),
    );
  }
}

/** Highest RSS of a series in KiB (NaN when empty), optionally only within [fromMs, toMs]. */
export function peakKiB(points: readonly RssPoint[], fromMs = -Infinity, toMs = Infinity): number {
  let peak = Number.NaN;
  for (const [t, kib] of points) if (t >= fromMs && t <= toMs && !(kib <= peak)) peak = kib;
  return peak;
}

/** Median RSS of a series in KiB within [fromMs, toMs]. */
export function medianKiB(points: readonly RssPoint[], fromMs = -Infinity, toMs = Infinity): number {
  const v = points.filter(([t]) => t >= fromMs && t <= toMs).map(([, kib]) => kib).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}
