// The swarm engine over real TCP on loopback with a real in-process tracker: 1 seeder + 4 downloaders, ~20 MiB.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { swarmEngineConfig } from '../../agent/swarm/engine/config.ts';
import { trackerAnnounce } from '../../agent/swarm/engine/announce.ts';
import { SwarmEngine } from '../../agent/swarm/engine/engine.ts';
import { dialPeer, makeHandshake } from '../../agent/swarm/engine/handshake.ts';
import { newPeerId } from '../../agent/swarm/engine/peer-id.ts';
import { Bitfield } from '../../agent/swarm/scheduler/bitfield.ts';
import { isWireError } from '../../shared/wire/errors.ts';
import { silentLogger } from '../../shared/logging.ts';
import { computeMetainfo, type Metainfo } from '../../shared/swarm/metainfo.ts';
import { TcpTransport } from '../../shared/wire/tcp-transport.ts';
import { TrackerClient } from '../../tracker/client.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const SIZE = 20 * 1024 * 1024 + 12_345;
const PIECE = 256 * 1024;

describe('swarm engine over TCP with a real tracker', () => {
  let dir: string;
  let tracker: RunningTracker;
  let client: TrackerClient;
  const engines: SwarmEngine[] = [];
  let bytes: Buffer;
  let meta: Metainfo;
  let blobPath: string;

  before(async () => {
    dir = await makeTempDir('swarm-engine-tcp');
    tracker = await startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }, { logger: silentLogger() });
    client = new TrackerClient({ url: tracker.url, timeoutMs: 5000 });
    bytes = randomBytes(SIZE);
    meta = await computeMetainfo(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, [bytes], SIZE, { minPieceLength: PIECE, maxPieceLength: PIECE, targetPieces: 1, originDirectMaxBytes: 0 });
    blobPath = join(dir, 'blob');
    await writeFile(blobPath, bytes);
    const config = swarmEngineConfig({ tickMs: 50, scheduler: { announceIntervalMs: 300, requestTimeoutMs: 5000 } });
    for (let i = 0; i < 5; i++) {
      const engine = new SwarmEngine({
        transport: new TcpTransport(), announce: trackerAnnounce(client, { address: '127.0.0.1', seeder: i === 0 }), dataDir: join(dir, `node${i}`), config, logger: silentLogger(),
      });
      await engine.listen({ host: '127.0.0.1', port: 0 });
      engines.push(engine);
    }
  });

  after(async () => {
    await Promise.all(engines.map((e) => e.close({ removeFiles: true })));
    await client?.close();
    await tracker?.close();
    if (dir) await removeTempDir(dir);
  });

  test('1 seeder + 4 downloaders: all complete and verified', async () => {
    const [seeder, ...downloaders] = engines;
    assert.ok(seeder);
    await seeder.seed(meta, { path: blobPath }, AbortSignal.timeout(5000));
    const started = performance.now();
    const results = await Promise.all(downloaders.map((d) => d.download(meta, { signal: AbortSignal.timeout(15_000) })));
    const seconds = (performance.now() - started) / 1000;
    for (const r of results) {
      const got = await readFile(r.path);
      assert.equal(got.byteLength, SIZE);
      assert.ok(got.equals(bytes), 'byte-identical');
      assert.equal(r.stats.have, meta.pieceHashes.length);
    }
    const delivered = (SIZE * downloaders.length) / 2 ** 20;
    const seederUp = (seeder.torrentStats(meta.digest)?.bytesUp ?? 0) / 2 ** 20;
    console.log(`TCP: ${downloaders.length} × ${(SIZE / 2 ** 20).toFixed(1)} MiB (${meta.pieceHashes.length} pieces) in ${seconds.toFixed(2)} s = ${(delivered / seconds).toFixed(0)} MiB/s aggregate; seeder uploaded ${seederUp.toFixed(1)} MiB`);
  });

  test('a closing torrent announces "stopped": the tracker stops handing it out at once', async () => {
    const downloader = engines[1];
    assert.ok(downloader);
    const listed = async (): Promise<string[]> => tracker.store.peers(meta.digest).map((p) => p.peerId);
    assert.ok((await listed()).includes(downloader.peerId), 'the completed downloader is in the swarm');
    assert.equal(await downloader.stopSeeding(meta.digest), true);
    assert.ok(!(await listed()).includes(downloader.peerId), 'gone right after stopSeeding, not after the 30 s TTL');
  });

  test('graceful shutdown: after stopAccepting a new peer is refused with SHUTTING_DOWN, open connections go on', async () => {
    const [seeder] = engines;
    assert.ok(seeder?.address);
    const dial = async () => {
      const transport = new TcpTransport();
      const { opened } = await dialPeer({
        transport, address: seeder.address as { host: string; port: number }, peerId: seeder.peerId, meta,
        handshake: makeHandshake(newPeerId(), meta, new Bitfield(meta.pieceHashes.length)),
        signal: AbortSignal.timeout(5000), connectTimeoutMs: 5000, handshakeTimeoutMs: 5000, track: () => undefined,
      });
      return opened;
    };
    const open = await dial();
    seeder.stopAccepting();
    await assert.rejects(dial(), (e) => isWireError(e, 'SHUTTING_DOWN'));
    // The connection made before is still served: ask it for a piece and get verified bytes.
    await open.connection.send({ kind: 'request', piece: 0 });
    for (;;) {
      const next = await open.messages.next();
      assert.ok(next.done !== true, 'connection ended before the piece came');
      const received = next.value;
      if (received.message.kind !== 'piece') continue;
      const hash = createHash('sha256');
      for (const slice of received.payload ?? []) hash.update(slice);
      assert.equal(hash.digest('hex'), meta.pieceHashes[0]);
      break;
    }
    open.connection.close();
  });
});
