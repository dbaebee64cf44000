/**
 * The harness side of the host processes (host-process.ts): forks them (IPC), hands each its share of agents, starts
 * the pulls at one common time, relays completions and progress, and gathers every agent's metrics and each
 * process's peak RSS and CPU time. Processes are killed on close (and at harness exit).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { onProcessExit } from '../../test/fixtures/process.ts';
import type { AgentSpec, FromHost, NodeMetrics, ToHost } from './protocol.ts';

const HOST_SCRIPT = fileURLToPath(new URL('./host-process.ts', import.meta.url));
/**
 * V8 flags of the host processes. One host process holds ~100 agents, so its young generation fills 100× faster
 * than a real agent's: with the default 16 MiB semi-space, objects of a piece in flight (0.5–2 s at the rollout's
 * B) survive two scavenges and are promoted, and the old generation is marked and compacted every ~5 s
 * (N = 100, --trace-gc). A real agent, alone in its process, scavenges every ~25 s and those objects die young. A
 * larger nursery gives the emulation a real agent's GC cost per piece instead of a 100-agent heap's (host CPU for
 * the same N = 100 run: 64–69 s → 58 s).
 */
const HOST_EXEC_ARGV = ['--max-semi-space-size=64'];
const live = new Set<ChildProcess>();
onProcessExit(() => {
  for (const c of live) c.kill('SIGKILL');
});

export interface HostGroup {
  readonly agents: AgentSpec[];
  /** Extra environment (e.g. LAYERSWARM_TEST_CORRUPT_UPLOADS=1 for a host of corrupt agents). */
  readonly env?: Record<string, string>;
  readonly label: string;
}

export interface HostResources {
  readonly label: string;
  readonly pid: number;
  readonly agents: number;
  readonly maxRssBytes: number;
  readonly cpuSeconds: number;
  readonly cpuSecondsDuringRun: number;
  readonly startSeconds: number;
}

export interface PoolEvents {
  done(index: number, seconds: number, attempts: number): void;
  failed(index: number, error: string, attempts: number): void;
  churned(index: number, seconds: number): void;
}

interface Host {
  readonly group: HostGroup;
  readonly child: ChildProcess;
  bytes: number;
  startSeconds: number;
  waiters: Array<{ type: FromHost['type']; resolve: (m: FromHost) => void; reject: (e: Error) => void }>;
}

export class HostPool {
  readonly #hosts: Host[] = [];
  readonly #events: PoolEvents;
  /** url and engine peer-id prefix (8 hex) by node index. */
  readonly nodes = new Map<number, { url: string; peerPrefix: string | undefined; host: number }>();

  constructor(events: PoolEvents) {
    this.#events = events;
  }

  /** Fork one process per group and start its agents; resolves when every agent of every group is up. */
  async start(groups: HostGroup[], tracker: string | undefined, agentArgs: string[]): Promise<void> {
    for (const group of groups) {
      const child = fork(HOST_SCRIPT, [], {
        execArgv: [...process.execArgv, ...HOST_EXEC_ARGV],
        env: { ...process.env, ...group.env },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        serialization: 'advanced',
      });
      live.add(child);
      const host: Host = { group, child, bytes: 0, startSeconds: 0, waiters: [] };
      child.on('message', (m: FromHost) => this.#onMessage(host, m));
      child.on('exit', (code, signal) => {
        live.delete(child);
        for (const w of host.waiters.splice(0)) w.reject(new Error(`host ${group.label} exited (${code ?? signal}) while waiting for ${w.type}`));
      });
      this.#hosts.push(host);
    }
    await Promise.all(this.#hosts.map(async (host, i) => {
      const ready = this.#expect(host, 'ready');
      host.child.send({ type: 'init', agents: host.group.agents, tracker, agentArgs } satisfies ToHost);
      const m = (await ready) as Extract<FromHost, { type: 'ready' }>;
      host.startSeconds = m.startSeconds;
      for (const a of m.agents) this.nodes.set(a.index, { url: a.url, peerPrefix: a.peerPrefix, host: i });
    }));
  }

  #expect(host: Host, type: FromHost['type']): Promise<FromHost> {
    return new Promise((resolve, reject) => host.waiters.push({ type, resolve, reject }));
  }

  #onMessage(host: Host, m: FromHost): void {
    switch (m.type) {
      case 'progress': host.bytes = m.bytes; return;
      case 'done': this.#events.done(m.index, m.seconds, m.attempts); return;
      case 'failed': this.#events.failed(m.index, m.error, m.attempts); return;
      case 'churned': this.#events.churned(m.index, m.seconds); return;
      case 'error':
        for (const w of host.waiters.splice(0)) w.reject(new Error(`host ${host.group.label}: ${m.error}`));
        process.stderr.write(`[rollout] host ${host.group.label} error: ${m.error}\n`);
        return;
      default: {
        const i = host.waiters.findIndex((w) => w.type === m.type);
        if (i >= 0) host.waiters.splice(i, 1)[0]?.resolve(m);
      }
    }
  }

  /** Bytes the pullers have verified so far (all hosts). */
  get pulledBytes(): number {
    return this.#hosts.reduce((a, h) => a + h.bytes, 0);
  }

  startPulls(startAt: number, repository: string, tag: string, offsets: Record<number, number>, deadlineAt: number): void {
    for (const h of this.#hosts) h.child.send({ type: 'start', startAt, repository, tag, offsets, deadlineAt } satisfies ToHost);
  }

  churn(indexes: number[]): void {
    for (const [i, h] of this.#hosts.entries()) {
      const mine = indexes.filter((n) => this.nodes.get(n)?.host === i);
      if (mine.length > 0) h.child.send({ type: 'churn', indexes: mine } satisfies ToHost);
    }
  }

  /** Every agent's metrics, and each host's resources. */
  async collect(): Promise<{ nodes: Map<number, NodeMetrics>; hosts: HostResources[] }> {
    const nodes = new Map<number, NodeMetrics>();
    const hosts = await Promise.all(this.#hosts.map(async (h): Promise<HostResources> => {
      const got = this.#expect(h, 'collected');
      h.child.send({ type: 'collect' } satisfies ToHost);
      const m = (await got) as Extract<FromHost, { type: 'collected' }>;
      for (const n of m.nodes) nodes.set(n.index, n);
      return {
        label: h.group.label, pid: h.child.pid ?? 0, agents: h.group.agents.length, maxRssBytes: m.maxRssBytes,
        cpuSeconds: m.cpuSeconds, cpuSecondsDuringRun: m.cpuSecondsSinceStart, startSeconds: h.startSeconds,
      };
    }));
    return { nodes, hosts };
  }

  /** Close every agent and end the processes (SIGKILL after 30 s). */
  async close(): Promise<void> {
    await Promise.all(this.#hosts.map(async (h) => {
      if (h.child.exitCode !== null || h.child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => h.child.once('exit', () => resolve()));
      const kill = setTimeout(() => h.child.kill('SIGKILL'), 30_000);
      try {
        h.child.send({ type: 'shutdown' } satisfies ToHost);
      } catch {
        h.child.kill('SIGKILL');
      }
      await exited;
      clearTimeout(kill);
    }));
  }
}
