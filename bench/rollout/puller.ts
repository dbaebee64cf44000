/**
 * What a container runtime does to pull an image through a mirror: GET the manifest by tag (OCI/Docker Accept
 * types), then the config and every layer concurrently; each body is hashed as it streams and must match its
 * digest and size. Throws on the first mismatch or error.
 */
import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';

const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** No client-side timeouts: a cold blob is served only once the agent holds it verified, which can take minutes. */
export const PULL_DISPATCHER = new Agent({ headersTimeout: 0, bodyTimeout: 0, connections: 16, keepAliveTimeout: 30_000 });

export interface PullResult {
  /** Blobs verified (config + layers). */
  readonly blobs: number;
  /** Bytes of verified blobs. */
  readonly bytes: number;
}

interface Descriptor {
  digest: string;
  size: number;
}

async function getVerified(url: string, expect: Descriptor, signal: AbortSignal, onBytes: (n: number) => void): Promise<void> {
  const res = await request(url, { dispatcher: PULL_DISPATCHER, signal });
  if (res.statusCode !== 200) {
    const text = (await res.body.text()).slice(0, 300);
    throw new Error(`GET ${url}: ${res.statusCode} ${text}`);
  }
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
    onBytes(chunk.length);
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (digest !== expect.digest || size !== expect.size) throw new Error(`GET ${url}: got ${digest} (${size} bytes), expected ${expect.digest} (${expect.size} bytes)`);
}

/**
 * Pull `repository:tag` through the registry endpoint at `baseUrl`; every blob's sha256 checked. `verified` carries
 * the digests already verified across attempts (a retry, like a runtime's, fetches only what is still missing).
 */
export async function pullImage(baseUrl: string, repository: string, tag: string, signal: AbortSignal, onBytes: (n: number) => void = () => {}, verified = new Set<string>()): Promise<PullResult> {
  const res = await request(`${baseUrl}/v2/${repository}/manifests/${tag}`, { dispatcher: PULL_DISPATCHER, headers: { accept: ACCEPT }, signal });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200) throw new Error(`GET manifest ${repository}:${tag}: ${res.statusCode} ${bytes.toString('utf8').slice(0, 300)}`);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const header = res.headers['docker-content-digest'];
  if (typeof header === 'string' && header !== digest) throw new Error(`manifest digest ${digest} ≠ Docker-Content-Digest ${header}`);
  const manifest = JSON.parse(bytes.toString('utf8')) as { config?: Descriptor; layers?: Descriptor[] };
  if (manifest.config === undefined || manifest.layers === undefined) throw new Error(`${repository}:${tag} is not an image manifest`);
  const blobs = [manifest.config, ...manifest.layers];
  await Promise.all(blobs.filter((b) => !verified.has(b.digest)).map(async (b) => {
    await getVerified(`${baseUrl}/v2/${repository}/blobs/${b.digest}`, b, signal, onBytes);
    verified.add(b.digest);
  }));
  return { blobs: blobs.length, bytes: blobs.reduce((a, b) => a + b.size, 0) };
}
