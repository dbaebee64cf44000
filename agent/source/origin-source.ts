/** BlobSource that reads blobs from the upstream (origin) registry through the UpstreamClient. */
import type { BlobRequest, BlobSource, BlobStreamResult } from './blob-source.ts';
import type { UpstreamClient } from '../upstream/types.ts';

export class OriginBlobSource implements BlobSource {
  readonly name = 'origin';
  readonly #upstream: UpstreamClient;

  constructor(upstream: UpstreamClient) {
    this.#upstream = upstream;
  }

  async open(request: BlobRequest, offset: number, signal: AbortSignal): Promise<BlobStreamResult> {
    const result = await this.#upstream.blob(request.registry, request.name, request.digest.value, {
      identity: request.identity,
      offset,
      signal,
    });
    return { body: result.body, ...(result.size !== undefined ? { size: result.size } : {}) };
  }
}
