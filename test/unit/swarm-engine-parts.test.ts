// Swarm engine parts: PieceFile resume, the one-connection-per-pair rule, addresses and peer ids.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatAddress, parseAddress } from '../../agent/swarm/engine/announce.ts';
import { newPeerId, peerIdFromBytes, peerIdToBytes } from '../../agent/swarm/engine/peer-id.ts';
import type { PeerConn } from '../../agent/swarm/engine/peer-conn.ts';
import { PeerLinks } from '../../agent/swarm/engine/peer-links.ts';
import { PieceFile } from '../../agent/swarm/engine/piece-file.ts';
import { blobStoreSource } from '../../agent/swarm/engine/piece-source.ts';
import { verifyPiece } from '../../agent/swarm/engine/verify.ts';
import { MemoryBlobStore } from '../../agent/store/memory-store.ts';
import { parseDigest } from '../../shared/digest.ts';
import { computeMetainfo, pieceRange, type Metainfo } from '../../shared/swarm/metainfo.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const PIECE = 16 * 1024;
const signal = (): AbortSignal => AbortSignal.timeout(5000);

async function blob(size: number): Promise<{ bytes: Buffer; meta: Metainfo }> {
  const bytes = randomBytes(size);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  return { bytes, meta: await computeMetainfo(digest, [bytes], size, { minPieceLength: PIECE, maxPieceLength: PIECE, targetPieces: 1, originDirectMaxBytes: 0 }) };
}
const pieceOf = (bytes: Buffer, meta: Metainfo, i: number): Buffer => {
  const { offset, length } = pieceRange(meta, i);
  return bytes.subarray(offset, offset + length);
};

describe('PieceFile', () => {
  let dir: string;
  after(async () => {
    if (dir) await removeTempDir(dir);
  });

  test('pieces in any order, persisted bitfield, resume re-verifies claimed pieces', async () => {
    dir = await makeTempDir('piece-file');
    const { bytes, meta } = await blob(5 * PIECE + 77);
    const path = join(dir, 'sub', 'blob');
    const f = await PieceFile.open(path, meta, signal());
    for (const i of [5, 1, 3]) {
      const p = pieceOf(bytes, meta, i);
      await f.writePiece(i, [p.subarray(0, 10), p.subarray(10)], signal());
    }
    assert.deepEqual([...f.have.pieces()], [1, 3, 5]);
    assert.ok((await f.readPiece(3, signal())).equals(pieceOf(bytes, meta, 3)));
    await assert.rejects(f.readPiece(0, signal()), /not verified/);
    await f.close();

    // Simulate a crash that lost piece 3's bytes although the sidecar claims it.
    const fh = await open(path, 'r+');
    await fh.write(Buffer.alloc(100), 0, 100, 3 * PIECE);
    await fh.close();
    const resumed = await PieceFile.open(path, meta, signal());
    assert.deepEqual([...resumed.have.pieces()], [1, 5]);
    for (const i of [0, 2, 3, 4]) await resumed.writePiece(i, [pieceOf(bytes, meta, i)], signal());
    assert.ok(resumed.complete);
    assert.equal(await resumed.digest(signal()), meta.digest);
    assert.ok((await readFile(path)).equals(bytes));
    await resumed.remove();
    assert.equal(existsSync(path), false);
    assert.equal(existsSync(`${path}.pieces`), false);
  });

  test('a sidecar for other metainfo is ignored', async () => {
    dir ??= await makeTempDir('piece-file');
    const { bytes, meta } = await blob(3 * PIECE);
    const path = join(dir, 'other');
    const f = await PieceFile.open(path, meta, signal());
    await f.writePiece(0, [pieceOf(bytes, meta, 0)], signal());
    await f.close();
    const { meta: other } = await blob(3 * PIECE);
    await writeFile(`${path}.pieces`, (await readFile(`${path}.pieces`, 'utf8')).replace(meta.digest, other.digest));
    const g = await PieceFile.open(path, meta, signal());
    assert.equal(g.have.count, 0);
    await g.remove();
  });
});

test('verifyPiece: right bytes pass, a flipped byte or a wrong length fails', async () => {
  const { bytes, meta } = await blob(2 * PIECE + 5);
  const last = pieceOf(bytes, meta, 2);
  assert.deepEqual(verifyPiece(meta, 2, [last]), { ok: true, length: 5 });
  const bad = Buffer.from(last);
  bad[0] = (bad[0] ?? 0) ^ 1;
  assert.equal(verifyPiece(meta, 2, [bad]).ok, false);
  assert.equal(verifyPiece(meta, 2, [last, Buffer.alloc(1)]).ok, false);
});

test('blobStoreSource reads pieces of a stored blob', async () => {
  const { bytes, meta } = await blob(3 * PIECE + 9);
  const store = new MemoryBlobStore({ capBytes: 1 << 20 });
  await store.init();
  const w = await store.createWriter(parseDigest(meta.digest));
  await w.append((async function* () {
    yield bytes;
  })());
  await w.commit();
  const source = await blobStoreSource(store, meta);
  for (let i = 0; i < 4; i++) assert.ok((await source.readPiece(i, signal())).equals(pieceOf(bytes, meta, i)));
  await store.close();
});

test('PeerLinks: both sides keep the connection dialled by the smaller peer id', () => {
  const small = '0'.repeat(40);
  const big = 'f'.repeat(40);
  const conn = (peerId: string, outbound: boolean): PeerConn => ({ peerId, outbound }) as unknown as PeerConn;
  // On the small side: its own dial is preferred.
  const a = new PeerLinks(small);
  a.dials.set(big, new AbortController());
  assert.equal(a.admit(big, false).action, 'reject', 'inbound from big while our preferred dial runs');
  a.conns.set(big, conn(big, false));
  assert.equal(a.admit(big, true).action, 'swap', 'our dial replaces big’s inbound connection');
  // On the big side: the small side's dial (inbound here) is preferred.
  const b = new PeerLinks(big);
  b.dials.set(small, new AbortController());
  assert.equal(b.admit(small, false).action, 'install', 'inbound from small while our dial runs');
  b.conns.set(small, conn(small, false));
  assert.equal(b.admit(small, true).action, 'reject', 'our own dial to small is dropped');
  const c = new PeerLinks(big);
  c.conns.set(small, conn(small, true));
  assert.equal(c.admit(small, false).action, 'swap');
  assert.equal(new PeerLinks(big).admit(small, true).action, 'install');
});

test('peer ids and addresses', () => {
  const id = newPeerId();
  assert.match(id, /^[0-9a-f]{40}$/);
  assert.equal(peerIdFromBytes(peerIdToBytes(id)), id);
  assert.deepEqual(parseAddress('127.0.0.1:7000'), { host: '127.0.0.1', port: 7000 });
  assert.deepEqual(parseAddress('[::1]:7000'), { host: '::1', port: 7000 });
  assert.equal(formatAddress({ host: '::1', port: 7000 }), '[::1]:7000');
  assert.throws(() => parseAddress('::1:7000'));
  assert.throws(() => parseAddress('host:0'));
});
