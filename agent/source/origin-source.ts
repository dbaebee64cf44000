/**
 * BlobSource that reads blobs from the upstream (origin) registry through the UpstreamClient. With a download bucket
 * (the node's downloadLimit, agent/bandwidth.ts) every body chunk is charged to it as it flows.
 */
import type { TokenBucket } from '../../shared/wire/rate-limit.ts';
import { throttleBody } from '../bandwidth.ts';
import type { BlobRequest, BlobSource, BlobStreamResult } from './blob-source.ts';
import type { UpstreamClient } from '../upstream/types.ts';

export class OriginBlobSource implements BlobSource {
  readonly name = 'origin';
  readonly #upstream: UpstreamClient;
  readonly #download: TokenBucket | undefined;

  constructor(upstream: UpstreamClient, options: { download?: TokenBucket | undefined } = {}) {
    this.#upstream = upstream;
    this.#download = options.download;
  }

  async open(request: BlobRequest, offset: number, signal: AbortSignal): Promise<BlobStreamResult> {
    const result = await this.#upstream.blob(request.registry, request.name, request.digest.value, {
      identity: request.identity,
      offset,
      signal,
    });
    const body = throttleBody(result.body, this.#download, signal);
    return { body, ...(result.size !== undefined ? { size: result.size } : {}) };
  }
}
