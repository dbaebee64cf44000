/**
 * What a swarm's digest is, for humans: the repository (and registry) agents named when they asked for its
 * metainfo. A digest can be in several repositories; the first one named is kept. Bounded LRU.
 */
import { LruMap } from '../shared/lru-map.ts';

export interface SwarmLabel {
  readonly repository: string;
  /** Unset for the agents' default origin registry. */
  readonly registry: string | null;
}

export const MAX_SWARM_LABELS = 20_000;

export class SwarmLabels {
  readonly #labels: LruMap<string, SwarmLabel>;

  constructor(max = MAX_SWARM_LABELS) {
    this.#labels = new LruMap(max);
  }

  get size(): number {
    return this.#labels.size;
  }

  remember(digest: string, repository: string, registry: string | undefined): void {
    if (this.#labels.get(digest) !== undefined) return;
    this.#labels.set(digest, { repository, registry: registry ?? null });
  }

  of(digest: string): SwarmLabel | undefined {
    return this.#labels.get(digest);
  }
}
