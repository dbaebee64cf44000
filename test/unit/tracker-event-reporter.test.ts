// EventReporter (the agent's side of POST /v1/events): batches events and bytes, nothing sent when idle, a failed
// report keeps its bytes and drops its events, the queue is bounded, close() sends what is left.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../shared/logging.ts';
import { TrackerError } from '../../tracker/errors.ts';
import { EventReporter } from '../../tracker/event-reporter.ts';
import type { EventsBody } from '../../tracker/schemas.ts';

const PEER = 'a'.repeat(40);

function reporter(fail: () => boolean, maxQueued = 500): { r: EventReporter; sent: EventsBody[] } {
  const sent: EventsBody[] = [];
  const r = new EventReporter({
    peerId: PEER, zone: 'z1', logger: silentLogger(), flushIntervalMs: 3_600_000, maxQueued,
    client: {
      postEvents: async (body) => {
        if (fail()) throw new TrackerError('TRACKER_UNAVAILABLE', 'down');
        sent.push(body);
        return { accepted: body.events?.length ?? 0, dropped: 0 };
      },
    },
  });
  return { r, sent };
}

describe('EventReporter', () => {
  test('batches events and bytes into one report; nothing is sent when there is nothing to say', async () => {
    const { r, sent } = reporter(() => false);
    await r.flush();
    assert.equal(sent.length, 0);
    r.event('fallback', `sha256:${'b'.repeat(64)}`, 'no_peers');
    r.event('peer_banned');
    r.bytes('peers', 100);
    r.bytes('origin', 30);
    r.bytes('peers', 5);
    await r.flush();
    assert.equal(sent.length, 1);
    assert.deepEqual({ ...sent[0], events: sent[0]?.events?.map((e) => ({ ...e, at: 0 })) }, {
      peerId: PEER, zone: 'z1', bytes: { peers: 105, origin: 30 },
      events: [{ kind: 'fallback', digest: `sha256:${'b'.repeat(64)}`, reason: 'no_peers', at: 0 }, { kind: 'peer_banned', at: 0 }],
    });
    await r.flush();
    assert.equal(sent.length, 1);
    await r.close();
  });

  test('a failed report keeps its bytes for the next one; the queue is bounded; close sends the rest', async () => {
    let down = true;
    const { r, sent } = reporter(() => down, 3);
    for (let i = 0; i < 5; i++) r.event('bad_piece');
    assert.equal(r.dropped, 2);
    r.bytes('origin', 7);
    await r.flush();
    assert.equal(sent.length, 0);
    down = false;
    r.event('peer_banned');
    await r.close();
    assert.deepEqual(sent.map((b) => [b.bytes, b.events?.map((e) => e.kind)]), [[{ peers: 0, origin: 7 }, ['peer_banned']]]);
    r.event('bad_piece');
    await r.flush();
    assert.equal(sent.length, 1, 'nothing queued after close');
  });
});
