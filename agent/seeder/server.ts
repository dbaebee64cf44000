/**
 * The seeder's HTTP API (fastify). build is separate from listen so tests can inject requests.
 *
 *   POST /v1/metainfo {digest, repository, registry?}   tracker → seeder: Metainfo JSON (produced on demand)
 *   POST /v1/notifications[?registry=HOST]              registry → seeder: push events; 200 at once, preheat after
 *   GET  /v1/blobs                                      what the seeder has produced and holds
 *   POST /v1/preheat, GET /v1/preheat/:id               preheat an image on request (preheat-jobs.ts)
 *   GET  /healthz, /readyz, /metrics
 *
 * Errors: {"errors": [{code, message, detail}]}: REQUEST_INVALID 400, UNAUTHORIZED 401, DIGEST_INVALID 400,
 * NAME_INVALID 400, REGISTRY_NOT_ALLOWED 404, BLOB_UNKNOWN / NAME_UNKNOWN 404 (not at the origin), DENIED 403,
 * UPSTREAM_* 502/504, DIGEST_MISMATCH 502, STORE_FULL 507, ABORTED 503 (shutting down), INTERNAL 500.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { parseDigest } from '../../shared/digest.ts';
import { LayerswarmError, toLayerswarmError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { MetainfoStore } from './metainfo-store.ts';
import type { SeederMetrics } from './metrics.ts';
import { NOTIFICATION_MEDIA_TYPE, parseNotification, RequestInvalidError } from './notifications.ts';
import type { Preheater } from './preheater.ts';
import { registerPreheatRoutes, type PreheatApiOptions } from './preheat-jobs.ts';
import type { Producer } from './producer.ts';

export interface SeederServerContext {
  readonly producer: Producer;
  /** Undefined when preheat is off: notifications are accepted and ignored. */
  readonly preheater: Preheater | undefined;
  readonly metainfo: MetainfoStore;
  readonly store: BlobStore;
  readonly metrics: SeederMetrics;
  readonly logger: Logger;
  readonly notificationToken: string | undefined;
  readonly ready: () => boolean;
  /** Extra fields of /readyz (tracker registration state). */
  readonly status: () => Record<string, unknown>;
  /** POST /v1/preheat, GET /v1/preheat/:id; absent: not served. */
  readonly preheatApi?: PreheatApiOptions;
}

const REGISTRY_PATTERN = '^[a-zA-Z0-9.-]{1,253}(:[0-9]{1,5})?$';

const metainfoSchema = {
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['digest', 'repository'],
    properties: {
      digest: { type: 'string', maxLength: 200 },
      repository: { type: 'string', minLength: 1, maxLength: 255 },
      registry: { type: 'string', pattern: REGISTRY_PATTERN },
    },
  },
} as const;

const notificationsSchema = {
  querystring: { type: 'object', additionalProperties: false, properties: { registry: { type: 'string', pattern: REGISTRY_PATTERN } } },
} as const;

