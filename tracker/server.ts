/**
 * The tracker's HTTP API (fastify): announce, metainfo, seeder registration, swarm monitoring, /healthz, /readyz,
 * /metrics. build is separate from listen so tests can inject requests; the clock lives in the PeerStore and
 * MetainfoRegistry it is given. Every error is {errors: [{code, message, detail}]} with a TRACKER_ERROR_CODES code.
 */
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { parseDigest, parseName } from '../shared/digest.ts';
import { LayerswarmError, toLayerswarmError } from '../shared/errors.ts';
import type { Logger } from '../shared/logging.ts';
import { pieceCount } from '../shared/swarm/metainfo.ts';
import { TrackerError, trackerCodeOf } from './errors.ts';
import type { HandoutPolicy, Peer, Rng } from './handout-policy.ts';
import type { MetainfoRegistry } from './metainfo-registry.ts';
import type { TrackerMetrics } from './metrics.ts';
import { registerMonitorRoutes } from './monitor-routes.ts';
import type { EventLog } from './event-log.ts';
import type { OffloadSeries } from './offload-series.ts';
import type { PeerStore } from './peer-store.ts';
import {
  announceSchema, getMetainfoSchema, putMetainfoSchema, seederSchema,
  type AnnounceBody, type MetainfoQuery, type SeederBody,
} from './schemas.ts';
import type { SwarmLabels } from './swarm-labels.ts';

export interface TrackerContext {
  readonly store: PeerStore;
  readonly metainfo: MetainfoRegistry;
  readonly policy: HandoutPolicy;
  readonly metrics: TrackerMetrics;
  readonly logger: Logger;
  readonly rng: Rng;
  /** Monitoring state (dashboard, `layerswarm status`). */
  readonly labels: SwarmLabels;
  readonly events: EventLog;
  readonly offload: OffloadSeries;
  readonly now: () => number;
  readonly settings: {
    readonly handoutSize: number;
    readonly announceIntervalMs: number;
    readonly seederTtlMs: number;
    /** When set, seeder-only endpoints need "Authorization: Bearer <token>". */
    readonly seederToken?: string | undefined;
  };
  readonly ready: () => boolean;
}

export interface AnnounceResponse {
  peers: Array<{ peerId: string; address: string; port: number; complete: boolean; seeder?: true }>;
  /** Seconds until the next announce. */
  interval: number;
}

const KiB = 1024;

export function buildTrackerServer(ctx: TrackerContext): FastifyInstance {
  const app = Fastify({
    loggerInstance: ctx.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 4 * KiB,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  });
  app.setErrorHandler((err, request, reply) => {
    // Handler errors are counted by the handler; these are schema and body-parsing rejections.
    if (request.routeOptions.url === '/v1/announce' && !(err instanceof LayerswarmError)) ctx.metrics.announces.labels('REQUEST_INVALID').inc();
    return replyError(err, request, reply);
  });
  app.setNotFoundHandler((request, reply) =>
    replyError(new TrackerError('NOT_FOUND', `no route ${request.method} ${JSON.stringify(request.url.slice(0, 200))}`), request, reply));
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'other';
    ctx.metrics.httpRequests.labels(route, request.method, String(reply.statusCode)).inc();
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request completed');
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => (ctx.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'not ready' })));
  app.get('/metrics', async (_request, reply) => {
    reply.type(ctx.metrics.registry.contentType);
    return await ctx.metrics.registry.metrics();
  });

  app.post<{ Body: AnnounceBody }>('/v1/announce', { schema: announceSchema }, async (request): Promise<AnnounceResponse> => {
    try {
      const started = performance.now();
      const response = announce(ctx, request.body);
      ctx.metrics.handoutDuration.observe((performance.now() - started) / 1000);
      ctx.metrics.announces.labels('ok').inc();
      ctx.metrics.peersHandedOut.inc(response.peers.length);
      return response;
    } catch (err) {
      ctx.metrics.announces.labels(trackerCodeOf(toLayerswarmError(err))).inc();
      throw err;
    }
  });

  app.get<{ Params: { digest: string }; Querystring: MetainfoQuery }>('/v1/metainfo/:digest', { schema: getMetainfoSchema }, async (request, reply) => {
    const digest = digestOf(request.params.digest);
    const known = ctx.metainfo.peek(digest);
    const { repository, registry } = request.query;
    if (repository !== undefined) rememberLabel(ctx, digest, repository, registry);
    if (known) return await ctx.metainfo.get({ digest, repository: '' });
    if (repository === undefined) {
      ctx.metrics.metainfoRequests.labels('METAINFO_UNKNOWN').inc();
      throw new TrackerError('METAINFO_UNKNOWN', `metainfo for ${digest} is unknown; pass ?repository= (and &registry=) so a seeder can produce it`);
    }
    const controller = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) controller.abort(new TrackerError('ABORTED', 'client went away'));
    });
    return await ctx.metainfo.get({ digest, repository: parseName(repository), registry }, controller.signal);
  });

  app.put('/v1/metainfo', { schema: putMetainfoSchema, bodyLimit: 8 * 2 ** 20 }, async (request, reply) => {
    checkSeederToken(ctx, request);
    const { meta, created } = ctx.metainfo.put(request.body);
    request.log.info({ digest: meta.digest, size: meta.size, pieces: meta.pieceHashes.length, created }, 'metainfo published');
    return reply.code(created ? 201 : 200).send({ digest: meta.digest, created });
  });

  app.post<{ Body: SeederBody }>('/v1/seeders', { schema: seederSchema }, async (request) => {
    try {
      checkSeederToken(ctx, request);
      const url = parseSeederUrl(request.body.url);
      const seeder = ctx.metainfo.registerSeeder(request.body.id, url);
      ctx.metrics.seederRegistrations.labels('ok').inc();
      return { id: seeder.id, url: seeder.url, ttl: Math.floor(ctx.settings.seederTtlMs / 1000) };
    } catch (err) {
      ctx.metrics.seederRegistrations.labels(trackerCodeOf(toLayerswarmError(err))).inc();
      throw err;
    }
  });

  registerMonitorRoutes(app, ctx);
  return app;
}

