/**
 * The tracker's monitoring API and the swarm-health dashboard (tracker/dashboard/, static files, no build step):
 *   GET  /v1/swarms?limit=        every swarm with counts, size, repository, progress, rates; totals
 *   GET  /v1/swarms/:digest       one swarm: peers with progress, rates, role, zone, last seen; piece availability
 *   POST /v1/events               agents report fallbacks, bad pieces, banned peers and committed bytes by source
 *                                 (a fallback also takes the reporting leecher out of that swarm)
 *   GET  /v1/events?since=&limit= the event ring, newest last
 *   GET  /v1/offload              origin offload ratio over time
 *   GET  /dashboard, /dashboard/* the page (/ redirects there)
 * Every list is bounded (limit, the event ring, the offload window).
 */
import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { parseDigest } from '../shared/digest.ts';
import { TrackerError } from './errors.ts';
import type { EventLog } from './event-log.ts';
import type { MetainfoRegistry } from './metainfo-registry.ts';
import type { OffloadSeries } from './offload-series.ts';
import type { PeerStore } from './peer-store.ts';
import { getEventsSchema, postEventsSchema, swarmDetailSchema, swarmsSchema, type EventsBody } from './schemas.ts';
import type { SwarmLabels } from './swarm-labels.ts';
import { swarmDetailView, swarmView, type SwarmFacts } from './swarm-views.ts';

export interface MonitorContext {
  readonly store: PeerStore;
  readonly metainfo: MetainfoRegistry;
  readonly labels: SwarmLabels;
  readonly events: EventLog;
  readonly offload: OffloadSeries;
  readonly now: () => number;
}

const DASHBOARD_FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};
const DASHBOARD_DIR = new URL('./dashboard/', import.meta.url);
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

export function registerMonitorRoutes(app: FastifyInstance, ctx: MonitorContext): void {
  const facts = (digest: string): SwarmFacts | undefined => ctx.metainfo.peek(digest);

  app.get<{ Querystring: { limit?: string } }>('/v1/swarms', { schema: swarmsSchema }, async (request) => {
    const limit = Math.min(10_000, Number(request.query.limit ?? 1000));
    const swarms = ctx.store.summaries(limit).map((s) => swarmView(s, facts(s.digest), ctx.labels.of(s.digest)));
    let upRate = 0;
    let downRate = 0;
    for (const s of swarms) {
      upRate += s.upRate;
      downRate += s.downRate;
    }
    const offload = ctx.offload.report();
    return {
      swarms,
      totals: {
        swarms: ctx.store.swarmCount, peers: ctx.store.peerCount, seeders: ctx.metainfo.seeders().length,
        upRate, downRate, offloadRatio: offload.window.ratio, events: ctx.events.counts(),
      },
      at: ctx.now(),
    };
  });

  app.get<{ Params: { digest: string }; Querystring: { limit?: string } }>('/v1/swarms/:digest', { schema: { ...swarmDetailSchema, ...swarmsSchema } }, async (request) => {
    const digest = digestOf(request.params.digest);
    const summary = ctx.store.summary(digest);
    if (summary === undefined) throw new TrackerError('NOT_FOUND', `no swarm for ${digest}: no peer announced it within the peer TTL`);
    const limit = Math.min(5000, Number(request.query.limit ?? 500));
    return { ...swarmDetailView(summary, ctx.store.peers(digest), facts(digest), ctx.labels.of(digest), ctx.now(), limit), at: ctx.now() };
  });

  app.post<{ Body: EventsBody }>('/v1/events', { schema: postEventsSchema, bodyLimit: 32 * 1024 }, async (request, reply) => {
    const { peerId, zone, events = [], bytes } = request.body;
    if (bytes !== undefined) ctx.offload.add(bytes.peers, bytes.origin);
    // A peer that fell back to the origin left the swarm's download (it comes back as complete once it seeds):
    // do not show it as a stalled leecher until its entry expires.
    for (const e of events) {
      if (e.kind !== 'fallback' || e.digest === undefined) continue;
      const entry = ctx.store.peers(e.digest).find((p) => p.peerId === peerId);
      if (entry !== undefined && !entry.complete && !entry.seeder) ctx.store.remove(e.digest, peerId);
    }
    const accepted = ctx.events.add(events.map((e) => ({ kind: e.kind, peerId, zone: zone ?? null, digest: e.digest ?? null, reason: e.reason ?? null })));
    return reply.code(202).send({ accepted, dropped: events.length - accepted });
  });

  app.get<{ Querystring: { since?: string; limit?: string } }>('/v1/events', { schema: getEventsSchema }, async (request) => {
    const since = Number(request.query.since ?? 0);
    const limit = Math.min(1000, Number(request.query.limit ?? 100));
    return { events: ctx.events.since(since, limit), lastId: ctx.events.lastId, dropped: ctx.events.dropped, counts: ctx.events.counts(), at: ctx.now() };
  });

  app.get('/v1/offload', async () => ({ ...ctx.offload.report(), at: ctx.now() }));

  // The dashboard: a few static files, read once, sent with a strict CSP (no inline script, no foreign origin).
  const cache = new Map<string, Buffer>();
  const sendFile = async (name: string, reply: FastifyReply): Promise<unknown> => {
    const type = DASHBOARD_FILES[name];
    if (type === undefined) throw new TrackerError('NOT_FOUND', `no dashboard file ${JSON.stringify(name.slice(0, 100))}`);
    let body = cache.get(name);
    if (body === undefined) {
      body = await readFile(new URL(name, DASHBOARD_DIR));
      cache.set(name, body);
    }
    return reply.type(type).header('cache-control', 'no-cache').header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').send(body);
  };
  app.get('/', async (_request, reply) => reply.redirect('/dashboard', 302));
  app.get('/dashboard', async (_request, reply) => sendFile('index.html', reply));
  app.get<{ Params: { file: string } }>('/dashboard/:file', async (request, reply) => sendFile(request.params.file, reply));
}

function digestOf(text: string): string {
  try {
    return parseDigest(text).value;
  } catch (err) {
    throw new TrackerError('DIGEST_INVALID', err instanceof Error ? err.message : String(err), { cause: err });
  }
}
