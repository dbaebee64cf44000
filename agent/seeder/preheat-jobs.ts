/**
 * The seeder's preheat API (`layerswarm preheat`):
 *
 *   POST /v1/preheat {image, registry?, platform?}  → 202 {id, ...job}: the image is resolved at its registry with the
 *                                                    seeder's upstream client and credentials (an index: every
 *                                                    platform, or `platform`), then every blob the swarm carries
 *                                                    (size > originDirectMaxBytes, the preheater's policy) is
 *                                                    produced (fetched once from the origin, verified, hashed,
 *                                                    seeded, metainfo published to the tracker); smaller blobs are
 *                                                    reported "skipped" (agents fetch them from the origin)
 *   GET  /v1/preheat/:id                            → the job: per blob state (queued, fetching, done, skipped, failed)
 *
 * With --preheat-token set, both need "Authorization: Bearer TOKEN"; otherwise they are open like /v1/notifications.
 * Unknown image or platform → 404 MANIFEST_UNKNOWN; registry not configured → 404 REGISTRY_NOT_ALLOWED; the origin
 * refused the seeder → 401/403; origin unreachable → 502/504 UPSTREAM_*; job table full of running jobs → 429.
 */
import type { FastifyInstance } from 'fastify';
import { withTimeout } from '../../shared/abort.ts';
import { parseDigest } from '../../shared/digest.ts';
import { LayerswarmError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { shouldSwarm, type PiecePolicy } from '../../shared/swarm/metainfo.ts';
import { checkCaller } from '../preload/guard.ts';
import { formatImageReference, parseImageReference } from '../preload/image-ref.ts';
import { JobTable } from '../preload/jobs.ts';
import { preloadBodySchema } from '../preload/preload-routes.ts';
import { resolveImage, type FetchedManifest } from '../preload/resolve-image.ts';
import type { Producer } from './producer.ts';

export const PREHEAT_MAX_JOBS = 100;
export const PREHEAT_JOB_TTL_MS = 3_600_000;
/** Resolving an image (every manifest of an index) at most. */
const RESOLVE_TIMEOUT_MS = 60_000;

export interface PreheatApiOptions {
  readonly producer: Producer;
  readonly policy: PiecePolicy;
  /** GET a manifest by tag or digest at a registry (undefined: the origin), Accept: every manifest type. */
  readonly readManifest: (registry: string | undefined, repository: string, reference: string, signal: AbortSignal) => Promise<FetchedManifest>;
  /** Canonical host of a registry (undefined: the origin); throws REGISTRY_NOT_ALLOWED. */
  readonly registryHost: (registry: string | undefined) => string;
  readonly token: string | undefined;
  /** Blob productions of preheat jobs at once. */
  readonly concurrency: number;
  /** Longest a job may run (the production timeout bounds each blob). */
  readonly jobTimeoutMs: number;
  readonly logger: Logger;
  readonly maxJobs?: number;
  readonly ttlMs?: number;
}

export function registerPreheatRoutes(app: FastifyInstance, o: PreheatApiOptions): void {
  const jobs = new JobTable({
    kind: 'preheat',
    maxJobs: o.maxJobs ?? PREHEAT_MAX_JOBS,
    ttlMs: o.ttlMs ?? PREHEAT_JOB_TTL_MS,
    jobTimeoutMs: o.jobTimeoutMs,
    concurrency: o.concurrency,
    logger: o.logger,
  });
  app.addHook('onClose', async () => jobs.close());

  app.post<{ Body: { image: string; platform?: string; registry?: string } }>('/v1/preheat', { schema: preloadBodySchema }, async (request, reply) => {
    checkCaller('preheat', o.token, request.headers.authorization, request.socket.remoteAddress, false);
    const ref = parseImageReference(request.body.image, request.body.registry);
    const host = o.registryHost(ref.registry);
    const resolved = await resolveImage(
      (reference, signal) => o.readManifest(ref.registry, ref.repository, reference, signal),
      ref, request.body.platform, withTimeout(undefined, RESOLVE_TIMEOUT_MS),
    );
    const view = jobs.start(formatImageReference(ref), host, resolved, async (item, signal) => {
      if (item.size !== undefined && !shouldSwarm(item.size, o.policy)) return 'skipped:small: agents fetch it from the origin';
      if (await o.producer.isReady(parseDigest(item.digest))) return 'seeded (already)';
      await o.producer.produce({ digest: item.digest, repository: ref.repository, registry: ref.registry }, signal);
      return 'seeded';
    });
    request.log.info({ job: view.id, image: view.image, digest: view.digest, blobs: view.items.length }, 'preheat started');
    return reply.code(202).send(view);
  });

  app.get<{ Params: { id: string } }>('/v1/preheat/:id', async (request) => {
    checkCaller('preheat', o.token, request.headers.authorization, request.socket.remoteAddress, false);
    const view = jobs.get(request.params.id);
    if (!view) throw new LayerswarmError('UNSUPPORTED', `no preheat job ${JSON.stringify(request.params.id.slice(0, 64))} (unknown, or expired after it finished)`, { status: 404 });
    return view;
  });
}
