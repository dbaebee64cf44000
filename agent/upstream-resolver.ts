/**
 * Which upstream registry a request is for. containerd names it with `?ns=<host>`; Docker's registry-mirrors and
 * podman send none, which means the configured default origin. Hosts that are neither the origin nor configured are
 * refused (404, so containerd falls back to the origin itself) unless allowAnyRegistry is set: an open proxy to any
 * host would be a server-side request forgery hole.
 */
import { LayerswarmError } from '../shared/errors.ts';
import type { Credentials, UpstreamRegistry } from './upstream/types.ts';
import type { RegistryConfig } from './config.ts';
import { canonicalRegistryHost as canonicalHost } from './upstream/credentials.ts';

const DOCKER_HUB_URL = 'https://registry-1.docker.io';

export interface ResolverOptions {
  origin: string;
  registries: readonly RegistryConfig[];
  allowAnyRegistry: boolean;
  /** Credentials from a Docker config.json, by host. */
  credentialsFor?: (host: string) => Credentials | undefined;
}

export class UpstreamResolver {
  readonly #byHost = new Map<string, UpstreamRegistry>();
  readonly #default: UpstreamRegistry;
  readonly #options: ResolverOptions;

  constructor(options: ResolverOptions) {
    this.#options = options;
    const originUrl = new URL(options.origin);
    const originHost = canonicalHost(originUrl.host);
    for (const r of options.registries) this.#add(r.host, r.url, r.username !== undefined && r.password !== undefined ? { username: r.username, password: r.password } : undefined);
    this.#default = this.#byHost.get(canonicalHost(originHost)) ?? this.#add(originHost, options.origin.replace(/\/$/, ''), undefined);
  }

  get defaultRegistry(): UpstreamRegistry {
    return this.#default;
  }

  /** The registry for a request's `ns` query parameter (undefined → the default origin). */
  resolve(ns: string | undefined): UpstreamRegistry {
    if (ns === undefined || ns === '') return this.#default;
    if (!/^[a-zA-Z0-9.-]+(:\d{1,5})?$/.test(ns) || ns.length > 255) {
      throw new LayerswarmError('NAME_INVALID', `invalid ns parameter ${JSON.stringify(ns.slice(0, 100))}`);
    }
    const known = this.#byHost.get(canonicalHost(ns));
    if (known) return known;
    if (!this.#options.allowAnyRegistry) {
      throw new LayerswarmError('REGISTRY_NOT_ALLOWED', `registry ${ns} is not configured on this mirror`, { detail: { ns } });
    }
    return this.#add(ns, `https://${ns}`, undefined);
  }

  #add(host: string, url: string, credentials: Credentials | undefined): UpstreamRegistry {
    const key = canonicalHost(host);
    const dockerHub = key === 'docker.io';
    const creds = credentials ?? this.#options.credentialsFor?.(key);
    const registry: UpstreamRegistry = {
      host: key,
      baseUrl: dockerHub && url === `https://${host}` ? DOCKER_HUB_URL : url,
      dockerHub,
      ...(creds ? { credentials: creds } : {}),
    };
    this.#byHost.set(key, registry);
    return registry;
  }
}

