/**
 * `layerswarm status --tracker URL [--swarm DIGEST|PREFIX] [--image REPOSITORY] [--watch] [--interval SECONDS] [--json]`:
 * the swarm-health dashboard's facts as a terminal table. Exit 0; 1 when the tracker cannot be reached or the
 * swarm / image asked for is unknown (a one-line message naming the URL); 2 for usage errors. --watch redraws
 * every --interval seconds until Ctrl-C (errors are shown in place and retried).
 */
import { parseArgs } from 'node:util';
import { TrackerClient } from '../client.ts';
import { TrackerError, isTrackerError } from '../errors.ts';
import { renderStatus, renderSwarm, shortDigest, swarmName } from '../status-view.ts';

export const STATUS_USAGE = 'layerswarm status --tracker URL [--swarm DIGEST|PREFIX] [--image REPOSITORY] [--watch] [--interval SECONDS] [--json]';

const HELP = `Usage: ${STATUS_USAGE}

Show the swarms a tracker knows (the dashboard's facts, at http://TRACKER/dashboard, as text).

  --tracker URL        the tracker's base URL (env LAYERSWARM_TRACKER)
  --swarm DIGEST       one swarm's peers: progress, rates, role, zone (a unique digest prefix is enough)
  --image REPOSITORY   only the swarms of this repository (as agents named it)
  --watch              redraw every --interval seconds until Ctrl-C
  --interval SECONDS   default 2
  --json               the API answers as JSON instead of tables
`;

export interface StatusIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Aborted on Ctrl-C (watch mode). */
  signal?: AbortSignal;
  /** Whether to clear the screen between redraws. */
  tty?: boolean;
}

class UsageError extends Error {}

interface StatusOptions {
  url: string;
  swarm: string | undefined;
  image: string | undefined;
  watch: boolean;
  intervalMs: number;
  json: boolean;
}

function parse(argv: string[], env: NodeJS.ProcessEnv): StatusOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        tracker: { type: 'string' }, swarm: { type: 'string' }, image: { type: 'string' }, watch: { type: 'boolean' },
        interval: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
      strict: true, allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return 'help';
  const url = values.tracker ?? env.LAYERSWARM_TRACKER;
  if (url === undefined) throw new UsageError('--tracker URL is required (or LAYERSWARM_TRACKER)');
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw new UsageError(`--tracker ${JSON.stringify(url)} is not an http(s) URL`);
  }
  const interval = Number(values.interval ?? 2);
  if (!Number.isFinite(interval) || interval < 0.5 || interval > 3600) throw new UsageError('--interval must be 0.5..3600 seconds');
  return { url: url.replace(/\/+$/, ''), swarm: values.swarm, image: values.image, watch: values.watch ?? false, intervalMs: interval * 1000, json: values.json ?? false };
}

/** One screen (text or JSON). Throws TrackerError for an unreachable tracker or an unknown swarm / image. */
export async function statusOnce(client: TrackerClient, o: Pick<StatusOptions, 'url' | 'swarm' | 'image' | 'json'>, signal?: AbortSignal): Promise<string> {
  const list = await client.swarms(signal);
  if (o.swarm !== undefined) {
    const wanted = o.swarm.startsWith('sha256:') ? o.swarm : `sha256:${o.swarm}`;
    const matches = list.swarms.filter((s) => s.digest.startsWith(wanted));
    if (matches.length > 1) throw new TrackerError('REQUEST_INVALID', `${o.swarm} matches ${matches.length} swarms at ${o.url}: ${matches.map((s) => shortDigest(s.digest)).join(', ')}`);
    const digest = matches[0]?.digest ?? wanted;
    let detail;
    try {
      detail = await client.swarm(digest, signal);
    } catch (err) {
      if (isTrackerError(err, 'NOT_FOUND') || isTrackerError(err, 'DIGEST_INVALID')) throw new TrackerError('NOT_FOUND', `no swarm for ${o.swarm} at ${o.url}: no peer announced it within the peer TTL`, { cause: err });
      throw err;
    }
    return o.json ? `${JSON.stringify(detail, null, 2)}\n` : renderSwarm(o.url, detail);
  }
  if (o.image !== undefined) {
    const swarms = list.swarms.filter((s) => s.repository === o.image || swarmName(s) === o.image);
    if (swarms.length === 0) {
      const known = [...new Set(list.swarms.map(swarmName))].slice(0, 10).join(', ');
      throw new TrackerError('NOT_FOUND', `no swarm of image ${o.image} at ${o.url}${known ? ` (known: ${known})` : ' (no swarm at all)'}`);
    }
    list.swarms = swarms;
  }
  const [offload, events] = await Promise.all([client.offload(signal), client.events(0, signal, 100)]);
  return o.json ? `${JSON.stringify({ ...list, offload, events }, null, 2)}\n` : renderStatus({ url: o.url, list, offload, events });
}

function oneLine(err: unknown, url: string): string {
  const message = err instanceof Error ? err.message : String(err);
  if (isTrackerError(err, 'TRACKER_UNAVAILABLE') || isTrackerError(err, 'TRACKER_TIMEOUT')) return `cannot reach the tracker at ${url}: ${message}`;
  return message.includes(url) ? message : `tracker ${url}: ${message}`;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv, io?: StatusIo): Promise<number> {
  const stdio: StatusIo = io ?? { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), tty: process.stdout.isTTY };
  let o: StatusOptions | 'help';
  try {
    o = parse(argv, env);
  } catch (err) {
    stdio.err(`layerswarm status: ${err instanceof Error ? err.message : String(err)}\nUsage: ${STATUS_USAGE}\n`);
    return 2;
  }
  if (o === 'help') {
    stdio.out(HELP);
    return 0;
  }
  const client = new TrackerClient({ url: o.url, timeoutMs: 5000, userAgent: 'layerswarm-status/0.1' });
  try {
    if (!o.watch) {
      try {
        stdio.out(await statusOnce(client, o));
        return 0;
      } catch (err) {
        stdio.err(`layerswarm status: ${oneLine(err, o.url)}\n`);
        return 1;
      }
    }
    const stop = io?.signal ?? ctrlC();
    while (!stop.aborted) {
      let screen: string;
      try {
        screen = await statusOnce(client, o, stop);
      } catch (err) {
        if (stop.aborted) break;
        screen = `layerswarm status: ${oneLine(err, o.url)} (retrying every ${o.intervalMs / 1000} s)\n`;
      }
      stdio.out(`${stdio.tty ? '\x1b[H\x1b[2J' : ''}${screen}`);
      await sleep(o.intervalMs, stop);
    }
    return 0;
  } finally {
    await client.close();
  }
}

function ctrlC(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return controller.signal;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
