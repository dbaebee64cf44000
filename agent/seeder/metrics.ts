/** The seeder's Prometheus metrics (prom-client, one registry per seeder instance). */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

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
}

export function createSeederMetrics(gauges: SeederGauges): SeederMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'layerswarm_seeder_process_' });
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
    trackerCalls: new Counter({ name: 'layerswarm_seeder_tracker_calls_total', help: 'Calls to the tracker (register, publish) by result (ok or error code).', labelNames: ['call', 'result'], registers }),
  };
}
