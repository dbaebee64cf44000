/**
 * Connection over any Node Duplex byte stream (a TCP socket, an in-memory pipe): the shared implementation of the
 * Connection contract, so every byte-stream transport gets identical framing, caps, backpressure and close
 * semantics.
 *
 * Reading runs in flowing mode ('data' events hand over each received chunk as it is: no concatenation), decoded
 * messages queue here, and the stream is paused while more than `receiveHighWaterMark` payload bytes wait unread.
 */
import type { Duplex } from 'node:stream';
import { LayerswarmError } from '../errors.ts';
import { encodeMessage, WireDecoder, type Received, type WireMessage } from './codec.ts';
import { WireError } from './errors.ts';
import type { Connection } from './transport.ts';

export interface StreamConnectionOptions {
  /** Local cap on received Piece payloads (≤ METAINFO_LIMITS.maxPieceLength, its default). */
  readonly maxPieceLength?: number;
  /** Unread payload bytes at which reading from the stream pauses. Default 8 MiB. */
  readonly receiveHighWaterMark?: number;
  /** How long close() waits for the peer to close its side before destroying the stream. Default 2000 ms. */
  readonly closeTimeoutMs?: number;
}

const received = (r: Received): number => (r.payload ? r.message.length : 0) + 64;

export class StreamConnection implements Connection {
  readonly remote: string;
  readonly closed: Promise<LayerswarmError | undefined>;
  readonly #stream: Duplex;
  readonly #decoder: WireDecoder;
  readonly #highWater: number;
  readonly #closeTimeoutMs: number;
  /** Decoded, unread messages: #queue[#queueHead..] (an index, not shift(): O(1) per message under floods). */
  #queue: Received[] = [];
  #queueHead = 0;
  #queuedBytes = 0;
  #wake: (() => void) | undefined;
  /** No more messages will be queued (stream ended, closed, or we are closing). */
  #done = false;
  #closing = false;
  /** Why the connection closed (local violation, peer's Error, stream failure); undefined when clean. */
  #error: LayerswarmError | undefined;
  /** Thrown by messages(): the local violation or stream failure, not the peer's polite Error. */
  #readError: LayerswarmError | undefined;
  #iterated = false;
  #resolveClosed!: (error: LayerswarmError | undefined) => void;

