/**
 * The registry endpoint (fastify): the pull side of the OCI distribution API as containerd, Docker, Podman and skopeo
 * use it, plus /healthz, /readyz and /metrics. build() is separate from listen() so tests can inject requests.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { isLayerswarmError, LayerswarmError } from '../../shared/errors.ts';
import { withTimeout } from '../../shared/abort.ts';
import type { RegistryContext, PullRequest } from './context.ts';
import { parseOciPath } from './oci-path.ts';
import { replyError } from './error-reply.ts';
import { handleBlob } from './blob-routes.ts';
import { handleManifest } from './manifest-routes.ts';
import { registerPreloadRoutes, type PreloadSettings } from '../preload/preload-routes.ts';

export interface RegistryServerOptions {
  /** POST /v1/preload, GET /v1/preload/:id (agent/preload/preload-routes.ts); absent: not served. */
  preload?: PreloadSettings;
}

export function buildRegistryServer(ctx: RegistryContext, options: RegistryServerOptions = {}): FastifyInstance {
  const app = Fastify({
    loggerInstance: ctx.logger as FastifyBaseLogger,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    // Requests are logged once, by the onResponse hook below, with route and timing.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    routerOptions: { maxParamLength: 1024 },
    bodyLimit: 1024,
    return503OnClosing: true,
    requestTimeout: 0,
  });
  app.setErrorHandler((err, request, reply) => replyError(err, request, reply));
  app.setNotFoundHandler((request, reply) => {
    const pushAttempt = request.url.startsWith('/v2/') && request.method !== 'GET' && request.method !== 'HEAD';
    const err = pushAttempt
      ? new LayerswarmError('UNSUPPORTED', `${request.method} is not supported: this mirror serves pulls only`)
      : new LayerswarmError('UNSUPPORTED', `unsupported path ${JSON.stringify(request.url.slice(0, 200))}`, { status: 404 });
    return replyError(err, request, reply);
  });
  // The request id of every log line of this request, echoed so a client-side failure can be found in the logs.
  app.addHook('onRequest', async (request, reply) => {
    reply.header('X-Request-Id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = routeLabel(request);
    ctx.metrics.httpRequests.labels(route, request.method, String(reply.statusCode)).inc();
    request.log.info(
      { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime), route },
      'request completed',
    );
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (!ctx.ready()) return reply.code(503).send({ status: 'not ready' });
    return { status: 'ready' };
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(ctx.metrics.registry.contentType);
    return await ctx.metrics.registry.metrics();
  });

  // GET /v2/ relays the origin's challenge when the agent cannot act for this client (no credentials of its own for
  // the registry, none from the client): skopeo, podman and docker only authenticate after a 401 here. An unreachable
  // origin still gets a 200: cached content may be served.
  const base = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    const q = request.url.indexOf('?');
    const ns = q >= 0 ? (new URLSearchParams(request.url.slice(q + 1)).get('ns') ?? undefined) : undefined;
    try {
      const registry = ctx.resolver.resolve(ns);
      await ctx.upstream.ping(registry, { identity: ctx.identityOf(request.headers.authorization), signal: withTimeout(undefined, ctx.settings.requestTimeout) });
    } catch (err) {
      if (isLayerswarmError(err, 'UNAUTHORIZED') || isLayerswarmError(err, 'DENIED')) return replyError(err, request, reply);
      request.log.debug({ err }, 'origin ping failed; answering /v2/ from the mirror');
    }
    return reply.type('application/json').send('{}');
  };
  app.route({ method: ['GET', 'HEAD'], url: '/v2/', handler: base });
  app.route({ method: ['GET', 'HEAD'], url: '/v2', handler: base });
  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/*',
    handler: async (request, reply) => {
      // The raw path, not new URL(): URL parsing would resolve "../" segments before they can be rejected.
      const q = request.url.indexOf('?');
      const path = parseOciPath(q >= 0 ? request.url.slice(0, q) : request.url);
      const ns = q >= 0 ? (new URLSearchParams(request.url.slice(q + 1)).get('ns') ?? undefined) : undefined;
      const controller = new AbortController();
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) controller.abort(new LayerswarmError('ABORTED', 'client went away'));
      });
      reply.header('Docker-Distribution-API-Version', 'registry/2.0');
      const pull: PullRequest = {
        path,
        registry: ctx.resolver.resolve(ns),
        identity: ctx.identityOf(request.headers.authorization),
        method: request.method === 'HEAD' ? 'HEAD' : 'GET',
        signal: controller.signal,
        request,
        reply,
      };
      if (path.kind === 'blobs') await handleBlob(ctx, pull);
      else await handleManifest(ctx, pull);
      return reply;
    },
  });
  if (options.preload) registerPreloadRoutes(app, ctx, options.preload);
  return app;
}

function routeLabel(request: FastifyRequest): string {
  const url = request.url;
  if (url.startsWith('/v2/')) {
    if (url.includes('/blobs/')) return 'blob';
    if (url.includes('/manifests/')) return 'manifest';
    return url.length <= 4 ? 'base' : 'other';
  }
  if (url.startsWith('/v1/preload')) return 'preload';
  return ['/healthz', '/readyz', '/metrics', '/v2'].includes(url) ? url : 'other';
}
