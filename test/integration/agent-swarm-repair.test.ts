// A swarm download that stalls midway (the only seeder sends some pieces, then goes away) keeps its verified pieces:
// the agent fetches only the missing byte ranges from the real origin registry (206s, counted in its access log),
// commits the right digest, and accounts bytes from peers and from the origin separately.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { access, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { swarmEngineConfig } from '../../agent/swarm/engine/config.ts';
import { trackerAnnounce } from '../../agent/swarm/engine/announce.ts';
import { SwarmEngine } from '../../agent/swarm/engine/engine.ts';
import { silentLogger } from '../../shared/logging.ts';
import { computeMetainfo, pieceRange, type Metainfo } from '../../shared/swarm/metainfo.ts';
import type { WireMessage } from '../../shared/wire/codec.ts';
import { TcpTransport } from '../../shared/wire/tcp-transport.ts';
import type { Connection, Listener, Transport, WireAddress } from '../../shared/wire/transport.ts';
import { TrackerClient } from '../../tracker/client.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { rawRequest } from '../fixtures/http.ts';
import { buildImage, pushImage, sha256Digest, type BuiltLayer } from '../fixtures/images.ts';
import { waitFor } from '../fixtures/process.ts';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const MiB = 2 ** 20;

/** A TCP transport that sends the first `limit` pieces, records them, drops later ones and then calls `onLimit`. */
class PieceCappedTransport implements Transport {
  readonly sent = new Set<number>();
  readonly #inner = new TcpTransport();
  readonly #limit: number;
  readonly #onLimit: () => void;
  #fired = false;

  constructor(limit: number, onLimit: () => void) {
    this.#limit = limit;
    this.#onLimit = onLimit;
  }

  #wrap(c: Connection): Connection {
    return {
      remote: c.remote,
      closed: c.closed,
      messages: () => c.messages(),
      close: (err) => c.close(err),
      send: async (message: WireMessage, payload?: Buffer | readonly Buffer[]) => {
        if (message.kind !== 'piece') return c.send(message, payload);
        if (this.sent.size >= this.#limit) return; // dropped: this seeder is "gone"
        this.sent.add(message.piece);
        await c.send(message, payload);
        if (this.sent.size >= this.#limit && !this.#fired) {
          this.#fired = true;
          this.#onLimit();
        }
      },
    };
  }

  listen(address: WireAddress, onConnection: (connection: Connection) => void): Promise<Listener> {
    return this.#inner.listen(address, (c) => onConnection(this.#wrap(c)));
  }

  async connect(address: WireAddress, signal: AbortSignal): Promise<Connection> {
    return this.#wrap(await this.#inner.connect(address, signal));
  }
}

describe('swarm fallback keeps verified pieces', () => {
  let dir: string;
  let registry: Registry;
  let tracker: RunningTracker;
  let client: TrackerClient;
  let layer: BuiltLayer;
  let meta: Metainfo;
  const agents: TestAgent[] = [];
  const engines: SwarmEngine[] = [];

  before(async () => {
    dir = await makeTempDir('agent-swarm-repair-');
    [registry, tracker] = await Promise.all([
      startRegistry({ auth: 'none' }),
      startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }, { logger: silentLogger() }),
    ]);
    const image = await buildImage(join(dir, 'img'), { tag: '1', seed: 'agent-swarm-repair', layers: [{ size: 12 * MiB, gzip: false }] });
    await pushImage(image, `${registry.host}/test/repair:1`);
    const built = image.manifests[0]?.layers[0];
    assert.ok(built);
    layer = built;
    meta = await computeMetainfo(layer.digest, createReadStream(layer.path), layer.size);
    assert.ok(meta.pieceHashes.length >= 12);
    client = new TrackerClient({ url: tracker.url, timeoutMs: 5000 });
    await client.putMetainfo(meta);
  });

  after(async () => {
    for (const a of agents) await a.cleanup();
    for (const e of engines) await e.close();
    await client?.close();
    await tracker?.close();
    await registry?.stop();
    if (dir) await removeTempDir(dir);
  });

  test('the seeder leaves after 5 pieces: the origin serves only the missing ranges, the digest is right', async () => {
    const seedFile = join(dir, 'seed-blob');
    await copyFile(layer.path, seedFile);
    // The seeder closes (and so disappears for the agent) once it has sent 5 pieces.
    const transport = new PieceCappedTransport(5, () => void seeder.close());
    const seeder = new SwarmEngine({
      transport, announce: trackerAnnounce(client, { address: '127.0.0.1', seeder: true }), dataDir: join(dir, 'seeder'),
      config: swarmEngineConfig({ tickMs: 50, scheduler: { announceIntervalMs: 300, seedAnnounceIntervalMs: 1000 } }), logger: silentLogger(),
    });
    engines.push(seeder);
    await seeder.listen({ host: '127.0.0.1', port: 0 });
    await seeder.seed(meta, { path: seedFile }, AbortSignal.timeout(5000));
    await waitFor(async () => (await client.swarms()).swarms.find((s) => s.digest === meta.digest && s.seeders + s.complete > 0), { timeoutMs: 5000, what: 'the seeder announced' });
    registry.clearRequests();

    const agent = await startTestAgent({
      origin: registry.url,
      overrides: {
        tracker: tracker.url, peerListen: { host: '127.0.0.1', port: 0 }, peerAdvertise: '127.0.0.1', prefetch: false,
        metainfoTimeout: 5000, swarmStallTimeout: 10_000, swarmNoPeerTimeout: 1000,
      },
    });
    agents.push(agent);
    const res = await rawRequest(agent.url, `/v2/test/repair/blobs/${layer.digest}`, { timeoutMs: 30_000 });
    assert.equal(res.status, 200, res.body.toString().slice(0, 300));
    assert.equal(res.body.length, layer.size);
    assert.equal(sha256Digest(res.body), layer.digest);

    const fromPeers = [...transport.sent].reduce((n, p) => n + pieceRange(meta, p).length, 0);
    assert.equal(transport.sent.size, 5);
    const gets = (await registry.settledRequests()).filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${layer.digest}`));
    assert.ok(gets.length >= 1, 'the origin was asked for the missing pieces');
    assert.ok(gets.every((r) => r.status === 206), `only Range requests: ${JSON.stringify(gets.map((r) => r.status))}`);
    assert.equal(gets.reduce((n, r) => n + r.bytes, 0), layer.size - fromPeers, 'the origin served exactly the missing bytes');
    // Missing pieces form at most (sent + 1) runs: one Range request per run.
    assert.ok(gets.length <= transport.sent.size + 1);

    assert.equal(await agent.metric('layerswarm_swarm_fallbacks_total', { reason: 'no_peers' }), 1);
    assert.equal(await agent.metric('layerswarm_swarm_bytes_total', { source: 'peers' }), fromPeers);
    assert.equal(await agent.metric('layerswarm_swarm_bytes_total', { source: 'origin' }), layer.size - fromPeers);
    assert.ok(agent.logs().some((l) => l.msg === 'completed the swarm download with the missing pieces from the origin'));
    // The repaired download file is gone once the blob is in the store (it is seeded from the store).
    const file = join(agent.dataDir, 'swarm', layer.digest.slice('sha256:'.length));
    await waitFor(async () => !(await access(file).then(() => true, () => false)), { timeoutMs: 5000, what: `${file} removed` });
    await waitFor(async () => !(await access(`${file}.pieces`).then(() => true, () => false)), { timeoutMs: 5000, what: `${file}.pieces removed` });
  });
});
