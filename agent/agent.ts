/**
 * The agent's composition root: builds the blob store, manifest cache, upstream client, blob source, fetcher, access
 * checker and registry endpoint from an AgentConfig, and starts listening. Tests and the CLI both start agents here.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { componentLogger, type Logger } from '../shared/logging.ts';
import type { AgentConfig } from './config.ts';
import { FsBlobStore } from './store/fs-store.ts';
import { ManifestCache } from './manifests/manifest-cache.ts';
import { createUpstreamClient } from './upstream/client.ts';
import { identityFromAuthorization, loadDockerConfigCredentials } from './upstream/credentials.ts';
import { UpstreamResolver } from './upstream-resolver.ts';
import { OriginBlobSource } from './source/origin-source.ts';
import type { BlobSource } from './source/blob-source.ts';
import { BlobFetcher } from './blobs/blob-fetcher.ts';
import { AccessChecker } from './access/access-checker.ts';
import { Prefetcher } from './blobs/prefetcher.ts';
import { createAgentMetrics } from './metrics.ts';
import { buildRegistryServer } from './registry/server.ts';

export interface RunningAgent {
  /** http://HOST:PORT of the registry endpoint. */
  readonly url: string;
  readonly port: number;
  readonly app: FastifyInstance;
  /** Present when prefetch is on (tests wait for it with whenIdle()). */
  readonly prefetcher: Prefetcher | undefined;
  close(): Promise<void>;
}

export interface AgentDependencies {
  logger: Logger;
  now?: () => number;
  /** Replace the blob source (the swarm plugs in here). Default: the origin. */
  blobSource?: (origin: BlobSource) => BlobSource;
}

export async function startAgent(config: AgentConfig, deps: AgentDependencies): Promise<RunningAgent> {
  const logger = componentLogger(deps.logger, 'agent');
  const now = deps.now ?? Date.now;
  const lifetime = new AbortController();
  let ready = false;

  const store = new FsBlobStore({ dir: config.dataDir, capBytes: config.storeMaxBytes, logger: componentLogger(deps.logger, 'store') });
  await store.init(lifetime.signal);
  const manifests = new ManifestCache({ dir: join(config.dataDir, 'manifests-cache'), maxManifests: config.maxManifests, logger: componentLogger(deps.logger, 'manifests'), now });
  await manifests.init();

  const metrics = createAgentMetrics(() => store.usage(), () => manifests.count);
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
  const origin = new OriginBlobSource(upstream);
  const source = deps.blobSource ? deps.blobSource(origin) : origin;
  const fetcher = new BlobFetcher({
    store,
    source,
    logger: componentLogger(deps.logger, 'fetcher'),
    attempts: config.fetchAttempts,
    lifetime: lifetime.signal,
    onFetched: (e) => metrics.blobFetches.labels(e.source, e.ok ? 'ok' : (e.code ?? 'error')).inc(),
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
  });
  await app.listen({ host: config.listen.host, port: config.listen.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const host = config.listen.host === '0.0.0.0' ? '127.0.0.1' : config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  ready = true;
  logger.info({ listen: `${config.listen.host}:${port}`, origin: config.origin, dataDir: config.dataDir, storeMaxBytes: config.storeMaxBytes }, 'agent ready');

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    port,
    app,
    prefetcher,
    close: () => {
      closing ??= (async () => {
        ready = false;
        const forced = setTimeout(() => app.server.closeAllConnections(), config.shutdownTimeout);
        await app.close();
        clearTimeout(forced);
        lifetime.abort(new Error('agent shutting down'));
        await upstream.close();
        await store.close();
        logger.info('agent stopped');
      })();
      return closing;
    },
  };
}
