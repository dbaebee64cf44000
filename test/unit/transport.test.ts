/** Runs the Transport conformance suite for the TCP and in-memory transports, and the bandwidth-limited wrapper. */
import { connect, createServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { LimitedTransport } from '../../shared/wire/limited-transport.ts';
import { MemoryNetwork, MemoryTransport } from '../../shared/wire/memory-transport.ts';
import { TokenBucket } from '../../shared/wire/rate-limit.ts';
import { TcpTransport } from '../../shared/wire/tcp-transport.ts';
import { transportConformance } from './transport-conformance.ts';

transportConformance('tcp', () => ({
  transport: new TcpTransport(),
  host: '127.0.0.1',
  connectRaw: (address) =>
    new Promise<Duplex>((resolve, reject) => {
      const socket = connect(address.port, address.host, () => resolve(socket));
      socket.once('error', reject);
    }),
  deadAddress: () =>
    new Promise((resolve) => {
      // A port that was free a moment ago: listen, note it, close.
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve({ host: '127.0.0.1', port }));
      });
    }),
}));

transportConformance('memory', () => {
  const transport = new MemoryTransport(new MemoryNetwork());
  return {
    transport,
    host: 'peer-a',
    connectRaw: (address) => transport.connectRaw(address),
    deadAddress: () => Promise.resolve({ host: 'nobody', port: 1 }),
  };
});

// Generous limits (1 GiB/s, 1 MiB burst): the 96 MiB backpressure test still waits on the buckets.
transportConformance('limited(memory)', () => {
  const inner = new MemoryTransport(new MemoryNetwork());
  const limits = { upload: new TokenBucket({ rate: 1 << 30, burst: 1 << 20 }), download: new TokenBucket({ rate: 1 << 30, burst: 1 << 20 }) };
  return {
    transport: new LimitedTransport(inner, limits),
    host: 'peer-a',
    connectRaw: (address) => inner.connectRaw(address),
    deadAddress: () => Promise.resolve({ host: 'nobody', port: 1 }),
  };
});
