/**
 * Bandwidth limits for any Transport: `new LimitedTransport(inner, { upload, download })` charges every connection it
 * makes or accepts to the given TokenBuckets (rate-limit.ts). Sharing one bucket between many connections (the
 * normal case: one LimitedTransport per node) gives a node-wide limit.
 *
 * Upload: send() charges the message's whole frame (4-byte prefix + header + payload) to `upload` before handing it
 * to the inner connection, so send() stays pending while the limit holds it back (backpressure for the caller).
 * Sends on one connection are charged and handed over in call order, one take at a time, so a connection with many
 * queued pieces gets in line once per message and concurrent connections interleave fairly (the bucket is FIFO).
 *
 * Download: the Connection interface hands over whole decoded messages, so a received message is charged to
 * `download` when it comes out of the inner connection and delivered only after the charge is granted. While the
 * charge waits nothing more is read from the inner connection, whose own backpressure then stops reading from the
 * network (StreamConnection pauses above its receiveHighWaterMark, 8 MiB by default). So the long-run receive rate is
 * the limit, but up to that buffer (plus kernel buffers) can arrive ahead of it in a burst.
 *
 * close() (or the connection closing) aborts the upload charges it is waiting on; sends that were waiting then
 * reject as the inner connection's sends do once it is closed. Received messages are charged even after the peer has
 * closed (their bytes did cross the network), and the iteration delivers them as the inner one would; only a local
 * close() cancels the waiting download charge and ends the iteration.
 */
import { isLayerswarmError, type LayerswarmError } from '../errors.ts';
import { encodeMessage, type Received, type WireMessage } from './codec.ts';
import type { TokenBucket } from './rate-limit.ts';
import type { Connection, Listener, Transport, WireAddress } from './transport.ts';

export interface BandwidthLimits {
  /** Charged for every byte sent (frames: prefix, header and payload). */
  readonly upload?: TokenBucket;
  /** Charged for every byte received, before the message is delivered. */
  readonly download?: TokenBucket;
}

/** Bytes a message occupies on the wire: its encoded frame plus its payload. */
function wireBytes(message: WireMessage): number {
  return encodeMessage(message).byteLength + (message.kind === 'piece' ? message.length : 0);
}

class LimitedConnection implements Connection {
  readonly remote: string;
  readonly closed: Promise<LayerswarmError | undefined>;
  readonly #inner: Connection;
  readonly #upload: TokenBucket | undefined;
  readonly #download: TokenBucket | undefined;
  /** Aborted on close (ours or the inner connection's): cancels waiting upload charges. */
  readonly #closing = new AbortController();
  /** Aborted by close() only: cancels a waiting download charge (after a peer's close the rest is still delivered). */
  readonly #localClose = new AbortController();
  /** Settles once the previous send has been charged and handed to the inner connection. */
  #sendTail: Promise<void> = Promise.resolve();

  constructor(inner: Connection, limits: BandwidthLimits) {
    this.#inner = inner;
    this.remote = inner.remote;
    this.#upload = limits.upload?.unlimited ? undefined : limits.upload;
    this.#download = limits.download?.unlimited ? undefined : limits.download;
    this.closed = inner.closed;
    void inner.closed.then(() => this.#closing.abort());
  }

  send(message: WireMessage, payload?: Buffer | readonly Buffer[]): Promise<void> {
    const upload = this.#upload;
    if (!upload || this.#closing.signal.aborted) return this.#inner.send(message, payload);
    let bytes: number;
    try {
      bytes = wireBytes(message);
    } catch {
      return this.#inner.send(message, payload); // unencodable: the inner connection rejects it
    }
    if (!payloadMatches(message, payload)) return this.#inner.send(message, payload); // rejects with INTERNAL
    const signal = this.#closing.signal;
    const turn = this.#sendTail.then(() => upload.take(bytes, signal));
    // The next send waits for this one's charge (not for its delivery), so sends stay pipelined and ordered.
    const handedOver = turn.then(
      () => this.#inner.send(message, payload),
      (err: unknown) => {
        // Charge aborted because the connection closed: the inner connection gives the right rejection.
        if (isLayerswarmError(err, 'ABORTED')) return this.#inner.send(message, payload);
        throw err;
      },
    );
    this.#sendTail = turn.then(
      () => undefined,
      () => undefined,
    );
    return handedOver;
  }

  messages(): AsyncIterable<Received> {
    const inner = this.#inner.messages();
    const download = this.#download;
    if (!download) return inner;
    return { [Symbol.asyncIterator]: () => this.#limited(inner, download) };
  }

  async *#limited(inner: AsyncIterable<Received>, download: TokenBucket): AsyncGenerator<Received> {
    const signal = this.#localClose.signal;
    for await (const r of inner) {
      try {
        await download.take(wireBytes(r.message), signal);
      } catch (err) {
        // A local close() ends the iteration and discards unread messages, as it does on the inner connection.
        if (isLayerswarmError(err, 'ABORTED')) return;
        throw err;
      }
      yield r;
    }
  }

  close(error?: LayerswarmError): void {
    this.#localClose.abort();
    this.#closing.abort();
    this.#inner.close(error);
  }
}

function payloadMatches(message: WireMessage, payload: Buffer | readonly Buffer[] | undefined): boolean {
  if (message.kind !== 'piece') return payload === undefined;
  const chunks = payload === undefined ? [] : Buffer.isBuffer(payload) ? [payload] : payload;
  let total = 0;
  for (const c of chunks) total += c.byteLength;
  return total === message.length;
}

export class LimitedTransport implements Transport {
  readonly inner: Transport;
  readonly limits: BandwidthLimits;

  constructor(inner: Transport, limits: BandwidthLimits = {}) {
    this.inner = inner;
    this.limits = limits;
  }

  /** Wrap one connection (e.g. one made by another path) in this transport's limits. */
  wrap(connection: Connection): Connection {
    return new LimitedConnection(connection, this.limits);
  }

  listen(address: WireAddress, onConnection: (connection: Connection) => void): Promise<Listener> {
    return this.inner.listen(address, (connection) => onConnection(this.wrap(connection)));
  }

  async connect(address: WireAddress, signal: AbortSignal): Promise<Connection> {
    return this.wrap(await this.inner.connect(address, signal));
  }
}
