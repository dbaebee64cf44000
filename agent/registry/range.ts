/** HTTP Range for blob GETs: a single byte range (RFC 9110). Several ranges are answered with the whole blob. */
import { LayerswarmError } from '../../shared/errors.ts';
import type { ByteRange } from '../store/blob-store.ts';

/** undefined → serve the whole blob (no Range, or a form we ignore). Throws RANGE_NOT_SATISFIABLE. */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) {
    if (/^bytes=[\d\s,-]+$/.test(header.trim())) return undefined; // multiple ranges: send it all (allowed by RFC 9110)
    throw unsatisfiable(header, size);
  }
  const [, first, last] = m as unknown as [string, string, string];
  if (first === '' && last === '') throw unsatisfiable(header, size);
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) throw unsatisfiable(header, size);
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || end < start) throw unsatisfiable(header, size);
  return { start, end };
}

function unsatisfiable(header: string, size: number): LayerswarmError {
  return new LayerswarmError('RANGE_NOT_SATISFIABLE', `range ${JSON.stringify(header.slice(0, 100))} is not satisfiable for a blob of ${size} bytes`, {
    headers: { 'Content-Range': `bytes */${size}` },
    detail: { size },
  });
}