/** Validate an announce beyond its schema, record it, and choose the peers to hand out. */
export function announce(ctx: TrackerContext, body: AnnounceBody): AnnounceResponse {
  const digest = digestOf(body.digest);
  const family = isIP(body.address);
  if (family === 0) throw new TrackerError('REQUEST_INVALID', `address ${JSON.stringify(body.address)} is not an IP address`);
  if (body.address === '0.0.0.0' || body.address === '::' || /^(22[4-9]|23\d)\./.test(body.address)) {
    throw new TrackerError('REQUEST_INVALID', `address ${body.address} cannot be dialled by peers`);
  }
  const meta = ctx.metainfo.peek(digest);
  if (meta && body.pieces > pieceCount(meta.size, meta.pieceLength)) {
    throw new TrackerError('REQUEST_INVALID', `pieces ${body.pieces} exceeds the blob's ${pieceCount(meta.size, meta.pieceLength)} pieces`);
  }
  if (body.stopped === true) {
    // Only the announcing endpoint may take itself out (the same peer id from another address is ignored).
    const known = ctx.store.peers(digest).find((p) => p.peerId === body.peerId);
    if (known !== undefined && known.address === body.address && known.port === body.port) ctx.store.remove(digest, body.peerId);
    return { peers: [], interval: Math.max(1, Math.round(ctx.settings.announceIntervalMs / 1000)) };
  }
  const caller: Peer = {
    peerId: body.peerId,
    address: body.address,
    port: body.port,
    complete: body.complete,
    seeder: body.seeder ?? false,
    pieces: body.pieces,
    zone: body.zone,
  };
  const { peers, recorded } = ctx.store.announce(digest, caller, { uploaded: body.uploaded, downloaded: body.downloaded });
  if (!recorded) ctx.metrics.announcesUnrecorded.inc();
  const chosen = ctx.policy.choose(caller, peers, ctx.settings.handoutSize, ctx.rng);
  return {
    peers: chosen.map((p) => ({ peerId: p.peerId, address: p.address, port: p.port, complete: p.complete || p.seeder, ...(p.seeder ? { seeder: true as const } : {}) })),
    interval: Math.max(1, Math.round(ctx.settings.announceIntervalMs / 1000)),
  };
}

/** Remember which repository a digest was asked for under (the dashboard's label); an invalid name is not kept. */
function rememberLabel(ctx: TrackerContext, digest: string, repository: string, registry: string | undefined): void {
  try {
    ctx.labels.remember(digest, parseName(repository), registry);
  } catch {
    // The request itself reports an invalid name when it needs one.
  }
}

/** A validated sha256 digest; anything else (other algorithms included) is a 400 DIGEST_INVALID. */
function digestOf(text: string): string {
  try {
    return parseDigest(text).value;
  } catch (err) {
    throw new TrackerError('DIGEST_INVALID', err instanceof Error ? err.message : String(err), { cause: err });
  }
}

function checkSeederToken(ctx: TrackerContext, request: FastifyRequest): void {
  const token = ctx.settings.seederToken;
  if (token === undefined) return;
  const given = Buffer.from(request.headers.authorization ?? '');
  const wanted = Buffer.from(`Bearer ${token}`);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) {
    throw new TrackerError('UNAUTHORIZED', 'this endpoint needs the seeder token (Authorization: Bearer ...)', { headers: { 'www-authenticate': 'Bearer' } });
  }
}

function parseSeederUrl(text: string): string {
  try {
    const url = new URL(text);
    if ((url.protocol === 'http:' || url.protocol === 'https:') && !url.search && !url.hash && !url.username) return url.toString().replace(/\/+$/, '');
  } catch {
    // Reported below.
  }
  throw new TrackerError('REQUEST_INVALID', `seeder url ${JSON.stringify(text.slice(0, 200))} is not an http(s) base URL`);
}

function fromFastify(err: FastifyError): TrackerError | undefined {
  if (err.validation) {
    const detail = err.validation.map((v) => ({ path: `${err.validationContext ?? ''}${v.instancePath}`, message: v.message ?? 'invalid' }));
    return new TrackerError('REQUEST_INVALID', `invalid request: ${err.message}`, { detail, cause: err });
  }
  if (!err.code?.startsWith('FST_') || !err.statusCode) return undefined;
  const code = err.statusCode === 404 ? 'NOT_FOUND' : err.statusCode === 503 ? 'SHUTTING_DOWN' : err.statusCode < 500 ? 'REQUEST_INVALID' : 'INTERNAL';
  return new TrackerError(code, err.message, { status: err.statusCode, cause: err });
}

export function replyError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const fst = err instanceof Error && 'code' in err ? fromFastify(err as FastifyError) : undefined;
  const e = fst ?? toLayerswarmError(err);
  const code = trackerCodeOf(e);
  // Rejections are routine under load (full swarms, bad peers): debug; failures of the tracker or a seeder: warn.
  const level = e.status >= 500 && code !== 'TRACKER_FULL' && code !== 'SHUTTING_DOWN' ? 'warn' : 'debug';
  request.log[level]({ err: e, code, status: e.status, url: request.url }, e.message);
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy(e);
    return reply;
  }
  reply.code(e.status === 499 ? 500 : e.status).headers(e.headers).type('application/json; charset=utf-8');
  return reply.send({ errors: [{ code, message: e.message, detail: e.detail ?? null }] });
}
