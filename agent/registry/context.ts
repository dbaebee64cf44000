/** What the registry endpoint's handlers need: narrow interfaces, wired by agent/agent.ts. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../../shared/logging.ts';
import type { UpstreamResolver } from '../upstream-resolver.ts';
import type { Identity, UpstreamClient, UpstreamRegistry } from '../upstream/types.ts';
import type { BlobFetcher } from '../blobs/blob-fetcher.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { AccessChecker } from '../access/access-checker.ts';
import type { ManifestCache } from '../manifests/manifest-cache.ts';
import type { AgentMetrics } from '../metrics.ts';
import type { Prefetcher } from '../blobs/prefetcher.ts';
import type { OciPath } from './oci-path.ts';

export interface RegistryContext {
  resolver: UpstreamResolver;
  upstream: UpstreamClient;
  fetcher: BlobFetcher;
  store: BlobStore;
  access: AccessChecker;
  manifests: ManifestCache;
  /** Starts downloads of an image manifest's blobs when it is served; absent when prefetch is off. */
  prefetcher: Prefetcher | undefined;
  metrics: AgentMetrics;
  logger: Logger;
  now: () => number;
  identityOf: (authorization: string | undefined) => Identity;
  settings: {
    manifestMaxBytes: number;
    staleIfError: boolean;
    staleMaxAge: number;
    /** Timeout for one manifest request or access check at the origin. */
    requestTimeout: number;
  };
  /** false until init finished and while shutting down. */
  ready: () => boolean;
}

/** One parsed registry API request. */
export interface PullRequest {
  path: OciPath;
  registry: UpstreamRegistry;
  identity: Identity;
  method: 'GET' | 'HEAD';
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  request: FastifyRequest;
  reply: FastifyReply;
}