  constructor(stream: Duplex, remote: string, options: StreamConnectionOptions = {}) {
    this.#stream = stream;
    this.remote = remote;
    this.#decoder = new WireDecoder({ maxPieceLength: options.maxPieceLength });
    this.#highWater = options.receiveHighWaterMark ?? 8 << 20;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 2000;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('end', () => this.#onEnd());
    stream.on('error', (err) => this.#onStreamError(err));
    stream.on('close', () => this.#onClose());
  }

  send(message: WireMessage, payload?: Buffer | readonly Buffer[]): Promise<void> {
    if (this.#closing || this.#stream.destroyed || !this.#stream.writable) {
      return Promise.reject(this.#error ?? new LayerswarmError('PEER_UNAVAILABLE', `connection to ${this.remote} is closed`));
    }
    const chunks = payload === undefined ? [] : Buffer.isBuffer(payload) ? [payload] : payload;
    if (message.kind === 'piece') {
      let total = 0;
      for (const c of chunks) total += c.byteLength;
      if (total !== message.length) {
        return Promise.reject(new LayerswarmError('INTERNAL', `piece ${message.piece}: payload of ${total} bytes for length ${message.length}`));
      }
    } else if (payload !== undefined) {
      return Promise.reject(new LayerswarmError('INTERNAL', `${message.kind} carries no payload`));
    }
    let header: Buffer;
    try {
      header = encodeMessage(message);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => {
        if (err) reject(this.#error ?? new LayerswarmError('PEER_UNAVAILABLE', `send to ${this.remote} failed: ${err.message}`, { cause: err }));
        else resolve();
      };
      const body = chunks.filter((c) => c.byteLength > 0);
      const stream = this.#stream;
      if (body.length === 0) {
        stream.write(header, done);
        return;
      }
      stream.cork();
      stream.write(header);
      for (let i = 0; i < body.length; i++) stream.write(body[i], i === body.length - 1 ? done : undefined);
      stream.uncork();
    });
  }

  messages(): AsyncIterable<Received> {
    if (this.#iterated) throw new LayerswarmError('INTERNAL', 'messages() may be called once per connection');
    this.#iterated = true;
    return { [Symbol.asyncIterator]: () => this.#iterator() };
  }

  close(error?: LayerswarmError): void {
    this.#shutdown(error, true);
  }

  #shutdown(error: LayerswarmError | undefined, discardUnread: boolean): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#done = true;
    if (discardUnread) {
      this.#queue = [];
      this.#queueHead = 0;
      this.#queuedBytes = 0;
    }
    const stream = this.#stream;
    if (error) {
      this.#error = error;
      this.#readError = error;
      if (!stream.destroyed && stream.writable) {
        const wire = error instanceof WireError && !error.remote ? error : new WireError('INTERNAL', error.message);
        try {
          stream.write(encodeMessage({ kind: 'error', code: wire.wireCode, message: error.message }));
        } catch {
          // Unencodable: close without it.
        }
      }
    }
    // Keep reading (and discarding) so the peer's FIN arrives; destroy if it never does.
    stream.resume();
    if (!stream.destroyed) stream.end();
    const timer = setTimeout(() => stream.destroy(), this.#closeTimeoutMs);
    timer.unref();
    void this.closed.then(() => clearTimeout(timer));
    this.#notify();
  }

  async *#iterator(): AsyncGenerator<Received> {
    for (;;) {
      const next = this.#takeQueued();
      if (next) {
        this.#queuedBytes -= received(next);
        if (this.#stream.isPaused() && this.#queuedBytes <= this.#highWater / 2 && !this.#done) this.#stream.resume();
        yield next;
        continue;
      }
      if (this.#done) {
        if (this.#readError) throw this.#readError;
        return;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #takeQueued(): Received | undefined {
    if (this.#queueHead >= this.#queue.length) return undefined;
    const next = this.#queue[this.#queueHead++];
    if (this.#queueHead === this.#queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else if (this.#queueHead >= 1024 && this.#queueHead * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
    return next;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #onData(chunk: Buffer): void {
    if (this.#closing) return;
    const items: Received[] = [];
    let failure: LayerswarmError | undefined;
    try {
      this.#decoder.push(chunk, items);
    } catch (err) {
      failure = err as LayerswarmError;
    }
    for (const item of items) {
      if (item.message.kind === 'error' && !this.#error) {
        this.#error = new WireError(item.message.code, `peer ${this.remote}: ${item.message.message}`, { remote: true });
      }
      this.#queue.push(item);
      this.#queuedBytes += received(item);
    }
    if (failure) {
      // Messages before the violation stay readable; the iterator throws after them.
      this.#shutdown(failure, false);
      return;
    }
    if (this.#queuedBytes > this.#highWater) this.#stream.pause();
    if (items.length > 0) this.#notify();
  }

  #onEnd(): void {
    if (!this.#closing) {
      try {
        this.#decoder.end();
      } catch (err) {
        this.#error ??= err as LayerswarmError;
        this.#readError ??= err as LayerswarmError;
      }
    }
    this.#done = true;
    this.#notify();
  }

  #onStreamError(err: Error): void {
    if (!this.#error) {
      const wrapped = new LayerswarmError('PEER_UNAVAILABLE', `connection to ${this.remote} failed: ${err.message}`, { cause: err });
      this.#error = wrapped;
      this.#readError = wrapped;
    }
  }

  #onClose(): void {
    if (!this.#done && !this.#closing && !this.#error) {
      // Closed without an orderly end (destroyed, reset).
      const truncated = this.#decoder.idle ? undefined : new LayerswarmError('PEER_UNAVAILABLE', `connection to ${this.remote} closed mid-message`);
      this.#error = truncated;
      this.#readError = truncated;
    }
    this.#done = true;
    this.#closing = true;
    this.#notify();
    this.#resolveClosed(this.#error);
  }
}
