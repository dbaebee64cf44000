/**
 * The tracker's composition root: builds the peer store, metainfo registry, handout policy, metrics and HTTP API
 * from a TrackerConfig, owns the prune timer, and starts listening. Tests and the CLI both start trackers here.
 */
import type { FastifyInstance } from 'fastify';
import { componentLogger, type Logger } from '../shared/logging.ts';
import type { TrackerConfig } from './config.ts';
import { defaultHandoutPolicy, type HandoutPolicy, type Rng } from './handout-policy.ts';
import { MetainfoRegistry, type SeederCall } from './metainfo-registry.ts';
import { createTrackerMetrics } from './metrics.ts';
import { EVENT_LOG_DEFAULTS, EventLog } from './event-log.ts';
import { OFFLOAD_DEFAULTS, OffloadSeries } from './offload-series.ts';
import { PeerStore } from './peer-store.ts';
import { SwarmLabels } from './swarm-labels.ts';
import { buildTrackerServer } from './server.ts';

export interface TrackerDependencies {
  logger: Logger;
  now?: () => number;
  rng?: Rng;
  policy?: HandoutPolicy;
  /** Replace the HTTP call to seeders (tests). */
  seederCall?: SeederCall;
}

export interface TrackerParts {
  readonly app: FastifyInstance;
  readonly store: PeerStore;
  readonly metainfo: MetainfoRegistry;
  /** Drop expired peers, swarms and seeders (the running tracker calls it every pruneInterval). */
  prune(): void;
  /** Set what /readyz answers. */
  markReady(ready: boolean): void;
}

/** Build everything but do not listen (fastify inject in tests). */
export function buildTracker(config: TrackerConfig, deps: TrackerDependencies): TrackerParts {
  const now = deps.now ?? Date.now;
  let ready = false;
  const store = new PeerStore({ ttlMs: config.peerTtl, maxSwarms: config.maxSwarms, maxPeersPerSwarm: config.maxPeersPerSwarm, maxPeers: config.maxPeers, now });
  // The gauges read the registry only when scraped, after it exists.
  const metrics = createTrackerMetrics({
    swarms: () => store.swarmCount,
    peers: () => store.peerCount,
    peersByState: () => store.stateCounts(),
    seeders: () => metainfo.seeders().length,
    metainfoKnown: () => metainfo.knownCount,
    metainfoBytes: () => metainfo.knownBytes,
    metainfoInFlight: () => metainfo.inFlightCount,
  });
  const metainfo = new MetainfoRegistry({
    now,
    seederTtlMs: config.seederTtl,
    maxSeeders: config.maxSeeders,
    seederRequestTimeoutMs: config.seederRequestTimeout,
    maxInFlight: config.maxMetainfoRequests,
    cacheBytes: config.metainfoCacheBytes,
    ...(deps.seederCall ? { call: deps.seederCall } : {}),
    onResult: (result) => metrics.metainfoRequests.labels(result).inc(),
  });
  const app = buildTrackerServer({
    store, metainfo, metrics, now,
    labels: new SwarmLabels(),
    events: new EventLog({ ...EVENT_LOG_DEFAULTS, now }),
    offload: new OffloadSeries({ ...OFFLOAD_DEFAULTS, now }),
    policy: deps.policy ?? defaultHandoutPolicy,
    logger: componentLogger(deps.logger, 'tracker'),
    rng: deps.rng ?? Math.random,
    settings: { handoutSize: config.handoutSize, announceIntervalMs: config.announceInterval, seederTtlMs: config.seederTtl, seederToken: config.seederToken },
    ready: () => ready,
  });
  app.addHook('onClose', async () => {
    ready = false;
    await metainfo.close();
  });
  return {
    app, store, metainfo,
    prune: () => {
      metrics.prunedPeers.inc(store.prune());
      metainfo.pruneSeeders();
    },
    markReady: (value) => {
      ready = value;
    },
  };
}

export interface RunningTracker {
  /** http://HOST:PORT of the API. */
  readonly url: string;
  readonly port: number;
  readonly app: FastifyInstance;
  readonly store: PeerStore;
  readonly metainfo: MetainfoRegistry;
  close(): Promise<void>;
}

export async function startTracker(config: TrackerConfig, deps: TrackerDependencies): Promise<RunningTracker> {
  const logger = componentLogger(deps.logger, 'tracker');
  const parts = buildTracker(config, deps);
  const { app } = parts;
  await app.listen({ host: config.listen.host, port: config.listen.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const host = config.listen.host === '0.0.0.0' ? '127.0.0.1' : config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  const timer = setInterval(() => parts.prune(), config.pruneInterval);
  timer.unref();
  parts.markReady(true);
  logger.info({ listen: `${config.listen.host}:${port}`, peerTtl: config.peerTtl, handoutSize: config.handoutSize }, 'tracker ready');

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    port,
    app,
    store: parts.store,
    metainfo: parts.metainfo,
    close: () => {
      closing ??= (async () => {
        parts.markReady(false);
        clearInterval(timer);
        // Requests waiting on a seeder end at once (503 SHUTTING_DOWN) instead of holding the shutdown.
        await parts.metainfo.close();
        const forced = setTimeout(() => app.server.closeAllConnections(), config.shutdownTimeout);
        await app.close();
        clearTimeout(forced);
        logger.info('tracker stopped');
      })();
      return closing;
    },
  };
}
