/**
 * OCI identifiers: digests, repository names and tags, validated against the distribution-spec grammar.
 * Anything that reaches a file path or an upstream URL has passed through here first.
 */
import { createHash, type Hash } from 'node:crypto';
import { LayerswarmError } from './errors.ts';

export const SHA256_HEX_LENGTH = 64;
/** distribution's limit on a repository name. */
export const MAX_NAME_LENGTH = 255;
const DIGEST_RE = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;
const SHA256_HEX_RE = /^[a-f0-9]{64}$/;
const NAME_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** A validated sha256 digest. `hex` is safe to use as a file name. */
export interface Digest {
  readonly algorithm: 'sha256';
  readonly hex: string;
  /** "sha256:<hex>" */
  readonly value: string;
}

export function parseDigest(input: string): Digest {
  if (input.length > 200) throw new LayerswarmError('DIGEST_INVALID', 'digest is too long', { detail: { length: input.length } });
  const m = DIGEST_RE.exec(input);
  if (!m) throw new LayerswarmError('DIGEST_INVALID', `invalid digest ${JSON.stringify(input)}`);
  const [, algorithm, hex] = m as unknown as [string, string, string];
  if (algorithm !== 'sha256') {
    throw new LayerswarmError('UNSUPPORTED', `digest algorithm ${JSON.stringify(algorithm)} is not supported (only sha256)`);
  }
  if (!SHA256_HEX_RE.test(hex)) {
    throw new LayerswarmError('DIGEST_INVALID', `sha256 digest must be 64 lowercase hex characters, got ${hex.length}`);
  }
  return { algorithm: 'sha256', hex, value: `sha256:${hex}` };
}

export function isDigestReference(ref: string): boolean {
  return ref.includes(':');
}

export function parseName(name: string): string {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) {
    throw new LayerswarmError('NAME_INVALID', `repository name must be 1 to ${MAX_NAME_LENGTH} characters`, {
      detail: { length: name.length },
    });
  }
  if (!NAME_RE.test(name)) throw new LayerswarmError('NAME_INVALID', `invalid repository name ${JSON.stringify(name)}`);
  return name;
}

export function parseTag(tag: string): string {
  if (!TAG_RE.test(tag)) throw new LayerswarmError('NAME_INVALID', `invalid tag ${JSON.stringify(tag.slice(0, 200))}`);
  return tag;
}

/** A manifest reference: a tag, or a digest. */
export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

export function parseReference(ref: string): Reference {
  return isDigestReference(ref) ? { kind: 'digest', digest: parseDigest(ref) } : { kind: 'tag', tag: parseTag(ref) };
}

export function sha256Hasher(): Hash {
  return createHash('sha256');
}

export function sha256Digest(data: Uint8Array | string): Digest {
  const hex = createHash('sha256').update(data).digest('hex');
  return { algorithm: 'sha256', hex, value: `sha256:${hex}` };
}
