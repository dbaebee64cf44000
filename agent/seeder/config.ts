/**
 * The seeder's configuration: every option with its flag, env var, YAML key, default and doc (see `layerswarm seeder
 * --help`). Validated once, at startup. Options shared with the agent (store, upstream timeouts, credentials) reuse
 * the agent's specs so both document them the same way.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { LevelWithSilent } from 'pino';
import { LOG_LEVELS } from '../../shared/logging.ts';
import type { HostPort, OptionSpec } from '../../shared/config/options.ts';
import { DEFAULT_PIECE_POLICY, validatePolicy, type PiecePolicy } from '../../shared/swarm/metainfo.ts';
import { isLayerswarmError } from '../../shared/errors.ts';
import { AGENT_OPTIONS, loadConfigWithRegistries, type RegistryConfig } from '../config.ts';

export interface SeederConfig {
  origin: string;
  tracker: string;
  listen: HostPort;
  peerListen: HostPort;
  /** The IP peers dial to reach --peer-listen (unset: see peerAdvertiseOf). */
  peerAdvertise: string | undefined;
  dataDir: string;
  logLevel: LevelWithSilent;
  storeMaxBytes: number;
  manifestMaxBytes: number;
  upstreamConnectTimeout: number;
  upstreamHeadersTimeout: number;
  upstreamIdleTimeout: number;
  fetchAttempts: number;
  dockerConfig: string | undefined;
  registries: RegistryConfig[];
  seederId: string | undefined;
  advertiseUrl: string | undefined;
  trackerToken: string | undefined;
  heartbeatInterval: number;
  productionTimeout: number;
  preheat: boolean;
  preheatConcurrency: number;
  preheatMaxQueued: number;
  notificationToken: string | undefined;
  preheatToken: string | undefined;
  minPieceLength: number;
  maxPieceLength: number;
  targetPieces: number;
  originDirectMaxBytes: number;
  shutdownTimeout: number;
  /** Node-wide piece upload limit, bytes/s (0 = unlimited). */
  uploadLimit: number;
  /** Node-wide download limit (origin blob bodies, pieces received), bytes/s (0 = unlimited). */
  downloadLimit: number;
}

/** A seeder id as the tracker accepts it (tracker/schemas.ts SEEDER_ID_PATTERN). */
export const SEEDER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

const shared = (key: string, override: Partial<OptionSpec> = {}): OptionSpec => {
  const spec = AGENT_OPTIONS.find((o) => o.key === key);
  if (!spec) throw new Error(`no agent option ${key}`);
  return { ...spec, ...override };
};

export const SEEDER_OPTIONS: readonly OptionSpec[] = [
  { key: 'origin', type: 'url', required: true, doc: 'The origin registry the seeder runs beside (blobs are fetched from it; its push notifications preheat).' },
  { key: 'tracker', type: 'url', required: true, doc: 'The tracker: the seeder registers there and publishes the metainfo it produces.' },
  { key: 'listen', type: 'hostport', default: { host: '0.0.0.0', port: 5070 }, doc: 'Address of the seeder\'s HTTP API (/v1/metainfo for the tracker, /v1/notifications for the registry, /healthz, /metrics).' },
  { key: 'peerListen', type: 'hostport', default: { host: '0.0.0.0', port: 5071 }, doc: 'Address of the piece protocol (peers download pieces here).' },
  { key: 'peerAdvertise', type: 'string', metavar: 'IP', doc: 'IP address peers dial to reach --peer-listen, announced to the tracker (unset: the --peer-listen host; for a wildcard host, the first non-internal IPv4 address, else 127.0.0.1).' },
  shared('dataDir', { default: '/var/lib/layerswarm-seeder', doc: 'Directory of the blob store and the metainfo (metainfo/).' }),
  { key: 'logLevel', type: 'enum', choices: LOG_LEVELS, metavar: 'LEVEL', default: 'info', doc: `Log level (JSON logs on stdout): ${LOG_LEVELS.join(', ')}.` },
  shared('storeMaxBytes', { default: 100 * 2 ** 30, doc: 'Blob store size cap; least-recently-used blobs are evicted above it (size it to hold every blob being seeded).' }),
  shared('manifestMaxBytes'),
  shared('upstreamConnectTimeout'),
  shared('upstreamHeadersTimeout'),
  shared('upstreamIdleTimeout'),
  shared('fetchAttempts'),
  shared('dockerConfig', { doc: 'Docker config.json whose "auths" give the seeder credentials per registry.' }),
  { key: 'seederId', type: 'string', metavar: 'ID', doc: 'Id the seeder registers with at the tracker (unset: seeder-HOST-PORT, from --listen).' },
  { key: 'advertiseUrl', type: 'url', doc: 'Base URL the tracker calls the seeder back at (unset: http://HOST:PORT of --listen, the host name when listening on a wildcard address).' },
  { key: 'trackerToken', type: 'string', metavar: 'TOKEN', doc: 'The tracker\'s seeder token (its --seeder-token), sent as "Authorization: Bearer TOKEN".' },
  { key: 'heartbeatInterval', type: 'duration', default: 20_000, min: 100, max: 3_600_000, doc: 'How often the seeder re-registers at the tracker (keep it well below the tracker\'s --seeder-ttl).' },
  { key: 'productionTimeout', type: 'duration', default: 30 * 60_000, min: 1000, doc: 'Longest time one metainfo production (download, verify, hash) may take.' },
  { key: 'preheat', type: 'bool', default: true, doc: 'Produce metainfo for pushed layers when the registry notifies a push (else notifications are accepted and ignored).' },
  { key: 'preheatConcurrency', type: 'int', default: 2, min: 1, max: 64, doc: 'Preheat jobs (manifest reads and blob productions) running at the same time.' },
  { key: 'preheatMaxQueued', type: 'int', default: 10_000, min: 1, doc: 'Preheat jobs waiting at most; more are dropped (and produced on demand later).' },
  { key: 'notificationToken', type: 'string', metavar: 'TOKEN', doc: 'When set, POST /v1/notifications needs "Authorization: Bearer TOKEN" (set it in the registry\'s notifications endpoint headers).' },
  { key: 'preheatToken', type: 'string', metavar: 'TOKEN', doc: 'When set, POST /v1/preheat and GET /v1/preheat/ID (layerswarm preheat --token) need "Authorization: Bearer TOKEN"; unset: open, like /v1/notifications.' },
  { key: 'minPieceLength', type: 'bytes', default: DEFAULT_PIECE_POLICY.minPieceLength, doc: 'Smallest piece (a power of two). Every seeder of a tracker must use the same piece policy (else the tracker refuses the other\'s metainfo with METAINFO_CONFLICT).' },
  { key: 'maxPieceLength', type: 'bytes', default: DEFAULT_PIECE_POLICY.maxPieceLength, doc: 'Largest piece (a power of two).' },
  { key: 'targetPieces', type: 'int', default: DEFAULT_PIECE_POLICY.targetPieces, min: 1, max: 65_536, doc: 'Aimed-for piece count of large blobs.' },
  { key: 'originDirectMaxBytes', type: 'bytes', default: DEFAULT_PIECE_POLICY.originDirectMaxBytes, doc: 'Blobs up to this size are not preheated (agents fetch them from the origin directly); they are still produced when asked.' },
  shared('shutdownTimeout'),
  shared('uploadLimit', { doc: 'Node-wide upload bandwidth limit in bytes per second (e.g. 50MiB) for pieces sent to agents, shared by all connections; 0 = unlimited.' }),
  shared('downloadLimit', { doc: 'Node-wide download bandwidth limit in bytes per second (e.g. 50MiB) for blob bodies fetched from origins (and any piece received); 0 = unlimited.' }),
  { key: 'registries', type: 'list', fileOnly: true, default: [], doc: 'Upstream registries besides the origin: list of {host, url, username, password}.' },
];

