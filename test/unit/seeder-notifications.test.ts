// Registry push notifications: envelopes shaped exactly as distribution 2.8 sends them (captured from
// `docker-registry serve` with a notifications endpoint while skopeo pushed an image), strict validation.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { blobsOfManifest, parseNotification, RequestInvalidError } from '../../agent/seeder/notifications.ts';

const LAYER = 'sha256:0c845c8a123ae0dcf104262cc5cde80aefa27262ff02ed48374e03fcd6235e77';
const MANIFEST = 'sha256:911ca7a4337adebe51fa0b0c4442edee032b9c29008ef28589027c24de3ac68a';
const CONFIG = 'sha256:3708fb1f2f328826d793545d62f3b884d4ee568f54cb8e438674d9b1d0188d92';

function event(action: string, target: Record<string, unknown>): Record<string, unknown> {
  return {
    id: 'f38d9d3d-659f-4f99-a974-9d6588489f8a',
    timestamp: '2026-11-22T17:26:03.215177799Z',
    action,
    target,
    request: { id: 'e9489fea-94dc-4736-a80d-df6a14f5c996', addr: '127.0.0.1:53110', host: '127.0.0.1:36965', method: action === 'push' ? 'PUT' : 'GET', useragent: 'skopeo/1.9.3' },
    actor: {},
    source: { addr: 'vm:36965', instanceID: '3fd1fc4c-02d7-491f-b1d0-9a99f27d702a' },
  };
}

const blobPush = event('push', {
  mediaType: 'application/octet-stream', size: 5245229, digest: LAYER, length: 5245229, repository: 'test/app',
  url: `http://127.0.0.1:36965/v2/test/app/blobs/${LAYER}`,
});
const manifestPush = event('push', {
  mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 560, digest: MANIFEST, length: 560, repository: 'test/app',
  url: `http://127.0.0.1:36965/v2/test/app/manifests/${MANIFEST}`, tag: '1',
});
const manifestPull = event('pull', { ...(manifestPush.target as object) });
const indexPush = event('push', {
  mediaType: 'application/vnd.oci.image.index.v1+json', size: 400, digest: MANIFEST, length: 400, repository: 'test/app',
  url: `http://127.0.0.1:36965/v2/test/app/manifests/${MANIFEST}`, tag: 'multi',
});

describe('parseNotification', () => {
  test('a blob push (one event per envelope, as distribution sends them)', () => {
    assert.deepEqual(parseNotification({ events: [blobPush] }), {
      targets: [{ kind: 'blob', digest: LAYER, repository: 'test/app', mediaType: 'application/octet-stream', size: 5245229 }],
      ignored: 0,
    });
  });

  test('an image manifest push; docker v2 manifests too', () => {
    const { targets } = parseNotification({ events: [manifestPush] });
    assert.deepEqual(targets, [{ kind: 'manifest', digest: MANIFEST, repository: 'test/app', mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 560 }]);
    const docker = event('push', { ...(manifestPush.target as object), mediaType: 'application/vnd.docker.distribution.manifest.v2+json' });
    assert.equal(parseNotification({ events: [docker] }).targets[0]?.kind, 'manifest');
  });

  test('pulls, mounts, deletes, index and schema1 pushes are ignored', () => {
    const mount = event('mount', { ...(blobPush.target as object) });
    const schema1 = event('push', { ...(manifestPush.target as object), mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws' });
    assert.deepEqual(parseNotification({ events: [manifestPull, mount, indexPush, schema1, blobPush] }).ignored, 4);
    assert.deepEqual(parseNotification({ events: [] }), { targets: [], ignored: 0 });
  });

  test('several events in one envelope keep their order', () => {
    const { targets } = parseNotification({ events: [blobPush, manifestPull, manifestPush] });
    assert.deepEqual(targets.map((t) => t.kind), ['blob', 'manifest']);
  });

  test('malformed envelopes are rejected with REQUEST_INVALID', () => {
    const bad: unknown[] = [
      null, 'events', [], {}, { events: {} }, { events: [null] }, { events: [{ action: 'push' }] },
      { events: [{ target: blobPush.target }] },
      { events: [event('push', { ...(blobPush.target as object), digest: 'sha256:xyz' })] },
      { events: [event('push', { ...(blobPush.target as object), digest: 'md5:0c845c8a' })] },
      { events: [event('push', { ...(blobPush.target as object), repository: '../etc' })] },
      { events: [event('push', { ...(blobPush.target as object), repository: undefined })] },
      { events: [event('push', { ...(blobPush.target as object), mediaType: 7 })] },
      { events: [event('push', { ...(blobPush.target as object), size: -1, length: -1 })] },
      { events: [event('push', { ...(blobPush.target as object), size: '12' })] },
      { events: Array.from({ length: 1001 }, () => manifestPull) },
    ];
    for (const body of bad) {
      assert.throws(() => parseNotification(body), (e) => e instanceof RequestInvalidError && e.wireCode === 'REQUEST_INVALID' && e.status === 400, JSON.stringify(body)?.slice(0, 200));
    }
  });
});

describe('blobsOfManifest', () => {
  test('config first, then layers, with sizes', () => {
    const manifest = {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: CONFIG, size: 600 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: LAYER, size: 5245229 }],
    };
    assert.deepEqual(blobsOfManifest(Buffer.from(JSON.stringify(manifest))), [
      { digest: CONFIG, size: 600, mediaType: 'application/vnd.oci.image.config.v1+json' },
      { digest: LAYER, size: 5245229, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
    ]);
  });

  test('not an image manifest → MANIFEST_INVALID', () => {
    for (const body of ['nope', '[]', '{"manifests":[]}', `{"config":{"digest":"${CONFIG}"},"layers":[{"digest":"bad"}]}`]) {
      assert.throws(() => blobsOfManifest(Buffer.from(body)), (e: { code?: string }) => e.code === 'MANIFEST_INVALID' || e.code === 'DIGEST_INVALID');
    }
  });
});
