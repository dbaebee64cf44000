// What SwarmBlobSource's watchdog and the agent's swarm metrics read from the engine, over MemoryTransport:
// TorrentStats.usefulPeers / inFlight, and the traffic hooks (piece bytes by direction and peer kind, bad pieces,
// bans): down bytes add up to the blob exactly once, a corrupt seeder counts one bad piece and one ban.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Announce } from '../../agent/swarm/engine/announce.ts';
import { swarmEngineConfig } from '../../agent/swarm/engine/config.ts';
import { SwarmEngine } from '../../agent/swarm/engine/engine.ts';
import type { PeerKind, SwarmEngineEvents } from '../../agent/swarm/engine/stats.ts';
import { silentLogger } from '../../shared/logging.ts';
import { computeMetainfo, type Metainfo } from '../../shared/swarm/metainfo.ts';
import { MemoryNetwork, MemoryTransport } from '../../shared/wire/memory-transport.ts';
import type { Connection, Transport } from '../../shared/wire/transport.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const PIECE = 64 * 1024;

/** Every announcer learns every other peer of the digest. */
function stubTracker(): (host: string) => Announce {
  const swarms = new Map<string, Map<string, { address: string; complete: boolean }>>();
  return (host) => async (input) => {
    const swarm = swarms.get(input.digest) ?? new Map<string, { address: string; complete: boolean }>();
    swarms.set(input.digest, swarm);
    swarm.set(input.peerId, { address: `${host}:${input.port}`, complete: input.complete });
    return [...swarm].filter(([id]) => id !== input.peerId).map(([peerId, p]) => ({ peerId, address: p.address, complete: p.complete }));
  };
}

/** Flips the first byte of every piece this side sends. */
function corrupting(inner: Transport): Transport {
  const wrap = (c: Connection): Connection => ({
    remote: c.remote, closed: c.closed, messages: () => c.messages(), close: (e) => c.close(e),
    send: async (message, payload) => {
      if (message.kind !== 'piece' || payload === undefined) return c.send(message, payload);
      const bytes = Buffer.from(Buffer.isBuffer(payload) ? payload : Buffer.concat(payload));
      bytes[0] = (bytes[0] ?? 0) ^ 0xff;
      return c.send(message, bytes);
    },
  });
  return {
    connect: async (address, signal) => wrap(await inner.connect(address, signal)),
    listen: (address, onConnection) => inner.listen(address, (c) => onConnection(wrap(c))),
  };
}

class Recorder implements SwarmEngineEvents {
  readonly bytes: Record<string, number> = {};
  bad = 0;
  banned = 0;
  pieceBytes(direction: 'down' | 'up', peer: PeerKind, n: number): void {
    const key = `${direction}/${peer}`;
    this.bytes[key] = (this.bytes[key] ?? 0) + n;
  }
  badPiece(): void {
    this.bad++;
  }
  peerBanned(): void {
    this.banned++;
  }
}

describe('swarm engine: stats and traffic hooks for the swarm source and metrics', () => {
  let dir: string;
  let meta: Metainfo;
  let bytes: Buffer;
  let path: string;
  const engines: SwarmEngine[] = [];
  const network = new MemoryNetwork();
  const announceFor = stubTracker();

  const engine = async (host: string, options: { events?: SwarmEngineEvents; corrupt?: boolean } = {}): Promise<SwarmEngine> => {
    const base = new MemoryTransport(network);
    const e = new SwarmEngine({
      transport: options.corrupt === true ? corrupting(base) : base, announce: announceFor(host), dataDir: join(dir, host),
      config: swarmEngineConfig({ tickMs: 20, scheduler: { announceIntervalMs: 100 } }), logger: silentLogger(),
      ...(options.events === undefined ? {} : { events: options.events }),
    });
    await e.listen({ host, port: 0 });
    engines.push(e);
    return e;
  };

  before(async () => {
    dir = await makeTempDir('swarm-events-');
    bytes = randomBytes(10 * PIECE + 1234);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    meta = await computeMetainfo(digest, [bytes], bytes.length, { minPieceLength: PIECE, maxPieceLength: PIECE, targetPieces: 1, originDirectMaxBytes: 0 });
    path = join(dir, 'blob');
    await writeFile(path, bytes);
  });
  after(async () => {
    for (const e of engines) await e.close({ removeFiles: true });
    if (dir) await removeTempDir(dir);
  });

  test('no peer: usefulPeers 0, nothing in flight; a corrupt seeder is one bad piece and one ban; a good one completes it, bytes credited once', async () => {
    const down = new Recorder();
    const downloader = await engine('dl', { events: down });
    const running = downloader.download(meta, { signal: AbortSignal.timeout(15_000) });
    for (let i = 0; i < 10 && downloader.torrentStats(meta.digest) === undefined; i++) await sleep(10);
    await sleep(100);
    const alone = downloader.torrentStats(meta.digest);
    assert.ok(alone);
    assert.equal(alone.usefulPeers, 0);
    assert.equal(alone.inFlight, 0);

    const evil = await engine('evil', { corrupt: true });
    await evil.seed(meta, { path }, AbortSignal.timeout(5000));
    for (let i = 0; i < 300 && down.banned === 0; i++) await sleep(10);
    assert.equal(down.bad, 1, 'one bad piece');
    assert.equal(down.banned, 1, 'its sender banned');
    assert.equal(downloader.torrentStats(meta.digest)?.usefulPeers, 0, 'the banned seeder is no usable peer');
    assert.ok((downloader.torrentStats(meta.digest)?.announcesSettled ?? 0) >= 1, 'it found the seeder through an announce that came back');

    const goodEvents = new Recorder();
    const good = await engine('good', { events: goodEvents });
    await good.seed(meta, { path }, AbortSignal.timeout(5000));
    const result = await running;
    assert.ok((await readFile(result.path)).equals(bytes));
    assert.deepEqual(down.bytes, { 'down/seeder': bytes.length }, 'every verified piece credited once, to the complete peer');
    assert.equal(down.bad, 1);
    assert.equal(down.banned, 1);
    assert.ok((goodEvents.bytes['up/agent'] ?? 0) >= bytes.length, 'the seeder sent it to a downloading peer');
    assert.equal(downloader.torrentStats(meta.digest)?.usefulPeers ?? 0, 0, 'complete: nobody is useful any more');
  });
});
