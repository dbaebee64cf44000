/**
 * The agent as the benchmarks run it: the real CLI (`bin/layerswarm.mjs agent`) as a subprocess of the same Node,
 * on a free loopback port, so its RSS and CPU can be read from /proc and it shares nothing with the benchmark process.
 */
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/fixtures/ports.ts';
import { startProcess } from '../../test/fixtures/process.ts';

const CLI = fileURLToPath(new URL('../../bin/layerswarm.mjs', import.meta.url));

export interface AgentProcessOptions {
  origin: string;
  dataDir: string;
  /** Default 'warn'. At 'info' the agent logs one 'blob fetched and verified' line per fetch (with durationMs). */
  logLevel?: string;
  storeMaxBytes?: number;
  /** Append the agent's stdout/stderr here. */
  logFile?: string;
}

export interface AgentProcess {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT, for image references. */
  host: string;
  /** The agent's own pid (setpriv, when used, execs into node: same pid). */
  pid: number;
  /** JSON log lines parsed so far. */
  logs(): Array<Record<string, unknown>>;
  output(): string;
  stop(): Promise<void>;
}

export async function startAgentProcess(options: AgentProcessOptions): Promise<AgentProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(options);
    } catch (err) {
      // freePort() is racy: another process may have taken the port meanwhile.
      if (attempt >= 3 || !/EADDRINUSE|address already in use/.test(String(err))) throw err;
    }
  }
}

async function launch(options: AgentProcessOptions): Promise<AgentProcess> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  const logs: Array<Record<string, unknown>> = [];
  const args = [
    CLI, 'agent', '--listen', host, '--origin', options.origin, '--data-dir', options.dataDir,
    '--log-level', options.logLevel ?? 'warn',
    ...(options.storeMaxBytes !== undefined ? ['--store-max-bytes', String(options.storeMaxBytes)] : []),
  ];
  const proc = await startProcess(process.execPath, args, {
    name: `agent ${host}`,
    ...(options.logFile !== undefined ? { logFile: options.logFile } : {}),
    readyTimeoutMs: 30_000,
    ready: async (signal) => {
      const res = await fetch(`${url}/readyz`, { signal });
      await res.arrayBuffer();
      return res.ok;
    },
    onLine: (line, stream) => {
      if (stream !== 'stdout' || !line.startsWith('{')) return;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // Not a log line.
      }
    },
  });
  return { url, host, pid: proc.pid, logs: () => logs, output: proc.output, stop: proc.stop };
}
