/** The tracker's Prometheus metrics (prom-client, one registry per tracker instance). */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../shared/process-metrics.ts';

export interface TrackerGauges {
  swarms(): number;
  peers(): number;
  /** Live peer entries by state (one pass over the peer store per scrape). */
  peersByState(): { seeder: number; complete: number; leecher: number };
  seeders(): number;
  metainfoKnown(): number;
  metainfoBytes(): number;
  metainfoInFlight(): number;
}

export interface TrackerMetrics {
  registry: Registry;
  httpRequests: Counter<'route' | 'method' | 'status'>;
  announces: Counter<'result'>;
  peersHandedOut: Counter;
  announcesUnrecorded: Counter;
  metainfoRequests: Counter<'result'>;
  seederRegistrations: Counter<'result'>;
  prunedPeers: Counter;
  handoutDuration: Histogram;
}

export function createTrackerMetrics(gauges: TrackerGauges): TrackerMetrics {
  const registry = new Registry();
  collectProcessMetrics(registry, 'layerswarm_tracker_process_');
  const registers = [registry];
  new Gauge({ name: 'layerswarm_tracker_swarms', help: 'Digests with at least one live peer.', registers, collect() { this.set(gauges.swarms()); } });
  new Gauge({ name: 'layerswarm_tracker_peers', help: 'Live peer entries over all swarms.', registers, collect() { this.set(gauges.peers()); } });
  new Gauge({
    name: 'layerswarm_tracker_peers_by_state', help: 'Live peer entries by state: seeder (the seeder role), complete (an agent holding the whole blob), leecher (downloading).',
    labelNames: ['state'], registers,
    collect() {
      const s = gauges.peersByState();
      this.labels('seeder').set(s.seeder);
      this.labels('complete').set(s.complete);
      this.labels('leecher').set(s.leecher);
    },
  });
  new Gauge({ name: 'layerswarm_tracker_seeders', help: 'Live registered seeders.', registers, collect() { this.set(gauges.seeders()); } });
  new Gauge({ name: 'layerswarm_tracker_metainfo_known', help: 'Metainfo held in memory.', registers, collect() { this.set(gauges.metainfoKnown()); } });
  new Gauge({ name: 'layerswarm_tracker_metainfo_bytes', help: 'Approximate memory of the metainfo held.', registers, collect() { this.set(gauges.metainfoBytes()); } });
  new Gauge({ name: 'layerswarm_tracker_metainfo_in_flight', help: 'Metainfo productions by seeders in flight.', registers, collect() { this.set(gauges.metainfoInFlight()); } });
  return {
    registry,
    httpRequests: new Counter({ name: 'layerswarm_tracker_http_requests_total', help: 'Tracker API requests by route, method and status.', labelNames: ['route', 'method', 'status'], registers }),
    announces: new Counter({ name: 'layerswarm_tracker_announces_total', help: 'Announces by result (ok or error code).', labelNames: ['result'], registers }),
    announcesUnrecorded: new Counter({
      name: 'layerswarm_tracker_announces_unrecorded_total',
      help: 'Announces answered without recording the caller: its swarm was at maxPeersPerSwarm or the tracker at maxPeers.',
      registers,
    }),
    peersHandedOut: new Counter({ name: 'layerswarm_tracker_peers_handed_out_total', help: 'Peers returned in announce answers.', registers }),
    metainfoRequests: new Counter({
      name: 'layerswarm_tracker_metainfo_requests_total',
      help: 'Metainfo gets by result: hit (known), produced (asked a seeder), joined (waited on a production in flight), or an error code.',
      labelNames: ['result'], registers,
    }),
    seederRegistrations: new Counter({ name: 'layerswarm_tracker_seeder_registrations_total', help: 'Seeder registrations and heartbeats by result.', labelNames: ['result'], registers }),
    prunedPeers: new Counter({ name: 'layerswarm_tracker_pruned_peers_total', help: 'Peers dropped by the periodic prune after their TTL.', registers }),
    handoutDuration: new Histogram({
      name: 'layerswarm_tracker_handout_duration_seconds', help: 'Time to process a valid announce: record the caller and choose the peers to hand out.',
      buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1], registers,
    }),
  };
}
