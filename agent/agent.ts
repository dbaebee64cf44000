/**
 * The agent's composition root: builds the blob store, manifest cache, upstream client, blob source, fetcher, access
 * checker and registry endpoint from an AgentConfig, and starts listening. Tests and the CLI both start agents here.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { componentLogger, type Logger } from '../shared/logging.ts';
import { TcpTransport } from '../shared/wire/tcp-transport.ts';
import { TrackerClient } from '../tracker/client.ts';
import { EventReporter } from '../tracker/event-reporter.ts';
import { peerAdvertiseAddress, type AgentConfig } from './config.ts';
import { FsBlobStore } from './store/fs-store.ts';
import { ManifestCache } from './manifests/manifest-cache.ts';
import { createUpstreamClient } from './upstream/client.ts';
import { identityFromAuthorization, loadDockerConfigCredentials } from './upstream/credentials.ts';
import { UpstreamResolver } from './upstream-resolver.ts';
import { OriginBlobSource } from './source/origin-source.ts';
import type { BlobSource } from './source/blob-source.ts';
import { SWARM_FALLBACK_REASONS, SwarmBlobSource } from './source/swarm-source.ts';
import { SwarmEngine, swarmEngineConfig, trackerAnnounce, type SwarmEngineEvents } from './swarm/engine/index.ts';
import { SeedMetaStore } from './swarm/seed-meta-store.ts';
import { BlobFetcher } from './blobs/blob-fetcher.ts';
import { AccessChecker } from './access/access-checker.ts';
import { Prefetcher } from './blobs/prefetcher.ts';
import { BLOB_BYTE_SOURCES, createAgentMetrics, type AgentMetrics } from './metrics.ts';
import { createNodeBandwidth, limitTransport, type BandwidthClock, type NodeBandwidth } from './bandwidth.ts';
import { buildRegistryServer } from './registry/server.ts';
import { startOpsServer, type RunningOpsServer } from './ops-server.ts';

export interface RunningAgent {
  /** http://HOST:PORT of the registry endpoint. */
  readonly url: string;
  /** http://HOST:PORT of the --metrics-listen listener, when configured. */
  readonly metricsUrl: string | undefined;
  readonly port: number;
  readonly app: FastifyInstance;
  /** Present when prefetch is on (tests wait for it with whenIdle()). */
  readonly prefetcher: Prefetcher | undefined;
  /** This agent's node-wide token buckets (uploadLimit / downloadLimit; absent = unlimited). */
  readonly bandwidth: NodeBandwidth;
  close(): Promise<void>;
}

export interface AgentDependencies {
  logger: Logger;
  now?: () => number;
  /**
   * Wrap or replace the blob source. Gets the origin source, or the swarm source when `tracker` is configured.
   * Default: that source as it is.
   */
  blobSource?: (source: BlobSource) => BlobSource;
  /** Clock of the bandwidth limiters (tests: a fake clock). Default real time. */
  bandwidthClock?: BandwidthClock;
}

