/** The agent's Prometheus metrics (prom-client, one registry per agent instance). */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../shared/process-metrics.ts';
import type { StoreUsage } from './store/blob-store.ts';

export interface AgentMetrics {
  registry: Registry;
  httpRequests: Counter<'route' | 'method' | 'status'>;
  bytesServed: Counter<'source'>;
  upstreamDuration: Histogram<'registry' | 'kind' | 'status'>;
  blobFetches: Counter<'source' | 'result'>;
  accessChecks: Counter<'result'>;
  staleResponses: Counter;
  prefetch: Counter<'event'>;
  swarmFallbacks: Counter<'reason'>;
  swarmBytes: Counter<'source'>;
  swarmPieceBytes: Counter<'direction' | 'peer'>;
  swarmBadPieces: Counter;
  swarmPeersBanned: Counter;
  /** Blob bytes this agent obtained, by source: cache | peer | seeder | origin (BLOB_BYTE_SOURCES). */
  blobBytes: Counter<'source'>;
  /** A client's blob GET until the blob is ready in the verified store, by source: cache | swarm | origin. */
  blobPullDuration: Histogram<'source'>;
  /** Downloads into the store (fetcher), successful ones, by source: origin | swarm. */
  blobFetchDuration: Histogram<'source'>;
  swarmPieces: Counter<'result'>;
  storeEvictions: Counter;
  storeEvictedBytes: Counter;
}

/** The label values of layerswarm_blob_bytes_total{source}. */
export const BLOB_BYTE_SOURCES = ['cache', 'peer', 'seeder', 'origin'] as const;
export type BlobByteSource = (typeof BLOB_BYTE_SOURCES)[number];

/** Buckets of the blob pull/fetch duration histograms (seconds): from a cache hit to a multi-GiB layer. */
const PULL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** What the swarm gauges read when scraped (agents with a tracker). */
export interface SwarmGaugeSource {
  torrents(): { download: number; seed: number };
  connections(): number;
}

