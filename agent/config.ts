/**
 * The agent's configuration: every option with its flag, env var, YAML key, default and doc (see `layerswarm agent
 * --help` and README "Configuration"). Validated once, at startup.
 */
import { LOG_LEVELS } from '../shared/logging.ts';
import { loadOptions, type HostPort, type OptionSpec } from '../shared/config/options.ts';
import type { LevelWithSilent } from 'pino';

export interface RegistryConfig {
  /** Host as clients name it (containerd's ?ns=), e.g. "registry.example.com" or "127.0.0.1:5000". */
  host: string;
  /** Base URL the agent talks to. Default https://HOST. */
  url: string;
  username?: string;
  password?: string;
}

export interface AgentConfig {
  listen: HostPort;
  origin: string;
  dataDir: string;
  logLevel: LevelWithSilent;
  storeMaxBytes: number;
  manifestMaxBytes: number;
  maxManifests: number;
  upstreamConnectTimeout: number;
  upstreamHeadersTimeout: number;
  upstreamIdleTimeout: number;
  fetchAttempts: number;
  prefetch: boolean;
  prefetchConcurrency: number;
  accessCacheTtl: number;
  staleIfError: boolean;
  staleMaxAge: number;
  allowAnyRegistry: boolean;
  dockerConfig: string | undefined;
  shutdownTimeout: number;
  registries: RegistryConfig[];
}

export const AGENT_OPTIONS: readonly OptionSpec[] = [
  { key: 'listen', type: 'hostport', default: { host: '127.0.0.1', port: 5050 }, doc: 'Address of the registry endpoint containerd/Docker/Podman use as mirror.' },
  { key: 'origin', type: 'url', required: true, doc: 'Default upstream registry URL, used when a request names no registry (no ?ns=).' },
  { key: 'dataDir', type: 'string', metavar: 'DIR', default: '/var/lib/layerswarm', doc: 'Directory of the blob store and manifest cache.' },
  { key: 'logLevel', type: 'enum', choices: LOG_LEVELS, metavar: 'LEVEL', default: 'info', doc: `Log level (JSON logs on stdout): ${LOG_LEVELS.join(', ')}.` },
  { key: 'storeMaxBytes', type: 'bytes', default: 20 * 2 ** 30, min: 2 ** 20, doc: 'Blob store size cap; least-recently-used blobs not being served are evicted above it.' },
  { key: 'manifestMaxBytes', type: 'bytes', default: 4 * 2 ** 20, min: 1024, max: 64 * 2 ** 20, doc: 'Largest manifest accepted from an origin.' },
  { key: 'maxManifests', type: 'int', default: 50_000, min: 10, doc: 'Manifests kept in the by-digest cache (least recently used are dropped).' },
  { key: 'upstreamConnectTimeout', type: 'duration', default: 5000, min: 10, doc: 'Timeout to connect to an origin.' },
  { key: 'upstreamHeadersTimeout', type: 'duration', default: 30_000, min: 10, doc: 'Timeout for an origin to answer with headers.' },
  { key: 'upstreamIdleTimeout', type: 'duration', default: 30_000, min: 10, doc: 'A blob download from an origin fails when no byte arrives for this long.' },
  { key: 'fetchAttempts', type: 'int', default: 3, min: 1, max: 10, doc: 'Attempts per blob download; each retry resumes with a Range request.' },
  { key: 'prefetch', type: 'bool', default: true, doc: 'When an image manifest is served, start downloading its config and layers at once (clients such as skopeo and podman ask for them one after another).' },
  { key: 'prefetchConcurrency', type: 'int', default: 2, min: 1, max: 32, doc: 'Prefetch downloads running at the same time.' },
  { key: 'accessCacheTtl', type: 'duration', default: 60_000, min: 0, max: 3_600_000, doc: 'How long an origin\'s "identity may read repository" answer is reused before asking again (0 = always ask).' },
  { key: 'staleIfError', type: 'bool', default: true, doc: 'When the origin is unreachable, answer a tag from its last known digest (marked X-Layerswarm-Stale).' },
  { key: 'staleMaxAge', type: 'duration', default: 24 * 3_600_000, min: 0, doc: 'Oldest tag resolution (and access decision) that stale-if-error may use.' },
  { key: 'allowAnyRegistry', type: 'bool', default: false, doc: 'Proxy any registry a client names with ?ns= (else only the origin and configured registries; others get 404 so the client goes to the origin itself).' },
  { key: 'dockerConfig', type: 'string', metavar: 'FILE', doc: 'Docker config.json whose "auths" give the agent credentials per registry.' },
  { key: 'shutdownTimeout', type: 'duration', default: 10_000, min: 0, doc: 'Grace period for in-flight requests on SIGTERM.' },
  { key: 'registries', type: 'list', fileOnly: true, default: [], doc: 'Upstream registries: list of {host, url, username, password}.' },
];

/** The `registries` YAML section (agent and seeder). */
export function parseRegistries(raw: unknown, problems: string[]): RegistryConfig[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    problems.push('registries: expected a list of {host, url, username, password}');
    return [];
  }
  const out: RegistryConfig[] = [];
  raw.forEach((entry: unknown, i) => {
    const where = `registries[${i}]`;
    if (typeof entry !== 'object' || entry === null) return problems.push(`${where}: expected a mapping`);
    const e = entry as Record<string, unknown>;
    for (const key of Object.keys(e)) {
      if (!['host', 'url', 'username', 'password'].includes(key)) problems.push(`${where}: unknown key "${key}"`);
    }
    if (typeof e.host !== 'string' || !/^[a-zA-Z0-9._-]+(:\d{1,5})?$/.test(e.host)) {
      return problems.push(`${where}.host: expected HOST or HOST:PORT`);
    }
    let url = `https://${e.host}`;
    if (e.url !== undefined) {
      try {
        const u = new URL(String(e.url));
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
        url = u.toString().replace(/\/$/, '');
      } catch {
        return problems.push(`${where}.url: expected an http:// or https:// URL`);
      }
    }
    if ((e.username === undefined) !== (e.password === undefined)) problems.push(`${where}: username and password go together`);
    out.push({
      host: e.host,
      url,
      ...(typeof e.username === 'string' ? { username: e.username } : {}),
      ...(typeof e.password === 'string' ? { password: e.password } : {}),
    });
  });
  return out;
}

/** Load and validate. Returns undefined when --help was asked for. */
export function loadAgentConfig(argv: readonly string[], env: NodeJS.ProcessEnv): AgentConfig | undefined {
  let registries: RegistryConfig[] = [];
  const loaded = loadOptions(AGENT_OPTIONS.filter((o) => o.key !== 'registries'), {
    argv,
    env,
    fileSections: ['registries'],
    validate: (file, problems) => {
      registries = parseRegistries(file.registries, problems);
    },
  });
  if (loaded.help) return undefined;
  return { ...(loaded.values as unknown as Omit<AgentConfig, 'registries'>), registries };
}
