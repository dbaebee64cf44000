/**
 * The client side of `layerswarm preheat` (seeder) and `layerswarm preload` (agent): start a job for an image, poll it
 * until every blob is done, show progress, and exit 0 (all done) or 1 with a message that names what failed: the
 * component's URL when it cannot be reached, the image when it is unknown, the token when it is refused. Exit 2 for
 * usage errors. Writes only to the injected streams.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { formatHelp, loadOptions, type OptionSpec } from '../../shared/config/options.ts';
import { formatDuration } from '../../shared/config/units.ts';
import { isLayerswarmError, LayerswarmError } from '../../shared/errors.ts';
import type { JobView } from './jobs.ts';
import { ProgressRenderer, summaryLine, type ProgressOutput } from './progress.ts';

export interface CommandIo {
  stdout: ProgressOutput;
  stderr: { write(text: string): unknown };
}

export interface JobCommandSpec {
  /** "preheat" or "preload". */
  readonly name: string;
  /** "seeder" or "agent": the option naming the component's URL and the word used in messages. */
  readonly component: string;
  readonly defaultUrl?: string;
  readonly urlDoc: string;
  readonly summary: string;
  /** "/v1/preheat" or "/v1/preload". */
  readonly path: string;
}

/** Between two polls of the job. */
const POLL_MS = 250;
/** Consecutive failed polls before giving up. */
const POLL_FAILURES = 5;
/** One HTTP request at most. */
const REQUEST_MS = 120_000;

export function jobOptions(spec: JobCommandSpec): OptionSpec[] {
  return [
    { key: spec.component, type: 'url', doc: spec.urlDoc, ...(spec.defaultUrl ? { default: spec.defaultUrl } : { required: true }) },
    { key: 'platform', type: 'string', metavar: 'OS/ARCH[/VARIANT]', doc: 'For an image index: only this platform (e.g. linux/amd64); unset: every platform.' },
    { key: 'token', type: 'string', metavar: 'TOKEN', doc: `Bearer token of the ${spec.component}'s ${spec.path} endpoint (its --${spec.name}-token).` },
    { key: 'timeout', type: 'duration', default: 30 * 60_000, min: 100, doc: 'Give up (exit 1) when the job has not finished after this long; the job itself goes on.' },
    { key: 'json', type: 'bool', default: false, doc: 'Print the finished job as JSON on stdout instead of progress lines.' },
  ];
}

interface Args {
  image: string;
  url: string;
  platform: string | undefined;
  token: string | undefined;
  timeout: number;
  json: boolean;
}

/** A failure with the message the user sees (exit 1). */
class CommandFailure extends Error {}

function parseArgs(spec: JobCommandSpec, argv: readonly string[], env: NodeJS.ProcessEnv): Args | 'help' {
  const { LAYERSWARM_CONFIG: _serviceConfig, ...ownEnv } = env;
  const loaded = loadOptions(jobOptions(spec), { argv, env: ownEnv, allowPositionals: true });
  if (loaded.help) return 'help';
  if (loaded.positionals.length !== 1) {
    throw new LayerswarmError('CONFIG_INVALID', loaded.positionals.length === 0 ? 'IMAGE is required (e.g. registry.example.com/team/app:1.2)' : `one IMAGE expected, got ${loaded.positionals.join(' ')}`);
  }
  const v = loaded.values;
  return {
    image: loaded.positionals[0] as string,
    url: String(v[spec.component]),
    platform: typeof v.platform === 'string' ? v.platform : undefined,
    token: typeof v.token === 'string' ? v.token : undefined,
    timeout: v.timeout as number,
    json: v.json === true,
  };
}

function describeNetworkError(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String((cause as { code: unknown }).code) : undefined;
  const message = cause instanceof Error ? cause.message : String(cause);
  return code && !message.includes(code) ? `${code} ${message}` : message;
}