export function createAgentMetrics(storeUsage: () => StoreUsage, manifestCount: () => number, swarm?: () => SwarmGaugeSource | undefined): AgentMetrics {
  const registry = new Registry();
  collectProcessMetrics(registry, 'layerswarm_process_');
  const registers = [registry];
  new Gauge({ name: 'layerswarm_store_bytes', help: 'Bytes of verified blobs in the store.', registers, collect() { this.set(storeUsage().bytes); } });
  new Gauge({ name: 'layerswarm_store_blobs', help: 'Blobs in the store.', registers, collect() { this.set(storeUsage().count); } });
  new Gauge({ name: 'layerswarm_store_cap_bytes', help: 'Blob store size cap.', registers, collect() { this.set(storeUsage().capBytes); } });
  new Gauge({
    name: 'layerswarm_swarm_torrents', help: 'Blobs in the swarm engine, by role (download: being downloaded; seed: served to peers from the store).', labelNames: ['role'], registers,
    collect() {
      const s = swarm?.();
      if (s === undefined) return;
      const t = s.torrents();
      this.labels('download').set(t.download);
      this.labels('seed').set(t.seed);
    },
  });
  new Gauge({
    name: 'layerswarm_swarm_connections', help: 'Open piece-protocol connections to peers.', registers,
    collect() {
      const s = swarm?.();
      if (s !== undefined) this.set(s.connections());
    },
  });
  new Gauge({ name: 'layerswarm_manifests_cached', help: 'Manifests in the by-digest cache.', registers, collect() { this.set(manifestCount()); } });
  return {
    registry,
    httpRequests: new Counter({ name: 'layerswarm_http_requests_total', help: 'Registry endpoint requests by route, method and status.', labelNames: ['route', 'method', 'status'], registers }),
    bytesServed: new Counter({ name: 'layerswarm_blob_bytes_served_total', help: 'Blob bytes sent to clients, by where the blob came from (cache: already stored; origin: fetched for this request).', labelNames: ['source'], registers }),
    upstreamDuration: new Histogram({
      name: 'layerswarm_upstream_request_duration_seconds', help: 'Time to the origin\'s response headers, by request kind and status.',
      labelNames: ['registry', 'kind', 'status'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers,
    }),
    blobFetches: new Counter({ name: 'layerswarm_blob_fetches_total', help: 'Blob downloads into the store, by source and result (ok or error code).', labelNames: ['source', 'result'], registers }),
    accessChecks: new Counter({ name: 'layerswarm_access_checks_total', help: 'Authorization checks before serving cached content, by result.', labelNames: ['result'], registers }),
    prefetch: new Counter({ name: 'layerswarm_prefetch_total', help: 'Manifest-triggered blob prefetch: queued, fetched (downloaded by prefetch), failed, dropped (queue full).', labelNames: ['event'], registers }),
    swarmFallbacks: new Counter({
      name: 'layerswarm_swarm_fallbacks_total', help: 'Blob downloads that went to the origin instead of the swarm, by reason (tracker_unreachable, no_metainfo, no_peers, stalled, swarm_error).',
      labelNames: ['reason'], registers,
    }),
    swarmBytes: new Counter({ name: 'layerswarm_swarm_bytes_total', help: 'Bytes of large blobs (swarm-eligible) committed to the store, by where they came from (peers or origin).', labelNames: ['source'], registers }),
    swarmPieceBytes: new Counter({
      name: 'layerswarm_swarm_piece_bytes_total',
      help: 'Piece bytes over the piece protocol, by direction (down: verified pieces, each credited once to the peer that delivered it first; up: pieces sent) and peer (seeder: it held every piece when the connection opened, i.e. the seeder role or an agent that had finished; agent: it was still downloading).',
      labelNames: ['direction', 'peer'], registers,
    }),
    swarmBadPieces: new Counter({ name: 'layerswarm_swarm_bad_pieces_total', help: 'Pieces received from peers that failed sha256 verification (never written).', registers }),
    swarmPeersBanned: new Counter({ name: 'layerswarm_swarm_peers_banned_total', help: 'Peers closed and blacklisted for sending a bad piece.', registers }),
    staleResponses: new Counter({ name: 'layerswarm_stale_tag_responses_total', help: 'Tags answered from the last known digest because the origin was unreachable.', registers }),
    blobBytes: new Counter({
      name: 'layerswarm_blob_bytes_total',
      help: 'Blob bytes by source: cache (served to clients from blobs already stored), peer (verified piece bytes from other agents), seeder (verified piece bytes from the seeder role), origin (blob body bytes read from an origin registry).',
      labelNames: ['source'], registers,
    }),
    blobPullDuration: new Histogram({
      name: 'layerswarm_blob_pull_duration_seconds',
      help: 'A client blob GET from arrival until the blob is ready to serve from the verified store (access check, download or wait for one), by source (cache, swarm, origin).',
      labelNames: ['source'], buckets: PULL_BUCKETS, registers,
    }),
    blobFetchDuration: new Histogram({
      name: 'layerswarm_blob_fetch_duration_seconds',
      help: 'Successful blob downloads into the store (including prefetch), by source (origin, swarm), until the verified commit.',
      labelNames: ['source'], buckets: PULL_BUCKETS, registers,
    }),
    swarmPieces: new Counter({
      name: 'layerswarm_swarm_pieces_total',
      help: 'Pieces received from peers, by result: verified (sha256 matched, credited once per piece) or failed (sha256 mismatch, never written).',
      labelNames: ['result'], registers,
    }),
    storeEvictions: new Counter({ name: 'layerswarm_store_evictions_total', help: 'Blobs evicted from the store (least recently used) to make room.', registers }),
    storeEvictedBytes: new Counter({ name: 'layerswarm_store_evicted_bytes_total', help: 'Bytes of blobs evicted from the store.', registers }),
  };
}
