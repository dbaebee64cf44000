/**
 * The agent's configuration: every option with its flag, env var, YAML key, default and doc (see `layerswarm agent
 * --help` and README "Configuration"). Validated once, at startup.
 */
import { LOG_LEVELS } from '../shared/logging.ts';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { configError, loadOptions, type HostPort, type OptionSpec } from '../shared/config/options.ts';
import { DEFAULT_PIECE_POLICY } from '../shared/swarm/metainfo.ts';
import { ZONE_PATTERN } from '../tracker/schemas.ts';
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
  /** Tracker URL: set → blobs come through the swarm (falling back to the origin); unset → a plain mirror. */
  tracker: string | undefined;
  peerListen: HostPort;
  /** IP address peers dial (unset: see peerAdvertiseAddress). */
  peerAdvertise: string | undefined;
  zone: string | undefined;
  metainfoTimeout: number;
  swarmStallTimeout: number;
  swarmNoPeerTimeout: number;
  swarmOriginDirectMaxBytes: number;
  /** Node-wide piece upload limit, bytes/s (0 = unlimited). */
  uploadLimit: number;
  /** Node-wide download limit, bytes/s, for pieces from peers and blob bodies from origins (0 = unlimited). */
  downloadLimit: number;
  /** Bearer token of POST /v1/preload (unset: loopback callers only). */
  preloadToken: string | undefined;
  /** Extra listener for /metrics, /healthz and /readyz only (unset: they are served on `listen` alone). */
  metricsListen: HostPort | undefined;
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
  { key: 'tracker', type: 'url', doc: 'Tracker URL. Set: large blobs are downloaded from peers (piece by piece, every piece and the whole blob verified) with the origin as fallback, and kept seeding from the store. Unset: a plain mirror.' },
  { key: 'peerListen', type: 'hostport', default: { host: '0.0.0.0', port: 5051 }, doc: 'Address of the piece protocol (peers download pieces here); used only with --tracker.' },
  { key: 'peerAdvertise', type: 'string', metavar: 'IP', doc: 'IP address other peers dial to reach --peer-listen (unset: the --peer-listen host, or the first non-internal IPv4 address when that is a wildcard).' },
  { key: 'zone', type: 'string', metavar: 'ZONE', doc: 'Zone (e.g. rack or availability zone) announced to the tracker, which prefers handing out peers of the same zone.' },
  { key: 'metainfoTimeout', type: 'duration', default: 10_000, min: 10, doc: 'How long to wait for a blob\'s metainfo from the tracker before fetching it from the origin.' },
  { key: 'swarmStallTimeout', type: 'duration', default: 30_000, min: 10, doc: 'A swarm download that verifies no new piece for this long (and at least 8 piece latencies) is abandoned for the origin.' },
  { key: 'swarmNoPeerTimeout', type: 'duration', default: 5000, min: 10, doc: 'A swarm download during which, for this long (and at least 20 piece latencies; the clock starts once the tracker answered or failed), no connected peer holds a piece it lacks, no piece is in flight and no neighbour announces a new piece (tracker or seeder gone, nobody has the blob) is abandoned for the origin.' },
  { key: 'swarmOriginDirectMaxBytes', type: 'bytes', default: DEFAULT_PIECE_POLICY.originDirectMaxBytes, min: 0, doc: 'Blobs up to this size are fetched from the origin, not the swarm (keep it equal to the seeder\'s --origin-direct-max-bytes).' },
  { key: 'uploadLimit', type: 'bytes', default: 0, min: 0, metavar: 'BYTES/S', doc: 'Node-wide upload bandwidth limit in bytes per second (e.g. 50MiB) for pieces sent to peers, shared by all connections; 0 = unlimited.' },
  { key: 'downloadLimit', type: 'bytes', default: 0, min: 0, metavar: 'BYTES/S', doc: 'Node-wide download bandwidth limit in bytes per second (e.g. 50MiB), shared by pieces from peers and blob bodies from origins (also without --tracker); 0 = unlimited.' },
  { key: 'metricsListen', type: 'hostport', doc: 'Extra address serving only /metrics, /healthz and /readyz (e.g. 0.0.0.0:5052 for Prometheus and probes), so the registry endpoint can stay on 127.0.0.1. Unset: they are served on --listen only.' },
  { key: 'preloadToken', type: 'string', metavar: 'TOKEN', doc: 'When set, POST /v1/preload and GET /v1/preload/ID (layerswarm preload) need "Authorization: Bearer TOKEN" and are allowed from any address; unset: loopback callers only.' },
];

/** The IP address announced to the tracker for peers to dial: --peer-advertise, else the --peer-listen host, else (wildcard) the first non-internal IPv4 address, else 127.0.0.1. */
export function peerAdvertiseAddress(config: Pick<AgentConfig, 'peerAdvertise' | 'peerListen'>, interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces()): string {
  if (config.peerAdvertise !== undefined) return config.peerAdvertise;
  const host = config.peerListen.host;
  if (host !== '' && host !== '0.0.0.0' && host !== '::') return host;
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/** Cross-option checks. Returns problems. */
export function checkAgentConfig(config: AgentConfig): string[] {
  const problems: string[] = [];
  if (config.peerAdvertise !== undefined && isIP(config.peerAdvertise) === 0) problems.push(`peerAdvertise: expected an IP address, got ${JSON.stringify(config.peerAdvertise)}`);
  if (config.tracker !== undefined && config.peerAdvertise === undefined && !['', '0.0.0.0', '::'].includes(config.peerListen.host) && isIP(config.peerListen.host) === 0) {
    problems.push(`peerListen: the host ${JSON.stringify(config.peerListen.host)} is not an IP address; set peerAdvertise to the IP peers dial`);
  }
  if (config.zone !== undefined && !new RegExp(ZONE_PATTERN).test(config.zone)) problems.push(`zone: expected ${ZONE_PATTERN}, got ${JSON.stringify(config.zone)}`);
  return problems;
}

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

/**
 * Options + the YAML `registries` section (agent and seeder): flags, env and file merged, every problem reported at
 * once, then `check` for cross-option rules. Returns undefined for --help. `unset` lists optional keys as undefined.
 */
export function loadConfigWithRegistries<C>(
  specs: readonly OptionSpec[],
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  unset: Record<string, undefined>,
  check: (config: C) => string[],
): C | undefined {
  let registries: RegistryConfig[] = [];
  const loaded = loadOptions(specs.filter((o) => o.key !== 'registries'), {
    argv,
    env,
    fileSections: ['registries'],
    validate: (file, problems) => {
      registries = parseRegistries(file.registries, problems);
    },
  });
  if (loaded.help) return undefined;
  const config = { ...unset, ...loaded.values, registries } as unknown as C;
  const problems = check(config);
  if (problems.length > 0) throw configError(problems);
  return config;
}

/** Load and validate. Returns undefined when --help was asked for. */
export function loadAgentConfig(argv: readonly string[], env: NodeJS.ProcessEnv): AgentConfig | undefined {
  const unset = { dockerConfig: undefined, tracker: undefined, peerAdvertise: undefined, zone: undefined, preloadToken: undefined };
  return loadConfigWithRegistries<AgentConfig>(AGENT_OPTIONS, argv, env, unset, checkAgentConfig);
}
