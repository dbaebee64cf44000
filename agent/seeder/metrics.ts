/** The seeder's Prometheus metrics (prom-client, one registry per seeder instance). */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../../shared/process-metrics.ts';

export interface SeederGauges {
  metainfoKnown(): number;
  storeBytes(): number;
  storeBlobs(): number;
  productionsInFlight(): number;
  preheatQueued(): number;
}

export interface SeederMetrics {
  registry: Registry;
  httpRequests: Counter<'route' | 'method' | 'status'>;
  productions: Counter<'result'>;
  preheats: Counter<'result'>;
  notifications: Counter<'result'>;
  originBytes: Counter;
  trackerCalls: Counter<'call' | 'result'>;
  metainfoGeneration: Histogram;
  seededBytes: Counter;
  seededPieces: Counter;
}

export function createSeederMetrics(gauges: SeederGauges): SeederMetrics {
  const registry = new Registry();
  collectProcessMetrics(registry, 'layerswarm_seeder_process_');
  const registers = [registry];
  new Gauge({ name: 'layerswarm_seeder_metainfo_known', help: 'Blobs with persisted metainfo.', registers, collect() { this.set(gauges.metainfoKnown()); } });
  new Gauge({ name: 'layerswarm_seeder_store_bytes', help: 'Bytes of verified blobs in the store.', registers, collect() { this.set(gauges.storeBytes()); } });
  new Gauge({ name: 'layerswarm_seeder_store_blobs', help: 'Blobs in the store.', registers, collect() { this.set(gauges.storeBlobs()); } });
  new Gauge({ name: 'layerswarm_seeder_productions_in_flight', help: 'Metainfo productions running.', registers, collect() { this.set(gauges.productionsInFlight()); } });
  new Gauge({ name: 'layerswarm_seeder_preheat_queued', help: 'Preheat jobs waiting or running.', registers, collect() { this.set(gauges.preheatQueued()); } });
  return {
    registry,
    httpRequests: new Counter({ name: 'layerswarm_seeder_http_requests_total', help: 'Seeder API requests by route, method and status.', labelNames: ['route', 'method', 'status'], registers }),
    productions: new Counter({
      name: 'layerswarm_seeder_productions_total',
      help: 'Metainfo productions by result: hit (known and stored), produced (fetched, verified, hashed), joined (waited on one in flight), or an error code.',
      labelNames: ['result'], registers,
    }),
    preheats: new Counter({
      name: 'layerswarm_seeder_preheats_total',
      help: 'Preheat jobs by result: queued, produced, small (not swarmed, skipped), manifest (read, blobs queued), index (ignored), failed, dropped (queue full).',
      labelNames: ['result'], registers,
    }),
    notifications: new Counter({ name: 'layerswarm_seeder_notification_events_total', help: 'Registry notification events by result: preheat, ignored, rejected.', labelNames: ['result'], registers }),
    originBytes: new Counter({ name: 'layerswarm_seeder_origin_bytes_total', help: 'Blob bytes fetched from the origin (verified).', registers }),
    metainfoGeneration: new Histogram({
      name: 'layerswarm_seeder_metainfo_generation_seconds',
      help: 'Successful metainfo productions: fetch from the origin into the store (or a store hit), sha256 of every piece, persist, start seeding, publish to the tracker.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300], registers,
    }),
    seededBytes: new Counter({ name: 'layerswarm_seeder_seeded_bytes_total', help: 'Piece bytes uploaded to agents over the piece protocol.', registers }),
    seededPieces: new Counter({ name: 'layerswarm_seeder_seeded_pieces_total', help: 'Pieces uploaded to agents over the piece protocol.', registers }),
    trackerCalls: new Counter({ name: 'layerswarm_seeder_tracker_calls_total', help: 'Calls to the tracker (register, publish) by result (ok or error code).', labelNames: ['call', 'result'], registers }),
  };
}
