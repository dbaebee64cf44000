/**
 * The seeder's composition root: builds the blob store, metainfo store, upstream client (the agent's, with its
 * credentials), fetcher, producer, preheater, seeding and HTTP API from a SeederConfig, and starts listening. Then it
 * registers with the tracker and re-registers every heartbeatInterval; metainfo the tracker has not acknowledged
 * (everything known at start, and whatever failed to publish) is (re)published after each registration. Tests and
 * the CLI both start seeders here.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { withTimeout } from '../../shared/abort.ts';
import { parseDigest, type Digest } from '../../shared/digest.ts';
import { toLayerswarmError } from '../../shared/errors.ts';
import { componentLogger, type Logger } from '../../shared/logging.ts';
import type { Metainfo } from '../../shared/swarm/metainfo.ts';
import type { SwarmEngineEvents } from '../swarm/engine/stats.ts';
import { TrackerClient } from '../../tracker/client.ts';
import { isTrackerError } from '../../tracker/errors.ts';
import { BlobFetcher } from '../blobs/blob-fetcher.ts';
import { OriginBlobSource } from '../source/origin-source.ts';
import { createNodeBandwidth, type NodeBandwidth } from '../bandwidth.ts';
import { FsBlobStore } from '../store/fs-store.ts';
import { createUpstreamClient } from '../upstream/client.ts';
import { loadDockerConfigCredentials } from '../upstream/credentials.ts';
import { UpstreamResolver } from '../upstream-resolver.ts';
import { piecePolicyOf, SEEDER_ID_RE, type SeederConfig } from './config.ts';
import { MetainfoStore } from './metainfo-store.ts';
import { createSeederMetrics } from './metrics.ts';
import { Preheater } from './preheater.ts';
import { Producer } from './producer.ts';
import { NOOP_SEEDING, type Seeding, type SeedingFactory } from './seeding.ts';
import { buildSeederServer } from './server.ts';
import { ACCEPT_MANIFESTS } from '../preload/resolve-image.ts';

export interface SeederDependencies {
  logger: Logger;
  now?: () => number;
  /** The swarm engine (default: NOOP_SEEDING). */
  seeding?: SeedingFactory;
}

export interface RunningSeeder {
  /** http://HOST:PORT of the HTTP API. */
  readonly url: string;
  readonly port: number;
  /** What the tracker calls back. */
  readonly advertiseUrl: string;
  readonly seederId: string;
  readonly app: FastifyInstance;
  readonly producer: Producer;
  readonly preheater: Preheater | undefined;
  readonly metainfo: MetainfoStore;
  /** This seeder's node-wide token buckets (uploadLimit / downloadLimit; absent = unlimited). */
  readonly bandwidth: NodeBandwidth;
  close(): Promise<void>;
}

/** Per call to the tracker. */
const TRACKER_CALL_MS = 10_000;