export async function startAgent(config: AgentConfig, deps: AgentDependencies): Promise<RunningAgent> {
  const logger = componentLogger(deps.logger, 'agent');
  const now = deps.now ?? Date.now;
  const lifetime = new AbortController();
  let ready = false;

  let swarmSource: SwarmBlobSource | undefined;
  // The metrics are created below (their gauges read the store); evictions before that are not counted.
  const late: { metrics?: AgentMetrics } = {};
  const store = new FsBlobStore({
    dir: config.dataDir, capBytes: config.storeMaxBytes, logger: componentLogger(deps.logger, 'store'),
    onChange: () => swarmSource?.storeChanged(),
    onEvict: (size) => {
      late.metrics?.storeEvictions.inc();
      late.metrics?.storeEvictedBytes.inc(size);
    },
  });
  await store.init(lifetime.signal);
  const manifests = new ManifestCache({ dir: join(config.dataDir, 'manifests-cache'), maxManifests: config.maxManifests, logger: componentLogger(deps.logger, 'manifests'), now });
  await manifests.init();

  let swarmEngine: SwarmEngine | undefined;
  const metrics = createAgentMetrics(() => store.usage(), () => manifests.count, () => swarmEngine && {
    torrents: () => {
      const all = swarmEngine?.stats() ?? [];
      const download = all.filter((t) => t.role === 'download').length;
      return { download, seed: all.length - download };
    },
    connections: () => swarmEngine?.connectionCount ?? 0,
  });
  late.metrics = metrics;
  for (const source of BLOB_BYTE_SOURCES) metrics.blobBytes.labels(source).inc(0);
  metrics.storeEvictions.inc(0);
  metrics.storeEvictedBytes.inc(0);
  const dockerCredentials = config.dockerConfig ? await loadDockerConfigCredentials(config.dockerConfig) : undefined;
  const resolver = new UpstreamResolver({
    origin: config.origin,
    registries: config.registries,
    allowAnyRegistry: config.allowAnyRegistry,
    ...(dockerCredentials ? { credentialsFor: (host: string) => dockerCredentials.get(host) } : {}),
  });
  const upstream = createUpstreamClient({
    logger: componentLogger(deps.logger, 'upstream'),
    timeouts: {
      connectMs: config.upstreamConnectTimeout,
      headersMs: config.upstreamHeadersTimeout,
      bodyIdleMs: config.upstreamIdleTimeout,
      tokenMs: config.upstreamHeadersTimeout,
    },
    userAgent: 'layerswarm-agent/0.1',
    onRequest: (e) => metrics.upstreamDuration.labels(e.registry, e.kind, String(e.status)).observe(e.durationMs / 1000),
  });
  // One upload and one download bucket per agent (not per process: tests and benchmarks run many agents in one).
  const bandwidth = createNodeBandwidth(config, deps.bandwidthClock);
  const originBytes = metrics.blobBytes.labels('origin');
  const origin = new OriginBlobSource(upstream, { download: bandwidth.download, onBytes: (n) => originBytes.inc(n) });
  const piecesVerified = metrics.swarmPieces.labels('verified');
  const piecesFailed = metrics.swarmPieces.labels('failed');
  // Swarm events and committed bytes reported to the tracker (its dashboard and `layerswarm status`).
  let reporter: EventReporter | undefined;
  const swarmEvents: SwarmEngineEvents = {
    pieceBytes: (direction, peer, bytes, role) => {
      metrics.swarmPieceBytes.labels(direction, peer).inc(bytes);
      if (direction === 'down') {
        piecesVerified.inc();
        metrics.blobBytes.labels(role).inc(bytes);
      }
    },
    badPiece: () => {
      metrics.swarmBadPieces.inc();
      piecesFailed.inc();
    },
    peerBanned: () => metrics.swarmPeersBanned.inc(),
  };
  const swarm = config.tracker === undefined ? undefined : await startSwarm(config, config.tracker, deps.logger, reportingEvents(swarmEvents, () => reporter), bandwidth);
  if (swarm !== undefined) {
    swarmEngine = swarm.engine;
    reporter = new EventReporter({ client: swarm.tracker, peerId: swarm.engine.peerId, zone: config.zone, logger: componentLogger(deps.logger, 'swarm-events') });
    for (const reason of SWARM_FALLBACK_REASONS) metrics.swarmFallbacks.labels(reason).inc(0);
    for (const direction of ['down', 'up']) for (const peer of ['seeder', 'agent']) metrics.swarmPieceBytes.labels(direction, peer).inc(0);
    metrics.swarmBadPieces.inc(0);
    metrics.swarmPeersBanned.inc(0);
    piecesVerified.inc(0);
    piecesFailed.inc(0);
    swarmSource = new SwarmBlobSource({
      origin, upstream, store,
      metaStore: new SeedMetaStore({ dir: join(config.dataDir, 'swarm', 'meta'), logger: componentLogger(deps.logger, 'swarm-meta'), now }),
      originRange: (request, start, end, signal) => origin.openRange(request, start, end, signal),
      tracker: swarm.tracker,
      engine: swarm.engine,
      isDefaultRegistry: (registry) => registry === resolver.defaultRegistry,
      originDirectMaxBytes: config.swarmOriginDirectMaxBytes,
      metainfoTimeoutMs: config.metainfoTimeout,
      stallTimeoutMs: config.swarmStallTimeout,
      noPeerTimeoutMs: config.swarmNoPeerTimeout,
      maxTorrents: swarm.maxTorrents,
      logger: componentLogger(deps.logger, 'swarm-source'),
      lifetime: lifetime.signal,
      now,
      onFallback: (reason, digest) => {
        metrics.swarmFallbacks.labels(reason).inc();
        reporter?.event('fallback', digest, reason);
      },
      onBytes: (from, bytes) => {
        metrics.swarmBytes.labels(from).inc(bytes);
        reporter?.bytes(from, bytes);
      },
    });
  }
  const base: BlobSource = swarmSource ?? origin;
  const source = deps.blobSource ? deps.blobSource(base) : base;
  const fetcher = new BlobFetcher({
    store,
    source,
    logger: componentLogger(deps.logger, 'fetcher'),
    attempts: config.fetchAttempts,
    lifetime: lifetime.signal,
    onFetched: (e) => {
      metrics.blobFetches.labels(e.source, e.ok ? 'ok' : (e.code ?? 'error')).inc();
      if (e.ok) metrics.blobFetchDuration.labels(e.source).observe(e.durationMs / 1000);
    },
  });
  const access = new AccessChecker({
    upstream,
    logger: componentLogger(deps.logger, 'access'),
    ttlMs: config.accessCacheTtl,
    staleMaxAgeMs: config.staleMaxAge,
    manifestMaxBytes: config.manifestMaxBytes,
    now,
    onCheck: (result) => metrics.accessChecks.labels(result).inc(),
  });
  const prefetcher = config.prefetch
    ? new Prefetcher({
        fetcher,
        logger: componentLogger(deps.logger, 'prefetch'),
        concurrency: config.prefetchConcurrency,
        maxQueued: 1000,
        lifetime: lifetime.signal,
        onFetched: (registry, name, identity, digest) => access.record(registry, name, identity, digest.value),
        onEvent: (event) => metrics.prefetch.labels(event).inc(),
      })
    : undefined;
  const app = buildRegistryServer({
    resolver, upstream, fetcher, store, access, manifests, metrics, now, prefetcher,
    logger: componentLogger(deps.logger, 'registry'),
    identityOf: identityFromAuthorization,
    settings: {
      manifestMaxBytes: config.manifestMaxBytes,
      staleIfError: config.staleIfError,
      staleMaxAge: config.staleMaxAge,
      requestTimeout: config.upstreamHeadersTimeout + config.upstreamConnectTimeout,
    },
    ready: () => ready,
  }, { preload: { token: config.preloadToken, concurrency: config.prefetchConcurrency } });
  let ops: RunningOpsServer | undefined;
  try {
    await app.listen({ host: config.listen.host, port: config.listen.port });
    if (config.metricsListen !== undefined) {
      ops = await startOpsServer({ listen: config.metricsListen, registry: metrics.registry, ready: () => ready, logger: componentLogger(deps.logger, 'metrics-listener') });
    }
  } catch (err) {
    await app.close();
    await reporter?.close();
    await swarm?.engine.close();
    await swarm?.tracker.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const host = config.listen.host === '0.0.0.0' ? '127.0.0.1' : config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  ready = true;
  // Seed what the store already holds (metainfo persisted before a restart), in the background.
  const resumed = swarmSource?.resumeSeeding(lifetime.signal).catch((err: unknown) => {
    if (!lifetime.signal.aborted) logger.warn({ err }, 'could not resume seeding stored blobs');
  });
  logger.info({
    listen: `${config.listen.host}:${port}`, origin: config.origin, dataDir: config.dataDir, storeMaxBytes: config.storeMaxBytes,
    ...(swarm ? { tracker: config.tracker, peerListen: swarm.engine.address, peerAdvertise: swarm.advertise, zone: config.zone } : {}),
    uploadLimit: config.uploadLimit, downloadLimit: config.downloadLimit,
  }, 'agent ready');

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    metricsUrl: ops?.url,
    port,
    app,
    prefetcher,
    bandwidth,
    close: () => {
      closing ??= (async () => {
        ready = false;
        // Graceful: no new peers from now on; in-flight serves (HTTP and piece uploads) finish below.
        swarm?.engine.stopAccepting();
        const forced = setTimeout(() => app.server.closeAllConnections(), config.shutdownTimeout);
        await app.close();
        clearTimeout(forced);
        lifetime.abort(new Error('agent shutting down'));
        await resumed;
        // Partial downloads are kept: the same digest resumes from its verified pieces after a restart.
        await swarm?.engine.close().catch((err: unknown) => logger.warn({ err }, 'swarm engine close failed'));
        await reporter?.close();
        await swarm?.tracker.close();
        await upstream.close();
        await store.close();
        await ops?.close();
        logger.info('agent stopped');
      })();
      return closing;
    },
  };
}

