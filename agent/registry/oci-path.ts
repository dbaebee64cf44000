/** Parse the distribution API paths the mirror serves: /v2/<name>/manifests/<reference> and /v2/<name>/blobs/<digest>. */
import { LayerswarmError } from '../../shared/errors.ts';
import { MAX_NAME_LENGTH, parseName } from '../../shared/digest.ts';

export interface OciPath {
  name: string;
  kind: 'manifests' | 'blobs';
  reference: string;
}

const PATH_RE = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;
/** Looser form, to give a precise error for references containing "/" (e.g. "sha256:../../x"). */
const LOOSE_RE = /^\/v2\/(.+?)\/(manifests|blobs)\/(.+)$/;

/** `path` is the raw URL path (no query). Throws NAME_INVALID / UNSUPPORTED for anything else under /v2/. */
export function parseOciPath(path: string): OciPath {
  if (path.length > MAX_NAME_LENGTH + 300) throw new LayerswarmError('NAME_INVALID', 'request path is too long');
  if (path.includes('%')) throw new LayerswarmError('NAME_INVALID', 'percent-encoded characters are not valid in repository names or references');
  const m = PATH_RE.exec(path);
  const loose = m ? undefined : LOOSE_RE.exec(path);
  if (loose && !loose[3]?.startsWith('uploads')) {
    throw loose[2] === 'blobs'
      ? new LayerswarmError('DIGEST_INVALID', `invalid digest ${JSON.stringify(loose[3]?.slice(0, 200))}`)
      : new LayerswarmError('NAME_INVALID', `invalid manifest reference ${JSON.stringify(loose[3]?.slice(0, 200))}`);
  }
  if (!m) throw new LayerswarmError('UNSUPPORTED', `unsupported registry API path ${JSON.stringify(path.slice(0, 200))} (this mirror serves pulls only)`);
  const [, name, kind, reference] = m as unknown as [string, string, 'manifests' | 'blobs', string];
  return { name: parseName(name), kind, reference };
}