export function buildSeederServer(ctx: SeederServerContext): FastifyInstance {
  const app = Fastify({
    loggerInstance: ctx.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 4096,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
  });
  app.addContentTypeParser(NOTIFICATION_MEDIA_TYPE, { parseAs: 'string', bodyLimit: 1 << 20 }, (_request, body, done) => {
    try {
      done(null, JSON.parse(body as string) as unknown);
    } catch {
      done(new RequestInvalidError('notification body is not JSON'), undefined);
    }
  });
  app.setErrorHandler((err, request, reply) => replyError(err, request, reply));
  app.setNotFoundHandler((request, reply) =>
    replyError(new LayerswarmError('UNSUPPORTED', `no route ${request.method} ${JSON.stringify(request.url.slice(0, 200))}`, { status: 404 }), request, reply));
  app.addHook('onResponse', async (request, reply) => {
    ctx.metrics.httpRequests.labels(request.routeOptions.url ?? 'other', request.method, String(reply.statusCode)).inc();
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request completed');
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => (ctx.ready() ? { status: 'ready', ...ctx.status() } : reply.code(503).send({ status: 'not ready', ...ctx.status() })));
  app.get('/metrics', async (_request, reply) => {
    reply.type(ctx.metrics.registry.contentType);
    return await ctx.metrics.registry.metrics();
  });

  app.post<{ Body: { digest: string; repository: string; registry?: string } }>('/v1/metainfo', { schema: metainfoSchema }, async (request, reply) => {
    const controller = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) controller.abort(new LayerswarmError('ABORTED', 'caller went away'));
    });
    const { digest, repository, registry } = request.body;
    return await ctx.producer.produce({ digest, repository, registry }, controller.signal);
  });

  app.post<{ Querystring: { registry?: string } }>('/v1/notifications', { schema: notificationsSchema }, async (request) => {
    checkToken(ctx.notificationToken, request);
    let parsed;
    try {
      parsed = parseNotification(request.body);
    } catch (err) {
      ctx.metrics.notifications.labels('rejected').inc();
      throw err;
    }
    const registry = request.query.registry;
    ctx.metrics.notifications.labels('ignored').inc(parsed.ignored + (ctx.preheater ? 0 : parsed.targets.length));
    let accepted = 0;
    if (ctx.preheater) {
      for (const target of parsed.targets) {
        ctx.metrics.notifications.labels('preheat').inc();
        if (ctx.preheater.enqueue({ ...target, registry })) accepted++;
      }
    }
    if (parsed.targets.length > 0) request.log.info({ targets: parsed.targets.length, queued: accepted, ignored: parsed.ignored }, 'push notification');
    return { accepted, ignored: parsed.ignored };
  });

  app.get('/v1/blobs', async () => {
    const blobs = await Promise.all(ctx.metainfo.all().map(async (r) => ({
      digest: r.metainfo.digest,
      size: r.metainfo.size,
      pieceLength: r.metainfo.pieceLength,
      pieces: r.metainfo.pieceHashes.length,
      registry: r.registry,
      repository: r.repository,
      producedAt: new Date(r.producedAt).toISOString(),
      stored: (await ctx.store.stat(parseDigest(r.metainfo.digest))) !== undefined,
    })));
    blobs.sort((a, b) => (a.producedAt < b.producedAt ? 1 : -1));
    return { blobs, count: blobs.length, inFlight: ctx.producer.inflight, preheatPending: ctx.preheater?.pending ?? 0 };
  });
  if (ctx.preheatApi) registerPreheatRoutes(app, ctx.preheatApi);
  return app;
}

function checkToken(token: string | undefined, request: FastifyRequest): void {
  if (token === undefined) return;
  const given = request.headers.authorization ?? '';
  const hash = (s: string): Buffer => createHash('sha256').update(s).digest();
  if (!timingSafeEqual(hash(given), hash(`Bearer ${token}`))) throw new LayerswarmError('UNAUTHORIZED', 'notification token missing or wrong');
}

function wireCode(err: LayerswarmError): string {
  return err instanceof RequestInvalidError ? err.wireCode : err.code;
}

function fromFastify(err: FastifyError): LayerswarmError | undefined {
  if (err.validation) {
    const detail = err.validation.map((v) => ({ path: `${err.validationContext ?? ''}${v.instancePath}`, message: v.message ?? 'invalid' }));
    return new RequestInvalidError(`invalid request: ${err.message}`, detail);
  }
  if (err.code?.startsWith('FST_') && err.statusCode !== undefined && err.statusCode < 500) {
    const e = new RequestInvalidError(err.message);
    return err.statusCode === 400 ? e : new LayerswarmError('UNSUPPORTED', err.message, { status: err.statusCode, cause: err });
  }
  return undefined;
}

export function replyError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const fst = err instanceof Error && 'code' in err && !(err instanceof LayerswarmError) ? fromFastify(err as FastifyError) : undefined;
  const e = fst ?? toLayerswarmError(err);
  const status = e.code === 'ABORTED' ? 503 : e.status;
  request.log[status >= 500 ? 'warn' : 'debug']({ err: e, code: e.code, status, url: request.url }, e.message);
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy(e);
    return reply;
  }
  reply.code(status).headers(e.headers).type('application/json; charset=utf-8');
  return reply.send({ errors: [{ code: wireCode(e), message: e.message, detail: e.detail ?? null }] });
}