export function piecePolicyOf(config: Pick<SeederConfig, 'minPieceLength' | 'maxPieceLength' | 'targetPieces' | 'originDirectMaxBytes'>): PiecePolicy {
  return {
    minPieceLength: config.minPieceLength,
    maxPieceLength: config.maxPieceLength,
    targetPieces: config.targetPieces,
    originDirectMaxBytes: config.originDirectMaxBytes,
  };
}

const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '';

/** An address the tracker accepts as dialable (tracker/server.ts announce): an IP, not a wildcard or multicast one. */
function undialable(address: string): string | undefined {
  if (isIP(address) === 0) return 'is not an IP address';
  if (isWildcard(address)) return 'is a wildcard address peers cannot dial';
  if (/^(22[4-9]|23\d)\./.test(address) || /^ff/i.test(address)) return 'is a multicast address';
  return undefined;
}

/** The first non-internal IPv4 address of this host, else 127.0.0.1. */
export function firstExternalIPv4(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/**
 * The IP the seeder announces for its piece listener: --peer-advertise, else the --peer-listen host, else (a wildcard
 * listen host) the first non-internal IPv4 address or 127.0.0.1.
 */
export function peerAdvertiseOf(config: Pick<SeederConfig, 'peerListen' | 'peerAdvertise'>): string {
  if (config.peerAdvertise !== undefined) return config.peerAdvertise;
  const host = config.peerListen.host;
  return isWildcard(host) ? firstExternalIPv4() : host;
}

/** Cross-option checks. Returns problems. */
export function checkSeederConfig(config: SeederConfig): string[] {
  const problems: string[] = [];
  if (config.peerAdvertise !== undefined) {
    const why = undialable(config.peerAdvertise);
    if (why) problems.push(`peerAdvertise ${JSON.stringify(config.peerAdvertise)} ${why}`);
  } else if (!isWildcard(config.peerListen.host) && isIP(config.peerListen.host) === 0) {
    problems.push(`peerListen host ${JSON.stringify(config.peerListen.host)} is not an IP address: set peerAdvertise to the IP peers dial`);
  }
  if (config.seederId !== undefined && !SEEDER_ID_RE.test(config.seederId)) problems.push(`seederId ${JSON.stringify(config.seederId)} must match ${SEEDER_ID_RE.source}`);
  try {
    validatePolicy(piecePolicyOf(config));
  } catch (err) {
    if (!isLayerswarmError(err, 'CONFIG_INVALID')) throw err;
    problems.push(`piece policy: ${err.message}`);
  }
  return problems;
}

/** Load and validate. Returns undefined when --help was asked for. */
export function loadSeederConfig(argv: readonly string[], env: NodeJS.ProcessEnv): SeederConfig | undefined {
  const unset = { peerAdvertise: undefined, dockerConfig: undefined, seederId: undefined, advertiseUrl: undefined, trackerToken: undefined, notificationToken: undefined, preheatToken: undefined };
  return loadConfigWithRegistries<SeederConfig>(SEEDER_OPTIONS, argv, env, unset, checkSeederConfig);
}
