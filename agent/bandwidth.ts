/**
 * Node-wide bandwidth limits of one agent or seeder (options `uploadLimit` / `downloadLimit`, bytes per second, 0 =
 * unlimited). Each startAgent / startSeeder call makes its own pair of TokenBuckets (shared/wire/rate-limit.ts), so
 * many agents in one process (tests, benchmarks) each have their own limits; nothing here is module-global.
 *
 * - upload: every frame sent on the piece protocol (LimitedTransport around the engine's transport).
 * - download: every frame received on the piece protocol, and every blob body chunk read from an origin
 *   (throttleBody, used by OriginBlobSource), so an agent without a tracker is limited by the same bucket.
 *
 * Burst: one tenth of a second of the rate, between 16 KiB and 256 KiB (BANDWIDTH_BURST_MAX). A small burst keeps
 * the limit tight over short windows; larger takes (a 4 MiB piece) are granted in burst-sized chunks by the bucket.
 */
import { Transform, pipeline, type Readable } from 'node:stream';
import { LimitedTransport, type BandwidthLimits } from '../shared/wire/limited-transport.ts';
import { TokenBucket, type Sleep } from '../shared/wire/rate-limit.ts';
import type { Transport } from '../shared/wire/transport.ts';

export const BANDWIDTH_BURST_MIN = 16 * 1024;
export const BANDWIDTH_BURST_MAX = 256 * 1024;

/** The bucket clock (tests inject a fake one); default real time. */
export interface BandwidthClock {
  readonly now: () => number;
  readonly sleep: Sleep;
}

export interface NodeBandwidth {
  /** Present when uploadLimit > 0. */
  readonly upload: TokenBucket | undefined;
  /** Present when downloadLimit > 0. */
  readonly download: TokenBucket | undefined;
}

/** The burst of a bucket limited to `rate` bytes/s. */
export function bandwidthBurst(rate: number): number {
  return Math.min(BANDWIDTH_BURST_MAX, Math.max(BANDWIDTH_BURST_MIN, Math.floor(rate / 10)));
}

function bucket(rate: number, clock: BandwidthClock | undefined): TokenBucket | undefined {
  if (!(rate > 0) || rate === Infinity) return undefined;
  return new TokenBucket({ rate, burst: bandwidthBurst(rate), ...(clock ? { now: clock.now, sleep: clock.sleep } : {}) });
}

/** One upload and one download bucket for a node (either absent when its limit is 0). */
export function createNodeBandwidth(limits: { uploadLimit: number; downloadLimit: number }, clock?: BandwidthClock): NodeBandwidth {
  return { upload: bucket(limits.uploadLimit, clock), download: bucket(limits.downloadLimit, clock) };
}

/** The piece-protocol transport of a node: `inner` itself when unlimited, else wrapped in a LimitedTransport. */
export function limitTransport(inner: Transport, bandwidth: NodeBandwidth | undefined): Transport {
  if (bandwidth === undefined || (bandwidth.upload === undefined && bandwidth.download === undefined)) return inner;
  const limits: BandwidthLimits = {
    ...(bandwidth.upload ? { upload: bandwidth.upload } : {}),
    ...(bandwidth.download ? { download: bandwidth.download } : {}),
  };
  return new LimitedTransport(inner, limits);
}

/**
 * `body` read no faster than `bucket` allows: each chunk is charged before it is passed on (backpressure holds the
 * origin connection meanwhile). Destroying the result (or aborting `signal`) cancels a waiting charge and destroys
 * `body`; an error of `body` is the result's error. No bucket (unlimited): `body` itself.
 */
export function throttleBody(body: Readable, bucket: TokenBucket | undefined, signal: AbortSignal): Readable {
  if (bucket === undefined || bucket.unlimited) return body;
  const stop = new AbortController();
  const charge = AbortSignal.any([signal, stop.signal]);
  const throttled = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bucket.take(chunk.byteLength, charge).then(
        () => callback(null, chunk),
        (err: unknown) => callback(err as Error),
      );
    },
    destroy(err, callback) {
      stop.abort();
      callback(err);
    },
  });
  return pipeline(body, throttled, () => undefined);
}
