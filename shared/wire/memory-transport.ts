/**
 * In-process transport for tests: each connection is a pair of in-memory byte streams driving the same
 * StreamConnection as TCP, so framing, caps, backpressure and close behave alike. Sent bytes are copied on write
 * (as the kernel would), so a sender may reuse its buffers once send() resolves; a side's write completes only when
 * the other side has room (backpressure). Addresses are {host, port} keys in a MemoryNetwork; port 0 picks one.
 */
import { Duplex } from 'node:stream';
import { LayerswarmError } from '../errors.ts';
import { StreamConnection, type StreamConnectionOptions } from './stream-connection.ts';
import type { Connection, Listener, Transport, WireAddress } from './transport.ts';

/** One end of an in-memory byte pipe. Destroying either end ends the other (like a closed socket). */
class PipeEnd extends Duplex {
  other!: PipeEnd;
  #pendingWrite: (() => void) | undefined;

  constructor(highWaterMark: number) {
    super({ allowHalfOpen: false, readableHighWaterMark: highWaterMark, writableHighWaterMark: highWaterMark });
  }

  override _read(): void {
    const other = this.other;
    const pending = other.#pendingWrite;
    other.#pendingWrite = undefined;
    pending?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#deliver([chunk], callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#deliver(chunks.map((c) => c.chunk), callback);
  }

  #deliver(chunks: Buffer[], callback: (error?: Error | null) => void): void {
    const other = this.other;
    if (other.destroyed || other.readableEnded) {
      callback(Object.assign(new Error('peer closed (EPIPE)'), { code: 'EPIPE' }));
      return;
    }
    // One copy, as a socket write would make.
    if (other.push(Buffer.concat(chunks))) callback();
    else this.#pendingWrite = () => callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.other.destroyed) this.other.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const other = this.other;
    if (!other.destroyed && !other.readableEnded) other.push(null);
    const pending = this.#pendingWrite;
    this.#pendingWrite = undefined;
    pending?.();
    callback(error);
  }
}

/** A pair of connected byte streams. */
export function memoryPipe(highWaterMark = 256 * 1024): [Duplex, Duplex] {
  const a = new PipeEnd(highWaterMark);
  const b = new PipeEnd(highWaterMark);
  a.other = b;
  b.other = a;
  return [a, b];
}

interface MemoryListener {
  accept(stream: Duplex, remote: string): void;
}

/** The address space memory transports share; connect only reaches listeners on the same network. */
export class MemoryNetwork {
  readonly listeners = new Map<string, MemoryListener>();
  #nextPort = 40_000;
  #nextClient = 50_000;

  allocatePort(): number {
    return this.#nextPort++;
  }

  clientName(): string {
    return `memory:${this.#nextClient++}`;
  }
}

const key = (a: WireAddress): string => `${a.host}:${a.port}`;

export interface MemoryTransportOptions extends StreamConnectionOptions {
  /** Bytes each direction buffers before writes wait. Default 256 KiB. */
  readonly pipeHighWaterMark?: number;
}

export class MemoryTransport implements Transport {
  readonly network: MemoryNetwork;
  readonly #options: MemoryTransportOptions;

  constructor(network: MemoryNetwork = new MemoryNetwork(), options: MemoryTransportOptions = {}) {
    this.network = network;
    this.#options = options;
  }

  async listen(address: WireAddress, onConnection: (connection: Connection) => void): Promise<Listener> {
    const bound = { host: address.host, port: address.port === 0 ? this.network.allocatePort() : address.port };
    if (this.network.listeners.has(key(bound))) throw new LayerswarmError('PEER_UNAVAILABLE', `cannot listen on ${key(bound)}: address in use`);
    const open = new Set<StreamConnection>();
    this.network.listeners.set(key(bound), {
      accept: (stream, remote) => {
        const connection = new StreamConnection(stream, remote, this.#options);
        open.add(connection);
        void connection.closed.then(() => open.delete(connection));
        onConnection(connection);
      },
    });
    return {
      address: bound,
      close: async () => {
        this.network.listeners.delete(key(bound));
        for (const c of open) c.close();
        await Promise.all([...open].map((c) => c.closed));
      },
    };
  }

  async connect(address: WireAddress, signal: AbortSignal): Promise<Connection> {
    const stream = await this.connectRaw(address, signal);
    return new StreamConnection(stream, key(address), this.#options);
  }

  /** For tests: connect and get the raw byte stream instead of a Connection (to send arbitrary bytes). */
  async connectRaw(address: WireAddress, signal?: AbortSignal): Promise<Duplex> {
    // Yield once, as a real connect would, so an abort right after the call still wins.
    await Promise.resolve();
    if (signal?.aborted) throw new LayerswarmError('ABORTED', `connect to ${key(address)}: aborted`, { cause: signal.reason });
    const listener = this.network.listeners.get(key(address));
    if (!listener) throw new LayerswarmError('PEER_UNAVAILABLE', `connect to ${key(address)}: connection refused`);
    const [mine, theirs] = memoryPipe(this.#options.pipeHighWaterMark);
    listener.accept(theirs, this.network.clientName());
    return mine;
  }
}
