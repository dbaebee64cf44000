/**
 * Image references as users type them: `[HOST[:PORT]/]REPOSITORY[:TAG|@DIGEST]`. The first path component is a
 * registry host when it contains a dot or a colon or is `localhost` (Docker's rule); without one the image is at the
 * component's origin. No tag and no digest means `latest`.
 */
import { parseDigest, parseName, parseTag } from '../../shared/digest.ts';
import { LayerswarmError } from '../../shared/errors.ts';

export interface ImageReference {
  /** Registry host (`host[:port]`), undefined for the origin. */
  readonly registry: string | undefined;
  readonly repository: string;
  /** A tag or a `sha256:` digest. */
  readonly reference: string;
}

const HOST_RE = /^[a-zA-Z0-9.-]{1,253}(:[0-9]{1,5})?$/;

/** Parse an image reference; an explicit `registry` wins over a host in the text. Throws NAME_INVALID / DIGEST_INVALID. */
export function parseImageReference(text: string, registry?: string): ImageReference {
  const image = text.trim();
  if (image === '' || image.length > 600) throw new LayerswarmError('NAME_INVALID', `invalid image reference ${JSON.stringify(text.slice(0, 100))}`);
  let rest = image;
  let host: string | undefined;
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      if (!HOST_RE.test(first)) throw new LayerswarmError('NAME_INVALID', `invalid registry host ${JSON.stringify(first)} in ${JSON.stringify(image)}`);
      host = first;
      rest = rest.slice(slash + 1);
    }
  }
  let reference = 'latest';
  const at = rest.indexOf('@');
  if (at >= 0) {
    reference = parseDigest(rest.slice(at + 1)).value;
    rest = rest.slice(0, at);
    // repo:tag@digest: the digest decides.
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) rest = rest.slice(0, colon);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) {
      reference = parseTag(rest.slice(colon + 1));
      rest = rest.slice(0, colon);
    }
  }
  if (registry !== undefined && !HOST_RE.test(registry)) throw new LayerswarmError('NAME_INVALID', `invalid registry host ${JSON.stringify(registry)}`);
  return { registry: registry ?? host, repository: parseName(rest), reference };
}

/** `host/repo:tag` or `repo@digest` again, for messages. */
export function formatImageReference(ref: ImageReference): string {
  const sep = ref.reference.startsWith('sha256:') ? '@' : ':';
  return `${ref.registry ? `${ref.registry}/` : ''}${ref.repository}${sep}${ref.reference}`;
}
