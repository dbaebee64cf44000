/**
 * `WWW-Authenticate` parsing (RFC 9110 §11.6.1): one header may carry several challenges, each a scheme followed by
 * either a token68 or a comma-separated list of `name=value` parameters (value a token or a quoted-string, commas
 * allowed inside quotes). Scheme and parameter names are case-insensitive; values keep their case.
 *
 * Pure and forgiving: a malformed challenge (unterminated quote, missing value, stray characters) is dropped together
 * with everything after it in that header, so a half-parsed realm is never used. Never throws.
 */

export interface BasicChallenge {
  readonly scheme: 'basic';
  readonly realm?: string;
  readonly params: Readonly<Record<string, string>>;
}

export interface BearerChallenge {
  readonly scheme: 'bearer';
  /** Token service URL (unvalidated here; see auth.ts). Absent in RFC 6750 error-only challenges. */
  readonly realm?: string;
  readonly service?: string;
  readonly scope?: string;
  /** RFC 6750 error, e.g. "insufficient_scope" or "invalid_token". */
  readonly error?: string;
  readonly params: Readonly<Record<string, string>>;
}

export interface OtherChallenge {
  readonly scheme: 'other';
  /** The scheme as sent, lowercased. */
  readonly name: string;
  readonly token68?: string;
  readonly params: Readonly<Record<string, string>>;
}

export type Challenge = BasicChallenge | BearerChallenge | OtherChallenge;

/** RFC 9110 tchar. */
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
/** token68 characters, plus the tchars a parameter name may use. */
const TOKEN68_CHAR = /[-._~+/0-9A-Za-z]/;
/** Headers longer than this are not parsed at all (an origin has no reason to send more). */
export const MAX_CHALLENGE_HEADER_LENGTH = 16 * 1024;

interface Raw {
  name: string;
  token68?: string;
  params: Record<string, string>;
}

/** Parse one or several `WWW-Authenticate` header values into typed challenges, in order. */
export function parseWwwAuthenticate(header: string | readonly string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = typeof header === 'string' ? [header] : header;
  const out: Challenge[] = [];
  for (const value of values) {
    if (value.length > MAX_CHALLENGE_HEADER_LENGTH) continue;
    for (const raw of parseRaw(value)) out.push(typed(raw));
  }
  return out;
}

/**
 * The challenge to answer: a Bearer challenge with a realm first (token auth works for every identity), else Basic.
 * Undefined when there is neither.
 */
export function selectChallenge(challenges: readonly Challenge[]): BearerChallenge | BasicChallenge | undefined {
  const bearer = challenges.find((c): c is BearerChallenge => c.scheme === 'bearer' && c.realm !== undefined);
  return bearer ?? challenges.find((c): c is BasicChallenge => c.scheme === 'basic');
}

/**
 * A challenge as a header value, e.g. to relay a remembered challenge for another repository: Bearer with its realm,
 * service and the given scope (its own when undefined, none when ""); Basic with its realm.
 */
export function formatChallenge(challenge: BasicChallenge | BearerChallenge, scope?: string): string {
  const params: Array<[string, string | undefined]> =
    challenge.scheme === 'basic'
      ? [['realm', challenge.realm]]
      : [['realm', challenge.realm], ['service', challenge.service], ['scope', scope ?? challenge.scope]];
  const text = params
    .filter((p): p is [string, string] => p[1] !== undefined && p[1] !== '')
    .map(([k, v]) => `${k}="${v.replace(/["\\]/g, '\\$&')}"`)
    .join(',');
  const name = challenge.scheme === 'basic' ? 'Basic' : 'Bearer';
  return text === '' ? name : `${name} ${text}`;
}

