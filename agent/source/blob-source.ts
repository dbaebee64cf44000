/**
 * Where blob bytes come from. The registry endpoint never knows: it asks the BlobFetcher, which asks a BlobSource and
 * verifies everything the source yields before anything is served. Implementations: OriginBlobSource (the upstream
 * registry) and SwarmBlobSource (swarm-source.ts: peers for large blobs, the origin as fallback).
 */
import type { Digest } from '../../shared/digest.ts';
import type { BlobInfo } from '../store/blob-store.ts';
import type { Identity, UpstreamRegistry } from '../upstream/types.ts';

export interface BlobRequest {
  readonly registry: UpstreamRegistry;
  /** Repository the client asked under (blobs are repository-scoped at the origin). */
  readonly name: string;
  readonly digest: Digest;
  readonly identity: Identity;
}

export interface BlobStreamResult {
  /** Total blob size when the source knows it. */
  readonly size?: number;
  /** Bytes from `offset` to the end of the blob. Unverified: the caller hashes them. */
  readonly body: AsyncIterable<Uint8Array> & { destroy?(err?: Error): void };
}

export interface BlobSource {
  readonly name: string;
  /** Open the blob's bytes starting at `offset` (0 for the whole blob). */
  open(request: BlobRequest, offset: number, signal: AbortSignal): Promise<BlobStreamResult>;
  /**
   * Optional: called once per download when it ends, with the stored blob's info when it was committed to the store
   * (verified), without when it failed (the swarm source then seeds from the store, or drops its download file).
   */
  settled?(request: BlobRequest, info: BlobInfo | undefined): void;
}
