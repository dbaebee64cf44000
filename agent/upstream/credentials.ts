/**
 * Credentials: the agent's own, per registry host (agent config `registries` entries, then a Docker config.json's
 * `auths`), and the identity a client request carries in its Authorization header.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { LayerswarmError } from '../../shared/errors.ts';
import type { Credentials, Identity } from './types.ts';

/** Names of Docker Hub, all mapped to "docker.io". */
export const DOCKER_HUB_ALIASES: readonly string[] = ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/'];
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * A registry host as a lookup key: lowercase, no scheme or path (config.json keys may be URLs such as
 * "https://index.docker.io/v1/" or "http://host:5000/v2/"), Docker Hub's aliases → "docker.io".
 */
export function canonicalRegistryHost(hostOrUrl: string): string {
  let host = hostOrUrl.trim().toLowerCase();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//.exec(host);
  if (scheme) host = host.slice(scheme[0].length);
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  return DOCKER_HUB_HOSTS.has(host) ? 'docker.io' : host;
}

/** An agent config `registries` entry (only the fields used here). */
export interface RegistryCredentialEntry {
  readonly host: string;
  readonly username?: string;
  readonly password?: string;
}

/** Credentials by canonical registry host. */
export class CredentialStore {
  readonly #byHost = new Map<string, Credentials>();

  get size(): number {
    return this.#byHost.size;
  }

  get(host: string): Credentials | undefined {
    return this.#byHost.get(canonicalRegistryHost(host));
  }

  /** Add credentials for a host unless it already has some (the first source wins). */
  addIfAbsent(host: string, credentials: Credentials): void {
    const key = canonicalRegistryHost(host);
    if (key !== '' && !this.#byHost.has(key)) this.#byHost.set(key, credentials);
  }

  hosts(): string[] {
    return [...this.#byHost.keys()];
  }
}

/**
 * Credentials from the agent config's registries (first) and a parsed Docker config.json (second). Entries without
 * both a username and a password are skipped.
 */
export function buildCredentialStore(sources: { registries?: readonly RegistryCredentialEntry[]; dockerConfig?: unknown }): CredentialStore {
  const store = new CredentialStore();
  for (const r of sources.registries ?? []) {
    if (r.username !== undefined && r.password !== undefined) store.addIfAbsent(r.host, { username: r.username, password: r.password });
  }
  if (sources.dockerConfig !== undefined) {
    for (const [host, creds] of dockerConfigEntries(sources.dockerConfig)) store.addIfAbsent(host, creds);
  }
  return store;
}

/** Credentials from a Docker config.json's text. Throws CONFIG_INVALID (never quoting a secret). */
export function parseDockerConfig(text: string, source = 'docker config'): CredentialStore {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new LayerswarmError('CONFIG_INVALID', `${source}: not valid JSON`, { cause: err });
  }
  const store = new CredentialStore();
  for (const [host, creds] of dockerConfigEntries(json, source)) store.addIfAbsent(host, creds);
  return store;
}

/** Read and parse a Docker config.json. Throws CONFIG_INVALID when it cannot be read or parsed. */
export async function loadDockerConfigCredentials(path: string): Promise<CredentialStore> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new LayerswarmError('CONFIG_INVALID', `docker config ${path}: cannot read: ${(err as Error).message}`, { cause: err });
  }
  return parseDockerConfig(text, `docker config ${path}`);
}

/**
 * `auths` entries: `{ auth: base64(user:pass) }` or `{ username, password }`. Entries with neither (e.g. `{}` written
 * when a credential helper holds the secret, or identitytoken only) are skipped; a malformed `auth` is an error.
 */
function dockerConfigEntries(json: unknown, source = 'docker config'): Array<[string, Credentials]> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new LayerswarmError('CONFIG_INVALID', `${source}: expected a JSON object`);
  }
  const auths = (json as Record<string, unknown>).auths;
  if (auths === undefined) return [];
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) {
    throw new LayerswarmError('CONFIG_INVALID', `${source}: "auths" must be an object`);
  }
  const out: Array<[string, Credentials]> = [];
  for (const [host, entry] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof entry !== 'object' || entry === null) {
      throw new LayerswarmError('CONFIG_INVALID', `${source}: auths[${JSON.stringify(host)}] must be an object`);
    }
    const e = entry as Record<string, unknown>;
    if (typeof e.auth === 'string' && e.auth !== '') {
      const creds = decodeBasic(e.auth);
      if (creds === undefined) {
        throw new LayerswarmError('CONFIG_INVALID', `${source}: auths[${JSON.stringify(host)}].auth is not base64 of "user:password"`);
      }
      out.push([host, creds]);
    } else if (typeof e.username === 'string' && typeof e.password === 'string') {
      out.push([host, { username: e.username, password: e.password }]);
    }
  }
  return out;
}

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** base64("user:pass") → credentials; undefined when malformed. */
function decodeBasic(encoded: string): Credentials | undefined {
  const b64 = encoded.trim();
  if (b64.length % 4 === 1 || !BASE64_RE.test(b64)) return undefined;
  const bytes = Buffer.from(b64, 'base64');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
  if (hasControlChar(text)) return undefined;
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

function hasControlChar(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

const MAX_AUTHORIZATION_LENGTH = 16 * 1024;
const TOKEN68_RE = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * The identity a client request carries. No header, or Basic with an empty user and password (podman's `Basic Og==`)
 * → the agent acts for it. Basic user:pass → that user; Bearer token → that token, forwarded as is. Keys are hashes.
 * Anything else → UNAUTHORIZED.
 */
export function identityFromAuthorization(header: string | undefined): Identity {
  if (header === undefined) return { kind: 'agent' };
  const value = header.trim();
  if (value === '') return { kind: 'agent' };
  const bad = (why: string): LayerswarmError => new LayerswarmError('UNAUTHORIZED', `malformed Authorization header: ${why}`);
  if (value.length > MAX_AUTHORIZATION_LENGTH) throw bad('too long');
  const m = /^([A-Za-z]+)[ \t]+(\S+)$/.exec(value);
  if (!m) throw bad('expected "<scheme> <credentials>"');
  const scheme = (m[1] as string).toLowerCase();
  const param = m[2] as string;
  if (scheme === 'basic') {
    const creds = decodeBasic(param);
    if (creds === undefined) throw bad('Basic credentials must be base64 of "user:password"');
    if (creds.username === '' && creds.password === '') return { kind: 'agent' };
    return { kind: 'basic', credentials: creds, key: `basic:${sha256Hex32(`${creds.username}:${creds.password}`)}` };
  }
  if (scheme === 'bearer') {
    if (!TOKEN68_RE.test(param)) throw bad('invalid Bearer token');
    return { kind: 'bearer', token: param, key: `bearer:${sha256Hex32(param)}` };
  }
  throw bad(`unsupported scheme ${JSON.stringify(scheme.slice(0, 20))}`);
}

/** Keyed with a per-process random key, so identity keys (which may appear in logs) cannot be brute-forced offline. */
const IDENTITY_KEY = randomBytes(32);

function sha256Hex32(text: string): string {
  return createHmac('sha256', IDENTITY_KEY).update(text, 'utf8').digest('hex').slice(0, 32);
}
