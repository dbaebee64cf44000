import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { freePort, isPortClash, retryOnPortClash } from '../fixtures/ports.ts';

/** Listens on 127.0.0.1:port; rejects with the real listen error (EADDRINUSE when the port is taken). */
async function listen(port: number): Promise<Server> {
  const server = createServer();
  server.listen({ host: '127.0.0.1', port, exclusive: true });
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  return server;
}

const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/** A server holding a port, for the duration of `fn`. */
async function withTakenPort(fn: (port: number) => Promise<void>): Promise<void> {
  const holder = await listen(0);
  try {
    await fn((holder.address() as AddressInfo).port);
  } finally {
    await close(holder);
  }
}

describe('retryOnPortClash', () => {
  test('re-runs start after a real EADDRINUSE, with the attempt number, and resolves with its result', async () => {
    await withTakenPort(async (taken) => {
      const tried: number[] = [];
      const server = await retryOnPortClash(async (attempt) => {
        tried.push(attempt);
        return listen(attempt === 1 ? taken : await freePort());
      });
      try {
        assert.deepEqual(tried, [1, 2]);
        assert.notEqual((server.address() as AddressInfo).port, taken);
      } finally {
        await close(server);
      }
    });
  });

  test('a clash named only by the error\'s cause counts too', async () => {
    await withTakenPort(async (taken) => {
      let calls = 0;
      const result = await retryOnPortClash(async () => {
        if (++calls === 1) {
          const clash = await listen(taken).then(close, (err: unknown) => err);
          assert.ok(isPortClash(clash), String(clash));
          throw new Error('the child could not start', { cause: clash });
        }
        return 'started';
      });
      assert.equal(result, 'started');
      assert.equal(calls, 2);
    });
  });

  test('any other error is rethrown at once', async () => {
    let calls = 0;
    const boom = new Error('seeder: not ready after 30000 ms');
    await assert.rejects(retryOnPortClash(async () => {
      calls++;
      throw boom;
    }), (err) => err === boom);
    assert.equal(calls, 1);
  });

  test('gives up after `attempts` clashes and rethrows the last one', async () => {
    await withTakenPort(async (taken) => {
      let calls = 0;
      await assert.rejects(retryOnPortClash(() => {
        calls++;
        return listen(taken);
      }, 2), { code: 'EADDRINUSE' });
      assert.equal(calls, 2);
    });
    let calls = 0;
    await assert.rejects(retryOnPortClash(async () => {
      calls++;
      throw new Error('tracker: exited with code 1 before it was ready\nlisten EADDRINUSE: address already in use 127.0.0.1:1234');
    }), /address already in use/);
    assert.equal(calls, 3, 'default: 3 attempts');
  });
});