export async function startSeeder(config: SeederConfig, deps: SeederDependencies): Promise<RunningSeeder> {
  const logger = componentLogger(deps.logger, 'seeder');
  const now = deps.now ?? Date.now;
  const lifetime = new AbortController();
  const policy = piecePolicyOf(config);
  let ready = false;
  let registered = false;

  const store = new FsBlobStore({ dir: config.dataDir, capBytes: config.storeMaxBytes, logger: componentLogger(deps.logger, 'store'), now });
  await store.init(lifetime.signal);
  const metainfo = new MetainfoStore({ dataDir: config.dataDir, logger: componentLogger(deps.logger, 'metainfo') });
  await metainfo.load(lifetime.signal);

  const dockerCredentials = config.dockerConfig ? await loadDockerConfigCredentials(config.dockerConfig) : undefined;
  const resolver = new UpstreamResolver({
    origin: config.origin,
    registries: config.registries,
    allowAnyRegistry: false,
    ...(dockerCredentials ? { credentialsFor: (host: string) => dockerCredentials.get(host) } : {}),
  });
  const upstream = createUpstreamClient({
    logger: componentLogger(deps.logger, 'upstream'),
    timeouts: { connectMs: config.upstreamConnectTimeout, headersMs: config.upstreamHeadersTimeout, bodyIdleMs: config.upstreamIdleTimeout, tokenMs: config.upstreamHeadersTimeout },
    userAgent: 'layerswarm-seeder/0.1',
  });
  const tracker = new TrackerClient({ url: config.tracker, timeoutMs: TRACKER_CALL_MS, userAgent: 'layerswarm-seeder/0.1', ...(config.trackerToken ? { seederToken: config.trackerToken } : {}) });

  // Late-bound: the seeding engine is built once the seeder id is known (after listen); productions wait for it.
  let seeding: Seeding = NOOP_SEEDING;
  let seedingReady!: () => void;
  const seedingStarted = new Promise<void>((resolve) => {
    seedingReady = resolve;
  });
  /** Digests handed to seed(): reconciled with the store every heartbeat (an evicted blob is unseeded). */
  const seeded = new Set<string>();
  const seedingProxy: Seeding = {
    seed: async (meta, path) => {
      await seedingStarted;
      await seeding.seed(meta, path);
      seeded.add(meta.digest);
    },
  };
  const unseedEvicted = async (): Promise<void> => {
    for (const digest of [...seeded]) {
      if (await store.stat(parseDigest(digest))) continue;
      seeded.delete(digest);
      logger.info({ digest }, 'blob left the store (evicted); no longer seeded');
      await seeding.unseed?.(digest).catch((err: unknown) => logger.error({ err, digest }, 'unseed failed'));
    }
  };

  // Metainfo the tracker has not acknowledged yet, by digest.
  const unpublished = new Set<string>(metainfo.all().map((r) => r.metainfo.digest));
  const metrics = createSeederMetrics({
    metainfoKnown: () => metainfo.count,
    storeBytes: () => store.usage().bytes,
    storeBlobs: () => store.usage().count,
    productionsInFlight: () => producer.inflight,
    preheatQueued: () => preheater?.pending ?? 0,
  });

  const publishOne = async (meta: Metainfo): Promise<boolean> => {
    try {
      const { created } = await tracker.putMetainfo(meta, withTimeout(lifetime.signal, TRACKER_CALL_MS));
      metrics.trackerCalls.labels('publish', 'ok').inc();
      logger.debug({ digest: meta.digest, created }, 'metainfo published to the tracker');
      unpublished.delete(meta.digest);
      return true;
    } catch (err) {
      const e = toLayerswarmError(err);
      metrics.trackerCalls.labels('publish', isTrackerError(e) ? e.trackerCode : e.code).inc();
      if (isTrackerError(e, 'METAINFO_CONFLICT') || isTrackerError(e, 'METAINFO_INVALID')) {
        // Another seeder published different metainfo (another piece policy): retrying cannot fix it.
        logger.warn({ err: e, digest: meta.digest }, 'the tracker refused this metainfo; not retrying');
        unpublished.delete(meta.digest);
        return true;
      }
      logger.warn({ err: e, digest: meta.digest }, 'cannot publish metainfo to the tracker; retrying after the next heartbeat');
      unpublished.add(meta.digest);
      return false;
    }
  };

  const bandwidth = createNodeBandwidth(config);
  const seedingEvents: SwarmEngineEvents = {
    pieceBytes: (direction, _peer, bytes) => {
      if (direction !== 'up') return;
      metrics.seededBytes.inc(bytes);
      metrics.seededPieces.inc();
    },
  };
  const fetcher = new BlobFetcher({
    store,
    source: new OriginBlobSource(upstream, { download: bandwidth.download }),
    logger: componentLogger(deps.logger, 'fetcher'),
    attempts: config.fetchAttempts,
    lifetime: lifetime.signal,
    onFetched: (e) => {
      if (e.ok) metrics.originBytes.inc(e.bytes);
    },
  });
  const producer = new Producer({
    store, fetcher, metainfo, policy, now,
    seeding: seedingProxy,
    resolveRegistry: (host) => resolver.resolve(host),
    blobPath: (digest: Digest) => join(config.dataDir, 'blobs', 'sha256', digest.hex),
    publish: async (meta) => {
      await publishOne(meta);
    },
    logger: componentLogger(deps.logger, 'producer'),
    lifetime: lifetime.signal,
    productionTimeoutMs: config.productionTimeout,
    onResult: (result) => metrics.productions.labels(result).inc(),
    onProduced: (ms) => metrics.metainfoGeneration.observe(ms / 1000),
  });
  const preheater = config.preheat
    ? new Preheater({
        producer,
        policy,
        concurrency: config.preheatConcurrency,
        maxQueued: config.preheatMaxQueued,
        jobTimeoutMs: config.productionTimeout,
        logger: componentLogger(deps.logger, 'preheat'),
        lifetime: lifetime.signal,
        onEvent: (event) => metrics.preheats.labels(event).inc(),
        fetchManifest: async (registry, repository, digest, signal) => {
          const got = await upstream.manifest(resolver.resolve(registry), repository, digest, {
            method: 'GET', accept: undefined, maxBytes: config.manifestMaxBytes, identity: { kind: 'agent' }, signal,
          });
          return got.body;
        },
      })
    : undefined;

  const app = buildSeederServer({
    producer, preheater, metainfo, store, metrics,
    logger: componentLogger(deps.logger, 'api'),
    notificationToken: config.notificationToken,
    preheatApi: {
      producer, policy, token: config.preheatToken, concurrency: config.preheatConcurrency, jobTimeoutMs: config.productionTimeout,
      logger: componentLogger(deps.logger, 'preheat-api'),
      registryHost: (registry) => resolver.resolve(registry).host,
      readManifest: async (registry, repository, reference, signal) => await upstream.manifest(resolver.resolve(registry), repository, reference, {
        method: 'GET', accept: ACCEPT_MANIFESTS, maxBytes: config.manifestMaxBytes, identity: { kind: 'agent' }, signal,
      }),
    },
    ready: () => ready,
    status: () => ({ tracker: registered ? 'registered' : 'unregistered' }),
  });
  await app.listen({ host: config.listen.host, port: config.listen.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const wildcard = config.listen.host === '0.0.0.0' || config.listen.host === '::';
  const bracket = (h: string): string => (h.includes(':') ? `[${h}]` : h);
  const localHost = wildcard ? '127.0.0.1' : bracket(config.listen.host);
  const publicHost = wildcard ? hostname() : bracket(config.listen.host);
  const advertiseUrl = config.advertiseUrl ?? `http://${publicHost}:${port}`;
  if (wildcard && config.advertiseUrl === undefined) logger.warn({ advertiseUrl }, 'listening on a wildcard address: the tracker calls back at the host name; set --advertise-url if it cannot resolve it');
  const seederId = config.seederId ?? seederIdFor(publicHost, port);

  try {
    seeding = deps.seeding ? await deps.seeding({ peerListen: config.peerListen, tracker, seederId, store, dataDir: config.dataDir, logger: componentLogger(deps.logger, 'seeding'), lifetime: lifetime.signal, bandwidth, events: seedingEvents }) : NOOP_SEEDING;
    seedingReady();
    for (const record of metainfo.all()) {
      const digest = parseDigest(record.metainfo.digest);
      if (await store.stat(digest)) await seedingProxy.seed(record.metainfo, join(config.dataDir, 'blobs', 'sha256', digest.hex));
    }
  } catch (err) {
    lifetime.abort(err);
    await app.close();
    await Promise.all([upstream.close(), tracker.close(), store.close()]);
    throw err;
  }

  const heartbeat = async (): Promise<void> => {
    await unseedEvicted();
    try {
      await tracker.registerSeeder({ id: seederId, url: advertiseUrl }, withTimeout(lifetime.signal, TRACKER_CALL_MS));
      if (!registered) logger.info({ tracker: config.tracker, seederId, advertiseUrl }, 'registered with the tracker');
      registered = true;
      metrics.trackerCalls.labels('register', 'ok').inc();
    } catch (err) {
      const e = toLayerswarmError(err);
      if (lifetime.signal.aborted) return;
      registered = false;
      metrics.trackerCalls.labels('register', isTrackerError(e) ? e.trackerCode : e.code).inc();
      logger.warn({ err: e, tracker: config.tracker }, 'cannot register with the tracker; retrying');
      return;
    }
    for (const digest of [...unpublished]) {
      if (lifetime.signal.aborted) return;
      const record = metainfo.get(digest);
      if (!record) unpublished.delete(digest);
      else if (!(await publishOne(record.metainfo))) return;
    }
  };
  const heartbeats = (async () => {
    while (!lifetime.signal.aborted) {
      await heartbeat();
      await delay(config.heartbeatInterval, undefined, { signal: lifetime.signal }).catch(() => undefined);
    }
  })();

  ready = true;
  logger.info({ listen: `${config.listen.host}:${port}`, origin: config.origin, tracker: config.tracker, seederId, advertiseUrl, known: metainfo.count, preheat: config.preheat }, 'seeder ready');

  let closing: Promise<void> | undefined;
  return {
    url: `http://${localHost}:${port}`,
    port, advertiseUrl, seederId, app, producer, preheater, metainfo, bandwidth,
    close: () => {
      closing ??= (async () => {
        ready = false;
        lifetime.abort(new Error('seeder shutting down'));
        const forced = setTimeout(() => app.server.closeAllConnections(), config.shutdownTimeout);
        await app.close();
        clearTimeout(forced);
        await heartbeats;
        await preheater?.whenIdle();
        await producer.settled();
        await seeding.close?.().catch((err: unknown) => logger.error({ err }, 'seeding close failed'));
        await Promise.all([upstream.close(), tracker.close()]);
        await store.close();
        logger.info('seeder stopped');
      })();
      return closing;
    },
  };
}

/** "seeder-HOST-PORT" with anything the tracker's id pattern refuses replaced. */
export function seederIdFor(host: string, port: number): string {
  const id = `seeder-${host.replace(/[[\]]/g, '').replace(/[^A-Za-z0-9._-]/g, '-')}-${port}`.slice(0, 128);
  return SEEDER_ID_RE.test(id) ? id : `seeder-${port}`;
}

