/**
 * BlobSource that reads blobs from the upstream (origin) registry through the UpstreamClient. With a download bucket
 * (the node's downloadLimit, agent/bandwidth.ts) every body chunk is charged to it as it flows.
 */
import { Transform, pipeline, type Readable } from 'node:stream';
import type { TokenBucket } from '../../shared/wire/rate-limit.ts';
import { throttleBody } from '../bandwidth.ts';
import type { BlobRequest, BlobSource, BlobStreamResult } from './blob-source.ts';

/** A bounded range from the origin: `partial` when it answered 206 with exactly the bytes asked for, else the whole blob. */
export interface OriginRangeResult extends BlobStreamResult {
  readonly partial: boolean;
}

export type OriginRangeOpener = (request: BlobRequest, start: number, end: number, signal: AbortSignal) => Promise<OriginRangeResult>;
import type { UpstreamClient } from '../upstream/types.ts';

export class OriginBlobSource implements BlobSource {
  readonly name = 'origin';
  readonly #upstream: UpstreamClient;
  readonly #download: TokenBucket | undefined;
  readonly #onBytes: ((bytes: number) => void) | undefined;

  /** `onBytes`: body bytes read from the origin, per chunk (metrics; must not throw). */
  constructor(upstream: UpstreamClient, options: { download?: TokenBucket | undefined; onBytes?: (bytes: number) => void } = {}) {
    this.#upstream = upstream;
    this.#download = options.download;
    this.#onBytes = options.onBytes;
  }

  #counted(body: Readable): Readable {
    const onBytes = this.#onBytes;
    if (onBytes === undefined) return body;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        onBytes(chunk.byteLength);
        callback(null, chunk);
      },
    });
    return pipeline(body, counter, () => undefined);
  }

  async open(request: BlobRequest, offset: number, signal: AbortSignal): Promise<BlobStreamResult> {
    const result = await this.#upstream.blob(request.registry, request.name, request.digest.value, {
      identity: request.identity,
      offset,
      signal,
    });
    const body = this.#counted(throttleBody(result.body, this.#download, signal));
    return { body, ...(result.size !== undefined ? { size: result.size } : {}) };
  }

  /** Bytes start..end (inclusive) with a Range request; an origin that ignores Range gives the whole blob (partial false). */
  async openRange(request: BlobRequest, start: number, end: number, signal: AbortSignal): Promise<OriginRangeResult> {
    const result = await this.#upstream.blob(request.registry, request.name, request.digest.value, {
      identity: request.identity,
      offset: start,
      end,
      signal,
    });
    const body = this.#counted(throttleBody(result.body, this.#download, signal));
    return { body, partial: result.range !== undefined, ...(result.size !== undefined ? { size: result.size } : {}) };
  }
}
