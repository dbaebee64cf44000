/**
 * A host process of the rollout harness (forked by host-pool.ts, IPC messages in protocol.ts): starts K real agents
 * in-process (startAgent, each with its own ports, data dir, peer id, metrics registry and token buckets), pulls the
 * image through each agent's registry endpoint at the common start time (puller.ts), reports completions, closes
 * agents on request (churn), and reports every agent's metrics and this process's peak RSS and CPU time.
 *
 * LAYERSWARM_TEST_CORRUPT_UPLOADS=1 in this process's environment makes all its agents serve corrupt pieces (the
 * engine reads it once, process-wide): the harness puts corrupt agents in a host process of their own.
 */
import { appendFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadAgentConfig, type AgentConfig } from '../../agent/config.ts';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import type { TokenBucket } from '../../shared/wire/rate-limit.ts';
import { promValue } from '../../test/fixtures/cluster.ts';
import { pullImage } from './puller.ts';
import type { AgentSpec, FromHost, NodeMetrics, ToHost } from './protocol.ts';

interface Node {
  readonly spec: AgentSpec;
  /** Bytes charged to the agent's download / upload token bucket: every piece-protocol frame received / sent
   * (duplicates and protocol messages included) and, for download, every origin blob body chunk. */
  readonly charged: { down: number; up: number };
  readonly agent: RunningAgent;
  peerPrefix: string | undefined;
  warnings: number;
  readonly lastWarnings: string[];
  readonly pull: AbortController;
  closed: boolean;
}

const nodes = new Map<number, Node>();
let pulledBytes = 0;
let cpuAtStart: NodeJS.CpuUsage | undefined;
let progressTimer: NodeJS.Timeout | undefined;

function send(message: FromHost): void {
  process.send?.(message);
}

/** A logger per agent that keeps only what the harness needs: the engine's peer id, and warnings. */
function agentLogger(onLine: (line: Record<string, unknown>) => void): pino.Logger {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = chunk.toString('utf8');
      if (text.includes('swarm engine listening') || text.includes('"level":40') || text.includes('"level":50') || text.includes('"level":60')) {
        for (const line of text.split('\n')) {
          if (line === '') continue;
          try {
            onLine(JSON.parse(line) as Record<string, unknown>);
          } catch {
            // partial line: ignore
          }
        }
      }
      done();
    },
  });
  return pino({ level: 'info' }, sink);
}

/** Count what a bucket granted (the agent's own link accounting); takes aborted while waiting (closed connection) are not counted. */
function countTakes(bucket: TokenBucket | undefined, add: (n: number) => void): void {
  if (bucket === undefined) return;
  const take = bucket.take.bind(bucket);
  bucket.take = async (n: number, signal?: AbortSignal) => {
    await take(n, signal);
    add(n);
  };
}

/** LAYERSWARM_ROLLOUT_WARN_LOG=FILE: append every agent warning (a JSON line with the node index and Date.now()) to FILE, for diagnosis. */
const WARN_LOG = process.env['LAYERSWARM_ROLLOUT_WARN_LOG'] || undefined;

async function startOne(spec: AgentSpec, tracker: string | undefined, agentArgs: string[]): Promise<Node> {
  const base = loadAgentConfig([
    '--origin', spec.origin, '--data-dir', spec.dataDir, '--listen', '127.0.0.1:0', '--peer-listen', '127.0.0.1:0', '--peer-advertise', '127.0.0.1',
    '--log-level', 'info', '--shutdown-timeout', '2s', '--upload-limit', String(Math.round(spec.rate)), '--download-limit', String(Math.round(spec.rate)),
    ...(tracker === undefined ? [] : ['--tracker', tracker]), ...agentArgs,
  ], {});
  if (base === undefined) throw new Error('unreachable: --help');
  const config: AgentConfig = base;
  const holder: { node?: Node; peerPrefix?: string } = {};
  const warnings: string[] = [];
  let warningCount = 0;
  const logger = agentLogger((line) => {
    if (line['msg'] === 'swarm engine listening' && typeof line['peerId'] === 'string') {
      holder.peerPrefix = line['peerId'];
      if (holder.node) holder.node.peerPrefix = line['peerId'];
    } else if (typeof line['level'] === 'number' && line['level'] >= 40) {
      warningCount++;
      if (holder.node) holder.node.warnings = warningCount;
      const err = line['err'] as { message?: string } | undefined;
      warnings.push(`${String(line['msg'])}${err?.message ? `: ${err.message}` : ''}`.slice(0, 300));
      if (WARN_LOG !== undefined) appendFileSync(WARN_LOG, `${JSON.stringify({ node: spec.index, at: Date.now(), ...line })}\n`);
      if (warnings.length > 5) warnings.shift();
    }
  });
  const agent = await startAgent(config, { logger });
  const charged = { down: 0, up: 0 };
  countTakes(agent.bandwidth.download, (n) => {
    charged.down += n;
  });
  countTakes(agent.bandwidth.upload, (n) => {
    charged.up += n;
  });
  const node: Node = { spec, agent, charged, peerPrefix: holder.peerPrefix, warnings: warningCount, lastWarnings: warnings, pull: new AbortController(), closed: false };
  holder.node = node;
  return node;
}

async function init(m: Extract<ToHost, { type: 'init' }>): Promise<void> {
  const t0 = performance.now();
  // A few at a time: startAgent does file and socket setup; the order of nodes does not matter.
  const queue = [...m.agents];
  await Promise.all(Array.from({ length: 8 }, async () => {
    for (let spec = queue.shift(); spec !== undefined; spec = queue.shift()) {
      nodes.set(spec.index, await startOne(spec, m.tracker, m.agentArgs));
    }
  }));
  send({
    type: 'ready', startSeconds: (performance.now() - t0) / 1000,
    agents: [...nodes.values()].map((n) => ({ index: n.spec.index, url: n.agent.url, peerPrefix: n.peerPrefix })),
  });
}

