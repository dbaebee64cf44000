/**
 * containerd registry host configuration (`hosts.toml`), as pure functions.
 *
 * containerd (≥ 1.5) looks up `<hosts-dir>/<host>/hosts.toml` for the registry host of an image reference
 * (`docker.io`, `127.0.0.1:5000`, `[::1]:5000`; on Linux the directory is named exactly like the host, port
 * included), and falls back to `<hosts-dir>/_default/hosts.toml` for hosts without their own directory (containerd
 * versions that know `_default`). In the file:
 *
 * - `server` is the origin. It is tried last, after every `[host."..."]` entry, for pulls *and* for tag resolution
 *   (a mirror that answers 404 or 5xx makes containerd go on to the next host). Without a `server` line the origin is
 *   `https://<host>` (`https://registry-1.docker.io` for docker.io), which is what we rely on for `_default`: the
 *   origin is then always the host of the image being pulled, whichever it is.
 * - `[host."<mirror>"] capabilities = ["pull", "resolve"]` makes the mirror serve blobs/manifests by digest and tag
 *   resolution. containerd adds `?ns=<registry host>` to every request it sends to a mirror, which is how the agent
 *   knows the origin.
 *
 * Origin scheme: containerd defaults to https. We write `http://` for registries the operator lists as insecure
 * (`--insecure-registry`) and for loopback hosts (`localhost`, 127.0.0.0/8, `::1`), which are almost always plain
 * HTTP development registries and cannot be served with a public certificate anyway; containerd itself (1.6.20,
 * checked) and dockerd make the same assumption for loopback registries without configuration. Any other host gets
 * `https://`. A `_default` file cannot name a scheme: containerd then uses https, or http for loopback hosts.
 *
 * Every file we write starts with MANAGED_MARKER so that `configure` recognises its own files and never overwrites
 * or deletes an operator's file without a backup.
 */
import { isIP } from 'node:net';
import { LayerswarmError } from '../../shared/errors.ts';

/** First line of every hosts.toml layerswarm writes. */
export const MANAGED_MARKER = '# managed by layerswarm';

/** Directory containerd consults for registries without a directory of their own. */
export const DEFAULT_HOST = '_default';

/** The registry-host name under which containerd files Docker Hub references. */
export const DOCKER_HUB = 'docker.io';

/** Where Docker Hub's registry API is actually served. */
export const DOCKER_HUB_ORIGIN = 'https://registry-1.docker.io';

/** Default location of containerd's hosts directories (CRI `config_path` and `ctr --hosts-dir` convention). */
export const DEFAULT_HOSTS_DIR = '/etc/containerd/certs.d';

/** Capabilities the mirror gets: everything but push. */
export const MIRROR_CAPABILITIES = ['pull', 'resolve'] as const;

export interface HostsTomlInput {
  /** Registry host as containerd sees it (`docker.io`, `127.0.0.1:5000`) or `_default`. Normalised by normalizeRegistry. */
  readonly registry: string;
  /** Mirror base URL, e.g. `http://127.0.0.1:5050`. Normalised by normalizeMirrorUrl. */
  readonly mirror: string;
  /** Registry hosts (normalised, `host[:port]`) to reach over plain HTTP. */
  readonly insecureRegistries?: readonly string[];
}

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;

function isDnsName(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  return host.split('.').every((label) => DNS_LABEL.test(label));
}

/** Split a normalised `host[:port]` into its parts (IPv6 hosts keep their brackets off). */
export function splitRegistry(registry: string): { host: string; port?: number } {
  const v6 = /^\[([0-9a-f:.]+)\](?::(\d+))?$/.exec(registry);
  if (v6) return v6[2] === undefined ? { host: v6[1] as string } : { host: v6[1] as string, port: Number(v6[2]) };
  const i = registry.lastIndexOf(':');
  if (i < 0) return { host: registry };
  return { host: registry.slice(0, i), port: Number(registry.slice(i + 1)) };
}

/**
 * Validate and normalise a registry host as written on the command line: lower-cased `host[:port]`, IPv6 in
 * brackets, or `_default`. Throws CONFIG_INVALID for anything containerd would not use as a host directory (a
 * scheme, a path, credentials, a bad port).
 */
