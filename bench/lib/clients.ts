/**
 * Benchmark clients run as subprocesses: curl for raw blob GETs (body to /dev/null, so the client does no hashing
 * and no disk writes) and skopeo for image pulls. Both run under bash so its `times` builtin reports the client's
 * own CPU time: a client near 1 CPU-second per wall-second would be the bottleneck.
 */
import { availableParallelism } from 'node:os';
import { run } from '../../test/fixtures/process.ts';

export interface TimedRun {
  stdout: string;
  stderr: string;
  /** Wall time of the whole command as seen from here (includes process start). */
  wallSeconds: number;
  /** User + system CPU seconds of the command (and its children). */
  cpuSeconds: number;
}

const TIMES_LINE = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/;

/** Runs argv under bash and returns its output, wall time and CPU time. Rejects like fixtures' run(). */
export async function timedRun(argv: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<TimedRun> {
  const script = '"$@"; rc=$?; times >&2; exit $rc';
  const started = performance.now();
  const { stdout, stderr } = await run('bash', ['-c', script, 'timed', ...argv], { ...options, timeoutMs: options.timeoutMs ?? 600_000 });
  const wallSeconds = (performance.now() - started) / 1000;
  const lines = stderr.trimEnd().split('\n');
  // `times` prints the shell's own user/sys, then its children's.
  const children = TIMES_LINE.exec(lines[lines.length - 1]?.trim() ?? '');
  const cpuSeconds = children
    ? Number(children[1]) * 60 + Number(children[2]) + Number(children[3]) * 60 + Number(children[4])
    : Number.NaN;
  return { stdout, stderr: lines.slice(0, -2).join('\n'), wallSeconds, cpuSeconds };
}

export interface CurlResult {
  status: number;
  bytes: number;
  /** curl's time_total: from the start of the request to the last byte. */
  seconds: number;
  /** curl's time_starttransfer: until the first response byte (for a cold agent: fetch + verify of the whole blob). */
  ttfbSeconds: number;
  /** curl's own CPU time. */
  clientCpuSeconds: number;
}

/** GET `url` with curl into /dev/null; fails unless the answer is 200 with exactly `expectBytes` bytes. */
/** CPU the clients run on (servers are pinned to CPU 0 by pinToServerCpu), when the machine has two or more. */
export const CLIENT_CPU = '1';

export async function curlGet(url: string, expectBytes: number): Promise<CurlResult> {
  const r = await timedRun([
    'taskset', '-c', CLIENT_CPU, 'curl', '-sS', '--http1.1', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_starttransfer} %{time_total}\\n', url,
  ]);
  const [status, bytes, ttfb, total] = r.stdout.trim().split(/\s+/).map(Number);
  if (status !== 200 || bytes !== expectBytes) {
    throw new Error(`curl GET ${url}: status ${status}, ${bytes} bytes (expected 200 with ${expectBytes} bytes)\n${r.stderr}`);
  }
  return { status, bytes, seconds: total ?? Number.NaN, ttfbSeconds: ttfb ?? Number.NaN, clientCpuSeconds: r.cpuSeconds };
}

export interface PullResult {
  seconds: number;
  clientCpuSeconds: number;
}

/** `skopeo copy docker://ref dir:outDir` over plain HTTP, anonymously; times the whole command. */
export async function skopeoPull(ref: string, outDir: string, env: NodeJS.ProcessEnv): Promise<PullResult> {
  const r = await timedRun(
    ['skopeo', '--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', '--src-no-creds', '--retry-times', '0', `docker://${ref}`, `dir:${outDir}`],
    { env, timeoutMs: 600_000 },
  );
  return { seconds: r.wallSeconds, clientCpuSeconds: r.cpuSeconds };
}

/**
 * Pin every thread of a server process to CPU 0. On a 2-core machine, loopback throughput and the server's CPU cost
 * per byte otherwise depend on whether the scheduler happens to put server and client on the same core (the sender
 * often processes the loopback receive too): the same agent measured 0.4 or 1.5 CPU-s/GiB from one process to the
 * next. Pinning every server the same way makes the sides comparable.
 */
export async function pinToServerCpu(pid: number | undefined): Promise<void> {
  if (pid === undefined) return;
  await run('taskset', ['-a', '-p', '-c', '0', String(pid)]);
}

/** Undo pinToServerCpu: every CPU again. */
export async function unpin(pid: number | undefined): Promise<void> {
  if (pid === undefined) return;
  await run('taskset', ['-a', '-p', '-c', `0-${Math.max(1, availableParallelism() - 1)}`, String(pid)]);
}
