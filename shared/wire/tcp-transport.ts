/** Plain TCP transport (node:net): Nagle off, header + payload in one writev, connect bounded by the caller's signal. */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { LayerswarmError } from '../errors.ts';
import { StreamConnection, type StreamConnectionOptions } from './stream-connection.ts';
import type { Connection, Listener, Transport, WireAddress } from './transport.ts';

export type TcpTransportOptions = StreamConnectionOptions;

function remoteOf(socket: Socket): string {
  const host = socket.remoteAddress ?? '?';
  return `${host.includes(':') ? `[${host}]` : host}:${socket.remotePort ?? 0}`;
}

export class TcpTransport implements Transport {
  readonly #options: TcpTransportOptions;

  constructor(options: TcpTransportOptions = {}) {
    this.#options = options;
  }

  async listen(address: WireAddress, onConnection: (connection: Connection) => void): Promise<Listener> {
    const open = new Set<StreamConnection>();
    const server: Server = createServer({ noDelay: true, allowHalfOpen: false }, (socket) => {
      const connection = new StreamConnection(socket, remoteOf(socket), this.#options);
      open.add(connection);
      void connection.closed.then(() => open.delete(connection));
      onConnection(connection);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address.port, address.host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      throw new LayerswarmError('PEER_UNAVAILABLE', `cannot listen on ${address.host}:${address.port}: ${(err as Error).message}`, { cause: err });
    });
    const bound = server.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : address.port;
    return {
      address: { host: address.host, port },
      close: async () => {
        const closing = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const c of open) c.close();
        await Promise.all([closing, ...[...open].map((c) => c.closed)]);
      },
    };
  }

  async connect(address: WireAddress, signal: AbortSignal): Promise<Connection> {
    const target = `${address.host}:${address.port}`;
    if (signal.aborted) throw new LayerswarmError('ABORTED', `connect to ${target}: aborted`, { cause: signal.reason });
    const socket = netConnect({ host: address.host, port: address.port, noDelay: true, allowHalfOpen: false });
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        cleanup();
        socket.destroy();
        reject(new LayerswarmError('ABORTED', `connect to ${target}: aborted`, { cause: signal.reason }));
      };
      const onError = (err: Error): void => {
        cleanup();
        socket.destroy();
        reject(new LayerswarmError('PEER_UNAVAILABLE', `connect to ${target}: ${err.message}`, { cause: err }));
      };
      const onConnect = (): void => {
        cleanup();
        resolve();
      };
      const cleanup = (): void => {
        signal.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        socket.off('connect', onConnect);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once('error', onError);
      socket.once('connect', onConnect);
    });
    return new StreamConnection(socket, remoteOf(socket), this.#options);
  }
}