function typed(raw: Raw): Challenge {
  const params = raw.params;
  if (raw.name === 'basic' && raw.token68 === undefined) {
    return { scheme: 'basic', params, ...(params.realm !== undefined ? { realm: params.realm } : {}) };
  }
  if (raw.name === 'bearer' && raw.token68 === undefined) {
    return {
      scheme: 'bearer',
      params,
      ...(params.realm !== undefined ? { realm: params.realm } : {}),
      ...(params.service !== undefined ? { service: params.service } : {}),
      ...(params.scope !== undefined ? { scope: params.scope } : {}),
      ...(params.error !== undefined ? { error: params.error } : {}),
    };
  }
  return { scheme: 'other', name: raw.name, params, ...(raw.token68 !== undefined ? { token68: raw.token68 } : {}) };
}

/** A small cursor-based parser over one header value. */
function parseRaw(s: string): Raw[] {
  const out: Raw[] = [];
  let i = 0;
  const ws = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  /** Skip whitespace and empty list elements (`, ,`). */
  const listSep = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === ',')) i++;
  };
  const run = (accept: RegExp | ((c: string) => boolean)): string | undefined => {
    const start = i;
    const ok = typeof accept === 'function' ? accept : (c: string): boolean => accept.test(c);
    while (i < s.length && ok(s[i] as string)) i++;
    return i > start ? s.slice(start, i) : undefined;
  };
  const quoted = (): string | undefined => {
    i++; // opening quote
    let v = '';
    while (i < s.length) {
      const c = s[i] as string;
      if (c === '"') {
        i++;
        return v;
      }
      if (c === '\\') {
        if (i + 1 >= s.length) return undefined;
        const n = s[i + 1] as string;
        if (isCtl(n)) return undefined;
        v += n;
        i += 2;
        continue;
      }
      if (isCtl(c)) return undefined;
      v += c;
      i++;
    }
    return undefined; // unterminated
  };

  listSep();
  while (i < s.length) {
    const scheme = run(TCHAR);
    if (scheme === undefined) return out;
    const raw: Raw = { name: scheme.toLowerCase(), params: {} };
    const hadSpace = s[i] === ' ' || s[i] === '\t';
    ws();
    if (i < s.length && s[i] !== ',') {
      if (!hadSpace || !parseRest(raw)) return out;
    }
    out.push(raw);
    listSep();
  }
  return out;

  /** After `scheme SP`: a token68 or auth-params, up to the next challenge. False when malformed. */
  function parseRest(raw: Raw): boolean {
    const t68 = run(TOKEN68_CHAR);
    if (t68 === undefined) return false;
    const eq = i;
    while (s[i] === '=') i++;
    const afterEq = i;
    ws();
    if (i >= s.length || s[i] === ',') {
      // `scheme token68[=…]` alone.
      raw.token68 = t68 + s.slice(eq, afterEq);
      return true;
    }
    // Not a token68: the first auth-param. Rewind to just after its name.
    i = eq;
    let name: string | undefined = t68;
    for (;;) {
      if (name === undefined || !TCHAR_ONLY.test(name)) return false;
      ws();
      if (s[i] !== '=') return false;
      i++;
      ws();
      const value = s[i] === '"' ? quoted() : run(isUnquotedChar);
      if (value === undefined) return false;
      const key = name.toLowerCase();
      if (key !== '__proto__' && !Object.hasOwn(raw.params, key)) raw.params[key] = value;
      ws();
      if (i >= s.length) return true;
      if (s[i] !== ',') return false;
      listSep();
      if (i >= s.length) return true;
      // Another parameter (`name [ws] =`) or the next challenge's scheme.
      const look = i;
      name = run(TCHAR);
      ws();
      if (name === undefined || s[i] !== '=') {
        i = look;
        return true;
      }
      i = look + name.length;
    }
  }
}

function isCtl(c: string): boolean {
  const code = c.charCodeAt(0);
  return (code < 0x20 && c !== '\t') || code === 0x7f;
}

const TCHAR_ONLY = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Unquoted values: RFC tokens, leniently widened to URLs some origins send unquoted (`realm=https://…/token`). */
function isUnquotedChar(c: string): boolean {
  return c !== '"' && c !== ',' && !/\s/.test(c) && !isCtl(c);
}