function start(m: Extract<ToHost, { type: 'start' }>): void {
  cpuAtStart = process.cpuUsage();
  progressTimer = setInterval(() => send({ type: 'progress', bytes: pulledBytes }), 500);
  for (const node of nodes.values()) {
    const offset = m.offsets[node.spec.index] ?? 0;
    const signal = AbortSignal.any([node.pull.signal, AbortSignal.timeout(Math.max(1, Math.round(m.deadlineAt - Date.now())))]);
    setTimeout(() => {
      void (async () => {
        let attempts = 0;
        let last = '';
        const verified = new Set<string>();
        // A runtime retries a failed pull; so do we, until the deadline (each attempt starts the pull over).
        while (!signal.aborted) {
          attempts++;
          try {
            await pullImage(node.agent.url, m.repository, m.tag, signal, (n) => {
              pulledBytes += n;
            }, verified);
            send({ type: 'done', index: node.spec.index, seconds: (Date.now() - m.startAt) / 1000, attempts });
            return;
          } catch (err) {
            last = err instanceof Error ? err.message : String(err);
            if (signal.aborted) break;
            await new Promise((resolve) => setTimeout(resolve, 1000));
          }
        }
        if (!node.closed) send({ type: 'failed', index: node.spec.index, error: last || 'aborted', attempts });
      })();
    }, Math.max(0, m.startAt + offset - Date.now()));
  }
}

async function churn(m: Extract<ToHost, { type: 'churn' }>, startAt: number): Promise<void> {
  await Promise.all(m.indexes.map(async (i) => {
    const node = nodes.get(i);
    if (node === undefined || node.closed) return;
    node.closed = true;
    node.pull.abort();
    await node.agent.close().catch(() => undefined);
    send({ type: 'churned', index: i, seconds: (Date.now() - startAt) / 1000 });
  }));
}

async function metricsOf(node: Node): Promise<NodeMetrics> {
  const empty = { pieceDownFromComplete: 0, pieceDownFromAgents: 0, pieceUp: 0, swarmBytesPeers: 0, swarmBytesOrigin: 0, fallbacks: {}, badPieces: 0, peersBanned: 0 };
  let values = empty;
  if (!node.closed) {
    const res = await node.agent.app.inject({ method: 'GET', url: '/metrics' });
    const text = res.body;
    const fallbacks: Record<string, number> = {};
    for (const m of text.matchAll(/^layerswarm_swarm_fallbacks_total\{reason="([^"]+)"\} (\S+)$/gm)) {
      const n = Number(m[2]);
      if (n > 0) fallbacks[m[1] as string] = n;
    }
    values = {
      pieceDownFromComplete: promValue(text, 'layerswarm_swarm_piece_bytes_total', { direction: 'down', peer: 'seeder' }),
      pieceDownFromAgents: promValue(text, 'layerswarm_swarm_piece_bytes_total', { direction: 'down', peer: 'agent' }),
      pieceUp: promValue(text, 'layerswarm_swarm_piece_bytes_total', { direction: 'up' }),
      swarmBytesPeers: promValue(text, 'layerswarm_swarm_bytes_total', { source: 'peers' }),
      swarmBytesOrigin: promValue(text, 'layerswarm_swarm_bytes_total', { source: 'origin' }),
      fallbacks,
      badPieces: promValue(text, 'layerswarm_swarm_bad_pieces_total'),
      peersBanned: promValue(text, 'layerswarm_swarm_peers_banned_total'),
    };
  }
  return { index: node.spec.index, ...values, chargedDown: node.charged.down, chargedUp: node.charged.up, warnings: node.warnings, lastWarnings: [...node.lastWarnings] };
}

async function collect(): Promise<void> {
  const out: NodeMetrics[] = [];
  for (const node of nodes.values()) out.push(await metricsOf(node));
  const cpu = process.cpuUsage();
  const since = cpuAtStart === undefined ? cpu : process.cpuUsage(cpuAtStart);
  send({
    type: 'collected', nodes: out, maxRssBytes: process.resourceUsage().maxRSS * 1024,
    cpuSeconds: (cpu.user + cpu.system) / 1e6, cpuSecondsSinceStart: (since.user + since.system) / 1e6,
  });
}

async function shutdown(): Promise<void> {
  clearInterval(progressTimer);
  for (const node of nodes.values()) node.pull.abort();
  await Promise.allSettled([...nodes.values()].filter((n) => !n.closed).map((n) => n.agent.close()));
  send({ type: 'closed' });
  process.disconnect?.();
  setTimeout(() => process.exit(0), 200).unref();
}

let startAt = 0;
process.on('message', (m: ToHost) => {
  const run = async (): Promise<void> => {
    switch (m.type) {
      case 'init': return init(m);
      case 'start':
        startAt = m.startAt;
        return start(m);
      case 'churn': return churn(m, startAt);
      case 'collect': return collect();
      case 'shutdown': return shutdown();
    }
  };
  run().catch((err: unknown) => send({ type: 'error', error: err instanceof Error ? err.stack ?? err.message : String(err) }));
});
// The harness went away: do not linger.
process.on('disconnect', () => {
  setTimeout(() => process.exit(0), 5000).unref();
  void Promise.allSettled([...nodes.values()].map((n) => n.agent.close())).then(() => process.exit(0));
});