export function normalizeRegistry(text: string): string {
  const raw = text.trim();
  const bad = (why: string): LayerswarmError =>
    new LayerswarmError('CONFIG_INVALID', `invalid registry ${JSON.stringify(text)}: ${why}`);
  if (raw === DEFAULT_HOST) return DEFAULT_HOST;
  if (raw === '') throw bad('empty');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) throw bad('give the registry host as HOST[:PORT], without a scheme');
  if (/[/@?#\s]/.test(raw)) throw bad('give the registry host as HOST[:PORT], without a path or credentials');
  const lower = raw.toLowerCase();
  let host: string;
  let port: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(lower);
  if (v6) {
    host = v6[1] as string;
    port = v6[2];
    if (isIP(host) !== 6) throw bad('not an IPv6 address in brackets');
  } else {
    const parts = lower.split(':');
    if (parts.length > 2) throw bad('an IPv6 address must be written in brackets, e.g. [::1]:5000');
    host = parts[0] as string;
    port = parts[1];
    if (isIP(host) !== 4 && !isDnsName(host)) throw bad('not a host name or IP address');
  }
  if (port !== undefined) {
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw bad('port must be 1-65535');
    port = String(Number(port));
  }
  const hostPart = v6 ? `[${host}]` : host;
  return port === undefined ? hostPart : `${hostPart}:${port}`;
}

/** Validate and normalise the mirror URL: http(s), no credentials/query/fragment, no trailing slash. */
export function normalizeMirrorUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new LayerswarmError('CONFIG_INVALID', `invalid mirror URL ${JSON.stringify(text)}: expected e.g. http://127.0.0.1:5050`);
  }
  const bad = (why: string): LayerswarmError =>
    new LayerswarmError('CONFIG_INVALID', `invalid mirror URL ${JSON.stringify(text)}: ${why}`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('expected an http:// or https:// URL');
  if (url.username !== '' || url.password !== '') throw bad('credentials are not allowed in the URL');
  if (url.search !== '' || url.hash !== '') throw bad('a query or fragment is not allowed');
  if (url.hostname === '') throw bad('no host');
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/** localhost, 127.0.0.0/8 and ::1. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * The origin URL for the `server` line, or undefined for `_default` (containerd then uses the requested host with
 * its default scheme). `insecureRegistries` must hold normalised hosts; a bare host there also covers every port.
 */
export function originUrl(registry: string, insecureRegistries: readonly string[] = []): string | undefined {
  if (registry === DEFAULT_HOST) return undefined;
  if (registry === DOCKER_HUB) return DOCKER_HUB_ORIGIN;
  const { host } = splitRegistry(registry);
  const hostOnly = host.includes(':') ? `[${host}]` : host;
  const insecure = insecureRegistries.includes(registry) || insecureRegistries.includes(hostOnly) || isLoopbackHost(host);
  return `${insecure ? 'http' : 'https'}://${registry}`;
}

/** A TOML basic string (JSON string escaping is a subset of TOML's). */
function tomlString(text: string): string {
  return JSON.stringify(text);
}

/** The hosts.toml text for one registry. Inputs must be normalised (normalizeRegistry, normalizeMirrorUrl). */
export function renderHostsToml(input: HostsTomlInput): string {
  const server = originUrl(input.registry, input.insecureRegistries);
  const lines = [
    MANAGED_MARKER,
    `# containerd registry hosts for ${input.registry}: pull and resolve through the layerswarm agent,`,
    server === undefined
      ? '# then fall back to the registry of the image being pulled (no server line: containerd\'s default).'
      : '# then fall back to the origin registry (server).',
    '# Written by `layerswarm configure containerd`; `--remove` deletes it and restores any backup.',
    '',
  ];
  if (server !== undefined) lines.push(`server = ${tomlString(server)}`, '');
  lines.push(
    `[host.${tomlString(input.mirror)}]`,
    `  capabilities = [${MIRROR_CAPABILITIES.map(tomlString).join(', ')}]`,
    '',
  );
  return lines.join('\n');
}

/** True when a hosts.toml text was written by layerswarm. */
export function isManagedHostsToml(text: string): boolean {
  return text.split('\n', 1)[0]?.trim() === MANAGED_MARKER;
}

/** The directory name under the hosts dir for a normalised registry (on Linux: the host itself, port included). */
export function hostDirName(registry: string): string {
  return registry;
}
