/**
 * The tracker's configuration: every option with its flag, env var, YAML key, default and doc (see `layerswarm
 * tracker --help`). Validated once, at startup.
 */
import type { LevelWithSilent } from 'pino';
import { LOG_LEVELS } from '../shared/logging.ts';
import { configError, loadOptions, type HostPort, type OptionSpec } from '../shared/config/options.ts';

export interface TrackerConfig {
  listen: HostPort;
  logLevel: LevelWithSilent;
  announceInterval: number;
  peerTtl: number;
  pruneInterval: number;
  handoutSize: number;
  maxPeersPerSwarm: number;
  maxSwarms: number;
  maxPeers: number;
  seederTtl: number;
  maxSeeders: number;
  seederRequestTimeout: number;
  maxMetainfoRequests: number;
  metainfoCacheBytes: number;
  seederToken: string | undefined;
  shutdownTimeout: number;
}

export const TRACKER_OPTIONS: readonly OptionSpec[] = [
  { key: 'listen', type: 'hostport', default: { host: '0.0.0.0', port: 5060 }, doc: 'Address of the tracker\'s HTTP API.' },
  { key: 'logLevel', type: 'enum', choices: LOG_LEVELS, metavar: 'LEVEL', default: 'info', doc: `Log level (JSON logs on stdout): ${LOG_LEVELS.join(', ')}.` },
  { key: 'announceInterval', type: 'duration', default: 5000, min: 1000, max: 600_000, doc: 'Announce interval handed to peers (Kraken: 5s).' },
  { key: 'peerTtl', type: 'duration', default: 30_000, min: 1000, max: 3_600_000, doc: 'A peer that has not announced for this long leaves the swarm; must exceed the announce interval.' },
  { key: 'pruneInterval', type: 'duration', default: 5000, min: 100, max: 600_000, doc: 'How often expired peers, swarms and seeders are dropped (they are also dropped when touched).' },
  { key: 'handoutSize', type: 'int', default: 20, min: 1, max: 200, doc: 'Most peers handed out per announce.' },
  { key: 'maxPeersPerSwarm', type: 'int', default: 5000, min: 2, doc: 'Live peers recorded per digest; new peers beyond it are answered with peers but not recorded (not handed out) until room frees up.' },
  { key: 'maxSwarms', type: 'int', default: 10_000, min: 1, doc: 'Digests tracked at once; announces for new digests beyond it get 503 TRACKER_FULL.' },
  { key: 'maxPeers', type: 'int', default: 500_000, min: 1, doc: 'Peer entries over all swarms; beyond it, announces into existing swarms are answered but not recorded and new swarms get 503 TRACKER_FULL.' },
  { key: 'seederTtl', type: 'duration', default: 60_000, min: 1000, doc: 'A seeder that has not re-registered for this long is forgotten.' },
  { key: 'maxSeeders', type: 'int', default: 1000, min: 1, doc: 'Registered seeders at once.' },
  { key: 'seederRequestTimeout', type: 'duration', default: 120_000, min: 100, doc: 'Time a seeder has to produce metainfo (it may have to download and hash the whole blob).' },
  { key: 'maxMetainfoRequests', type: 'int', default: 64, min: 1, doc: 'Metainfo productions by seeders in flight at once; more get 503 TRACKER_FULL.' },
  { key: 'metainfoCacheBytes', type: 'bytes', default: 256 * 2 ** 20, min: 2 ** 20, doc: 'Memory for known metainfo (least recently used are dropped; seeders reproduce them on demand).' },
  { key: 'seederToken', type: 'string', metavar: 'TOKEN', doc: 'When set, POST /v1/seeders and PUT /v1/metainfo need "Authorization: Bearer TOKEN".' },
  { key: 'shutdownTimeout', type: 'duration', default: 10_000, min: 0, doc: 'Grace period for in-flight requests on SIGTERM.' },
];

/** Load and validate. Returns undefined when --help was asked for. */
export function loadTrackerConfig(argv: readonly string[], env: NodeJS.ProcessEnv): TrackerConfig | undefined {
  const loaded = loadOptions(TRACKER_OPTIONS, { argv, env });
  if (loaded.help) return undefined;
  const config = { seederToken: undefined, ...loaded.values } as unknown as TrackerConfig;
  const problems = checkTrackerConfig(config);
  if (problems.length > 0) throw configError(problems);
  return config;
}

/** Cross-option checks (kept apart so tests can build configs by hand). Returns problems. */
export function checkTrackerConfig(config: TrackerConfig): string[] {
  const problems: string[] = [];
  if (config.peerTtl <= config.announceInterval) problems.push(`peerTtl (${config.peerTtl} ms) must exceed announceInterval (${config.announceInterval} ms)`);
  if (config.maxPeersPerSwarm > config.maxPeers) problems.push('maxPeersPerSwarm must not exceed maxPeers');
  return problems;
}

export const DEFAULT_TRACKER_CONFIG: TrackerConfig = {
  ...(Object.fromEntries(TRACKER_OPTIONS.filter((o) => o.default !== undefined).map((o) => [o.key, o.default])) as unknown as TrackerConfig),
  seederToken: undefined,
};
