/**
 * The agent's preload API, on the registry endpoint's fastify next to /v2/:
 *
 *   POST /v1/preload {image, platform?, registry?}  → 202 {id, ...job}: the image's manifests are resolved through the
 *                                                    agent's own manifest route (cached and access-recorded as for a
 *                                                    client pull), then every config and layer is brought into the
 *                                                    store through the BlobFetcher (the swarm when --tracker is set)
 *   GET  /v1/preload/:id                            → the job: per blob state (queued, fetching, done, failed) and bytes
 *
 * Only loopback callers unless --preload-token is set (then "Authorization: Bearer TOKEN" from anywhere). Errors are
 * OCI error JSON: MANIFEST_UNKNOWN 404 (unknown image or platform), NAME_UNKNOWN 404 (registry not configured),
 * UNAUTHORIZED/DENIED (the origin refused the agent, or the caller), UNAVAILABLE 502/504 (origin unreachable),
 * TOOMANYREQUESTS 429 (job table full).
 */
import type { FastifyInstance } from 'fastify';
import { raceAbort, withTimeout } from '../../shared/abort.ts';
import { parseDigest } from '../../shared/digest.ts';
import { LayerswarmError, type ErrorCode } from '../../shared/errors.ts';
import type { RegistryContext } from '../registry/context.ts';
import type { Identity } from '../upstream/types.ts';
import { checkCaller } from './guard.ts';
import { formatImageReference, parseImageReference } from './image-ref.ts';
import { JobTable } from './jobs.ts';
import { ACCEPT_MANIFESTS, resolveImage, type ManifestReader } from './resolve-image.ts';

export interface PreloadSettings {
  /** Bearer token callers must send; unset → loopback callers only. */
  readonly token: string | undefined;
  /** Blob downloads of preload jobs at once. */
  readonly concurrency: number;
  readonly maxJobs?: number;
  readonly ttlMs?: number;
  readonly jobTimeoutMs?: number;
}

export const PRELOAD_MAX_JOBS = 100;
export const PRELOAD_JOB_TTL_MS = 3_600_000;
export const PRELOAD_JOB_TIMEOUT_MS = 3_600_000;

export const preloadBodySchema = {
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['image'],
    properties: {
      image: { type: 'string', minLength: 1, maxLength: 600 },
      platform: { type: 'string', pattern: '^[a-z0-9_.-]{1,64}/[a-z0-9_.-]{1,64}(/[a-zA-Z0-9_.-]{1,64})?$' },
      registry: { type: 'string', pattern: '^[a-zA-Z0-9.-]{1,253}(:[0-9]{1,5})?$' },
    },
  },
} as const;

const OCI_TO_CODE: Record<string, ErrorCode> = {
  MANIFEST_UNKNOWN: 'MANIFEST_UNKNOWN', NAME_UNKNOWN: 'NAME_UNKNOWN', NAME_INVALID: 'NAME_INVALID', UNAUTHORIZED: 'UNAUTHORIZED',
  DENIED: 'DENIED', TOOMANYREQUESTS: 'TOOMANYREQUESTS', DIGEST_INVALID: 'DIGEST_MISMATCH', SIZE_INVALID: 'MANIFEST_TOO_LARGE',
  MANIFEST_INVALID: 'MANIFEST_INVALID',
};

/** An OCI error answer of the agent's own route, as the LayerswarmError it came from (as near as the wire allows). */
function errorFromReply(status: number, body: string): LayerswarmError {
  let oci = '';
  let message = `manifest request answered ${status}`;
  try {
    const first = (JSON.parse(body) as { errors?: Array<{ code?: string; message?: string }> }).errors?.[0];
    oci = first?.code ?? '';
    message = first?.message ?? message;
  } catch {
    // keep the status text
  }
  const code: ErrorCode = OCI_TO_CODE[oci] ?? (oci === 'UNAVAILABLE' ? (status === 504 ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_UNAVAILABLE') : 'UPSTREAM_ERROR');
  return new LayerswarmError(code, message, { status });
}

export function registerPreloadRoutes(app: FastifyInstance, ctx: RegistryContext, settings: PreloadSettings): void {
  const jobs = new JobTable({
    kind: 'preload',
    maxJobs: settings.maxJobs ?? PRELOAD_MAX_JOBS,
    ttlMs: settings.ttlMs ?? PRELOAD_JOB_TTL_MS,
    jobTimeoutMs: settings.jobTimeoutMs ?? PRELOAD_JOB_TIMEOUT_MS,
    concurrency: settings.concurrency,
    logger: ctx.logger.child({ component: 'preload' }),
    now: ctx.now,
  });
  app.addHook('onClose', async () => jobs.close());
  // The agent acts as itself (its configured credentials, or anonymous), as for a client that sends none.
  const identity: Identity = { kind: 'agent' };

  app.post<{ Body: { image: string; platform?: string; registry?: string } }>('/v1/preload', { schema: preloadBodySchema }, async (request, reply) => {
    checkCaller('preload', settings.token, request.headers.authorization, request.socket.remoteAddress, true);
    const ref = parseImageReference(request.body.image, request.body.registry);
    const registry = ctx.resolver.resolve(ref.registry);
    const ns = ref.registry === undefined ? '' : `?ns=${encodeURIComponent(ref.registry)}`;
    const read: ManifestReader = async (reference, signal) => {
      // Through the agent's own manifest route: verified, cached by digest, tag recorded, access recorded, prefetch.
      const res = await raceAbort(app.inject({ method: 'GET', url: `/v2/${ref.repository}/manifests/${reference}${ns}`, headers: { accept: ACCEPT_MANIFESTS, 'x-request-id': `${request.id}-m` } }), signal, 'preload manifest');
      if (res.statusCode !== 200) throw errorFromReply(res.statusCode, res.body);
      const digest = res.headers['docker-content-digest'];
      return { body: res.rawPayload, contentType: String(res.headers['content-type'] ?? ''), digest: typeof digest === 'string' ? digest : undefined };
    };
    const resolved = await resolveImage(read, ref, request.body.platform, withTimeout(undefined, ctx.settings.requestTimeout * 4));
    const view = jobs.start(formatImageReference(ref), registry.host, resolved, async (item, signal) => {
      const digest = parseDigest(item.digest);
      const outcome = await ctx.fetcher.ensure({ registry, name: ref.repository, digest, identity }, signal);
      if (outcome.owner && outcome.source === 'origin') ctx.access.record(registry, ref.repository, identity, digest.value);
      return outcome.source === 'cache' ? 'cached' : outcome.source;
    });
    request.log.info({ job: view.id, image: view.image, digest: view.digest, blobs: view.items.length }, 'preload started');
    return reply.code(202).send(view);
  });

  app.get<{ Params: { id: string } }>('/v1/preload/:id', async (request) => {
    checkCaller('preload', settings.token, request.headers.authorization, request.socket.remoteAddress, true);
    const view = jobs.get(request.params.id);
    if (!view) throw new LayerswarmError('UNSUPPORTED', `no preload job ${JSON.stringify(request.params.id.slice(0, 64))} (unknown, or expired ${Math.round((settings.ttlMs ?? PRELOAD_JOB_TTL_MS) / 1000)} s after it finished)`, { status: 404 });
    return view;
  });
}