async function call(spec: JobCommandSpec, args: Args, method: 'GET' | 'POST', path: string, deadline: AbortSignal, body?: unknown): Promise<JobView> {
  const url = `${args.url}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(args.token ? { authorization: `Bearer ${args.token}` } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.any([deadline, AbortSignal.timeout(REQUEST_MS)]),
    });
  } catch (err) {
    if (deadline.aborted) throw new CommandFailure(`timed out after ${formatDuration(args.timeout)} waiting for the ${spec.component} at ${args.url}`);
    throw new CommandFailure(`cannot reach the ${spec.component} at ${args.url}: ${describeNetworkError(err)}`);
  }
  const text = await res.text().catch(() => '');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CommandFailure(`unexpected answer from ${url}: ${res.status} ${text.slice(0, 200)} (is ${args.url} a layerswarm ${spec.component}?)`);
  }
  if (res.ok) return json as JobView;
  const first = (json as { errors?: Array<{ code?: string; message?: string }> }).errors?.[0];
  const code = first?.code ?? String(res.status);
  const message = first?.message ?? text.slice(0, 200);
  if (code === 'MANIFEST_UNKNOWN') throw new CommandFailure(`image ${args.image} not found: ${message}`);
  if (res.status === 401 && /token/.test(message)) throw new CommandFailure(`the ${spec.component} at ${args.url} refused the request (401 ${code}): ${message}; pass its token with --token`);
  if (res.status === 401 || res.status === 403) throw new CommandFailure(`${spec.name} of ${args.image} refused (${res.status} ${code}): ${message}`);
  if (res.status === 502 || res.status === 504) throw new CommandFailure(`the ${spec.component} at ${args.url} cannot reach the registry of ${args.image} (${res.status} ${code}): ${message}`);
  if (res.status === 404 && path !== spec.path && code === 'UNSUPPORTED') throw new CommandFailure(`the ${spec.component} at ${args.url} no longer knows the job (restarted?): ${message}`);
  if (res.status === 404 && code === 'UNSUPPORTED') throw new CommandFailure(`the ${spec.component} at ${args.url} has no ${spec.path} endpoint (${message}); is it a layerswarm ${spec.component} of this version?`);
  throw new CommandFailure(`${spec.name} of ${args.image} failed at ${args.url} (${res.status} ${code}): ${message}`);
}

async function runJob(spec: JobCommandSpec, args: Args, io: CommandIo): Promise<number> {
  const started = performance.now();
  const deadline = AbortSignal.timeout(args.timeout);
  const renderer = args.json ? undefined : new ProgressRenderer(io.stdout);
  let job = await call(spec, args, 'POST', spec.path, deadline, { image: args.image, ...(args.platform ? { platform: args.platform } : {}) });
  renderer?.update(job);
  let failures = 0;
  while (job.state === 'running') {
    try {
      await delay(POLL_MS, undefined, { signal: deadline });
    } catch {
      throw new CommandFailure(`timed out after ${formatDuration(args.timeout)}: ${job.totals.done + job.totals.skipped} of ${job.totals.items} blobs finished (job ${job.id} goes on at the ${spec.component})`);
    }
    try {
      job = await call(spec, args, 'GET', `${spec.path}/${job.id}`, deadline);
      failures = 0;
    } catch (err) {
      if (++failures >= POLL_FAILURES || deadline.aborted) throw err;
      continue;
    }
    renderer?.update(job);
  }
  if (args.json) io.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
  else io.stdout.write(`${summaryLine(job, performance.now() - started)}\n`);
  if (job.state === 'done') return 0;
  for (const item of job.items.filter((i) => i.state === 'failed')) {
    io.stderr.write(`layerswarm ${spec.name}: ${item.kind} ${item.digest} failed: ${item.error?.code ?? ''} ${item.error?.message ?? ''}\n`);
  }
  return 1;
}

export async function runJobCommand(spec: JobCommandSpec, argv: readonly string[], env: NodeJS.ProcessEnv, io: CommandIo): Promise<number> {
  let args: Args | 'help';
  try {
    args = parseArgs(spec, argv, env);
  } catch (err) {
    if (isLayerswarmError(err, 'CONFIG_INVALID')) {
      io.stderr.write(`layerswarm ${spec.name}: ${err.message}\nRun "layerswarm ${spec.name} --help" for usage.\n`);
      return 2;
    }
    throw err;
  }
  if (args === 'help') {
    io.stdout.write(`${formatHelp(`layerswarm ${spec.name} IMAGE --${spec.component} URL [--platform OS/ARCH] [--timeout DURATION] [--json]`, spec.summary, jobOptions(spec))}\n`);
    return 0;
  }
  try {
    return await runJob(spec, args, io);
  } catch (err) {
    if (!(err instanceof CommandFailure)) throw err;
    io.stderr.write(`layerswarm ${spec.name}: ${err.message}\n`);
    return 1;
  }
}