interface Swarm {
  readonly tracker: TrackerClient;
  readonly engine: SwarmEngine;
  readonly advertise: string;
  readonly maxTorrents: number;
}

/** The swarm side of an agent with `tracker` set: tracker client, piece-protocol listener, engine. */
async function startSwarm(config: AgentConfig, trackerUrl: string, rootLogger: Logger, events: SwarmEngineEvents, bandwidth: NodeBandwidth): Promise<Swarm> {
  const tracker = new TrackerClient({ url: trackerUrl, metainfoTimeoutMs: config.metainfoTimeout, userAgent: 'layerswarm-agent/0.1' });
  const advertise = peerAdvertiseAddress(config);
  const engineConfig = swarmEngineConfig();
  const dataDir = join(config.dataDir, 'swarm');
  await mkdir(dataDir, { recursive: true });
  const engineRef: { current?: SwarmEngine } = {};
  // Byte counters per torrent ride on every announce: the tracker derives each peer's rates from them.
  const traffic = (digest: string): { uploaded: number; downloaded: number } | undefined => {
    const t = engineRef.current?.torrentStats(digest);
    return t && { uploaded: t.bytesUp, downloaded: t.bytesDown };
  };
  const engine = new SwarmEngine({
    transport: limitTransport(new TcpTransport(), bandwidth),
    announce: trackerAnnounce(tracker, { address: advertise, traffic, ...(config.zone === undefined ? {} : { zone: config.zone }) }),
    dataDir, config: engineConfig, logger: rootLogger, events,
  });
  engineRef.current = engine;
  try {
    await engine.listen(config.peerListen);
  } catch (err) {
    await tracker.close();
    throw err;
  }
  return { tracker, engine, advertise, maxTorrents: engineConfig.maxTorrents };
}

/** The engine's hooks, also reported to the tracker as swarm events. */
function reportingEvents(events: SwarmEngineEvents, reporter: () => EventReporter | undefined): SwarmEngineEvents {
  return {
    ...events,
    badPiece: () => {
      events.badPiece?.();
      reporter()?.event('bad_piece');
    },
    peerBanned: () => {
      events.peerBanned?.();
      reporter()?.event('peer_banned');
    },
  };
}
