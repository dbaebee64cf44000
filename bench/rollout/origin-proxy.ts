/**
 * A TCP proxy in front of the origin registry that counts what the origin sends ("origin egress") and optionally
 * limits it with one TokenBucket (the origin's link, shared by all its connections).
 *
 * Attribution: the proxy listens on 0.0.0.0 and every client dials it at its own loopback address (127.0.0.1 for the
 * seeder, 127.1.x.y for agent k, see agentOriginHost), so the local address of an accepted socket names the node the
 * bytes went to. Only loopback peers are served.
 *
 * Each client's own link: `clientRate(address)` (bytes/s) limits what the proxy sends to that address, as the node's
 * download link would. Without it the proxy would write as fast as the kernel takes it, and a rate-limited agent
 * that reads slowly would leave megabytes in its socket buffers: counted as sent, and thrown away when the agent
 * abandons the download (the count would overstate what a real link carries).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { TokenBucket } from '../../shared/wire/rate-limit.ts';

/** The loopback address agent `index` dials the origin proxy at (127.1.0.0/16 + index). */
export function agentOriginHost(index: number): string {
  return `127.1.${(index >> 8) & 255}.${index & 255}`;
}

/** The agent index of an address made by agentOriginHost, else undefined (e.g. the seeder's 127.0.0.1). */
export function agentIndexOf(address: string): number | undefined {
  const m = /^127\.1\.(\d+)\.(\d+)$/.exec(address);
  return m === null ? undefined : Number(m[1]) * 256 + Number(m[2]);
}

export interface OriginProxy {
  readonly port: number;
  /** Bytes sent to clients (responses: headers + bodies), by the local address the client dialled. */
  bytesByAddress(): Map<string, number>;
  /** All bytes sent to clients since start (or the last reset). */
  totalBytes(): number;
  /** Change the link limit (0: unlimited). */
  setRate(rate: number): void;
  /** Forget the counters. */
  reset(): void;
  /** Close every connection (in-flight pulls fail) but keep listening. */
  dropConnections(): void;
  close(): Promise<void>;
}

const CHUNK = 16 * 1024;

export async function startOriginProxy(target: { host: string; port: number }, rate = 0, clientRate: (address: string) => number = () => 0): Promise<OriginProxy> {
  let bucket = new TokenBucket({ rate, burst: 64 * 1024 });
  const clientBuckets = new Map<string, TokenBucket>();
  const clientBucket = (key: string): TokenBucket => {
    let b = clientBuckets.get(key);
    if (b === undefined) {
      b = new TokenBucket({ rate: clientRate(key), burst: CHUNK });
      clientBuckets.set(key, b);
    }
    return b;
  };
  const counts = new Map<string, number>();
  let total = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const local = client.localAddress ?? '';
    const remote = client.remoteAddress ?? '';
    if (!local.startsWith('127.') && !local.startsWith('::ffff:127.')) return client.destroy();
    if (!remote.startsWith('127.') && !remote.startsWith('::ffff:127.')) return client.destroy();
    const key = local.replace(/^::ffff:/, '');
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const abort = new AbortController();
    const done = (): void => {
      abort.abort();
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    client.pipe(upstream);
    // origin → client: charged to the bucket chunk by chunk (FIFO across connections), counted once written.
    let chain = Promise.resolve();
    upstream.on('data', (data: Buffer) => {
      upstream.pause();
      const b = bucket;
      const own = clientBucket(key);
      chain = chain.then(async () => {
        for (let off = 0; off < data.length; off += CHUNK) {
          const part = data.subarray(off, Math.min(data.length, off + CHUNK));
          if (!own.unlimited) await own.take(part.length, abort.signal);
          if (!b.unlimited) await b.take(part.length, abort.signal);
          if (client.destroyed) return;
          client.write(part);
          total += part.length;
          counts.set(key, (counts.get(key) ?? 0) + part.length);
        }
        if (client.writableNeedDrain) {
          await new Promise<void>((resolve) => {
            const go = (): void => {
              client.off('drain', go).off('close', go);
              resolve();
            };
            client.on('drain', go).on('close', go);
          });
        }
        upstream.resume();
      }).catch(() => done());
    });
    upstream.on('end', () => {
      void chain.then(() => client.end());
    });
  });
  server.maxConnections = 20_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '0.0.0.0', port: 0 }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    bytesByAddress: () => new Map(counts),
    totalBytes: () => total,
    setRate: (r) => {
      bucket = new TokenBucket({ rate: r, burst: 64 * 1024 });
    },
    reset: () => {
      counts.clear();
      total = 0;
    },
    dropConnections: () => {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
