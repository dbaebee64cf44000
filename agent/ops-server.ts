/**
 * The agent's optional operations listener (`--metrics-listen`): GET /metrics, /healthz and /readyz on an address of
 * their own, so Prometheus and kubelet probes can reach them while the registry endpoint stays bound to 127.0.0.1
 * (a registry mirror reachable from the node network is more than monitoring needs). It serves nothing else.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { HostPort } from '../shared/config/options.ts';
import type { Logger } from '../shared/logging.ts';

export interface OpsServerOptions {
  readonly listen: HostPort;
  readonly registry: Registry;
  readonly ready: () => boolean;
  readonly logger: Logger;
}

export interface RunningOpsServer {
  readonly url: string;
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

export async function startOpsServer(options: OpsServerOptions): Promise<RunningOpsServer> {
  const app = Fastify({ loggerInstance: options.logger as FastifyBaseLogger, disableRequestLogging: true, connectionTimeout: 10_000, requestTimeout: 10_000 });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => (options.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'not ready' })));
  app.get('/metrics', async (_request, reply) => {
    reply.type(options.registry.contentType);
    return await options.registry.metrics();
  });
  await app.listen({ host: options.listen.host, port: options.listen.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.listen.port;
  const host = options.listen.host === '0.0.0.0' ? '127.0.0.1' : options.listen.host.includes(':') ? `[${options.listen.host}]` : options.listen.host;
  options.logger.info({ listen: `${options.listen.host}:${port}` }, 'metrics listener ready');
  return { url: `http://${host}:${port}`, app, close: () => app.close() };
}
