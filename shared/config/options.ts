/**
 * Declarative command options. One spec per option maps a flag (`--data-dir`), an environment variable
 * (`LAYERSWARM_DATA_DIR`) and a YAML key (`dataDir`) onto one typed field. Precedence: flag > env > file > default.
 * All problems are collected and reported together, once, at startup.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { LayerswarmError } from '../errors.ts';
import { formatBytes, formatDuration, parseBytes, parseDuration } from './units.ts';

export type OptionType = 'string' | 'int' | 'bool' | 'bytes' | 'duration' | 'url' | 'hostport' | 'enum' | 'list';

export interface OptionSpec {
  /** Field name in the config object and key in the YAML file (camelCase). */
  readonly key: string;
  readonly type: OptionType;
  readonly doc: string;
  /** Parsed default; undefined means "no default". */
  readonly default?: unknown;
  readonly required?: boolean;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  /** Placeholder in --help, e.g. DIR (default: from the type). */
  readonly metavar?: string;
  /** Not settable by flag or env (structured YAML-only sections are handled by the caller). */
  readonly fileOnly?: boolean;
}

export interface HostPort {
  host: string;
  port: number;
}

export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

export function envName(key: string): string {
  return `LAYERSWARM_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function describe(value: unknown, type: OptionType): string {
  if (value === undefined) return '';
  if (type === 'bytes' && typeof value === 'number') return formatBytes(value);
  if (type === 'duration' && typeof value === 'number') return formatDuration(value);
  if (type === 'hostport' && typeof value === 'object' && value !== null) {
    const hp = value as HostPort;
    return `${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
  }
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.join(',');
  return String(value);
}

/** Convert one raw value (string from flag/env, or any YAML value) to the option's type. Returns an error text. */
export function coerce(spec: OptionSpec, raw: unknown): { value?: unknown; error?: string } {
  const bad = (what: string): { error: string } => ({ error: `${what}, got ${JSON.stringify(raw)}` });
  switch (spec.type) {
    case 'string':
      return typeof raw === 'string' || typeof raw === 'number' ? { value: String(raw) } : bad('expected a string');
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n)) return bad('expected an integer');
      if (spec.min !== undefined && n < spec.min) return bad(`must be ≥ ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) return bad(`must be ≤ ${spec.max}`);
      return { value: n };
    }
    case 'bool':
      if (typeof raw === 'boolean') return { value: raw };
      if (typeof raw === 'string' && /^(true|1|yes|on)$/i.test(raw)) return { value: true };
      if (typeof raw === 'string' && /^(false|0|no|off)$/i.test(raw)) return { value: false };
      return bad('expected true or false');
    case 'bytes': {
      const n = typeof raw === 'string' || typeof raw === 'number' ? parseBytes(raw) : undefined;
      if (n === undefined) return bad('expected a size such as 512MiB or 10GiB');
      if (spec.min !== undefined && n < spec.min) return bad(`must be ≥ ${formatBytes(spec.min)}`);
      if (spec.max !== undefined && n > spec.max) return bad(`must be ≤ ${formatBytes(spec.max)}`);
      return { value: n };
    }
    case 'duration': {
      const n = typeof raw === 'string' || typeof raw === 'number' ? parseDuration(raw) : undefined;
      if (n === undefined) return bad('expected a duration such as 250ms, 30s, 5m or 1h');
      if (spec.min !== undefined && n < spec.min) return bad(`must be ≥ ${formatDuration(spec.min)}`);
      if (spec.max !== undefined && n > spec.max) return bad(`must be ≤ ${formatDuration(spec.max)}`);
      return { value: n };
    }
    case 'url': {
      if (typeof raw !== 'string') return bad('expected a URL');
      try {
        const u = new URL(raw);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') return bad('expected an http:// or https:// URL');
        return { value: u.toString().replace(/\/$/, '') };
      } catch {
        return bad('expected a URL such as https://registry.example.com');
      }
    }
    case 'hostport': {
      const hp = typeof raw === 'string' ? parseHostPort(raw) : undefined;
      return hp ? { value: hp } : bad('expected HOST:PORT such as 127.0.0.1:5050');
    }
    case 'enum':
      return typeof raw === 'string' && spec.choices?.includes(raw)
        ? { value: raw }
        : bad(`expected one of ${spec.choices?.join(', ')}`);
    case 'list':
      if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return { value: raw };
      if (typeof raw === 'string') return { value: raw.split(',').map((s) => s.trim()).filter(Boolean) };
      return bad('expected a comma-separated list');
  }
}

export interface LoadInput {
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  /** Keys of structured YAML sections the caller reads itself (not listed as options). */
  fileSections?: readonly string[];
  /** Accept positional arguments (else they are an error). */
  allowPositionals?: boolean;
  /** Validate the structured sections; push problems to report them with all the others. */
  validate?: (file: Record<string, unknown>, problems: string[]) => void;
}

export interface Loaded {
  values: Record<string, unknown>;
  /** The whole parsed YAML file ({} without one), for structured sections. */
  file: Record<string, unknown>;
  /** Positional arguments left after flags. */
  positionals: string[];
  help: boolean;
}

/** Parse flags, env and the YAML file named by --config / LAYERSWARM_CONFIG. Throws CONFIG_INVALID listing every problem. */
export function loadOptions(specs: readonly OptionSpec[], input: LoadInput): Loaded {
  const problems: string[] = [];
  const byFlag = new Map(specs.filter((s) => !s.fileOnly).map((s) => [flagName(s.key), s]));
  const fromFlags = new Map<string, string[]>();
  const positionals: string[] = [];
  let configPath = input.env.LAYERSWARM_CONFIG;
  let help = false;
  const argv = [...input.argv];
  while (argv.length > 0) {
    const arg = argv.shift() as string;
    if (arg === '--help' || arg === '-h') { help = true; continue; }
    if (!arg.startsWith('--')) { positionals.push(arg); continue; }
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (flag === '--config') {
      configPath = value ?? argv.shift();
      continue;
    }
    const negated = flag.startsWith('--no-') ? byFlag.get(`--${flag.slice(5)}`) : undefined;
    const spec = byFlag.get(flag) ?? negated;
    if (!spec) { problems.push(`unknown option ${flag}`); continue; }
    if (spec.type === 'bool' && value === undefined) value = negated ? 'false' : 'true';
    if (value === undefined) value = argv.shift();
    if (value === undefined) { problems.push(`${flag} needs a value`); continue; }
    const list = fromFlags.get(spec.key) ?? [];
    list.push(value);
    fromFlags.set(spec.key, list);
  }
  if (help) return { values: {}, file: {}, positionals, help };

  let file: Record<string, unknown> = {};
  if (configPath) {
    try {
      const parsed: unknown = parseYaml(readFileSync(configPath, 'utf8'));
      if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
        problems.push(`config file ${configPath}: expected a mapping at the top level`);
      } else {
        file = (parsed ?? {}) as Record<string, unknown>;
      }
    } catch (err) {
      problems.push(`config file ${configPath}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const known = new Set([...specs.map((s) => s.key), ...(input.fileSections ?? [])]);
  for (const key of Object.keys(file)) if (!known.has(key)) problems.push(`config file ${configPath}: unknown key "${key}"`);

  const values: Record<string, unknown> = {};
  for (const spec of specs) {
    const flagValues = fromFlags.get(spec.key);
    const envValue = spec.fileOnly ? undefined : input.env[envName(spec.key)];
    let raw: unknown;
    let where: string;
    if (flagValues) {
      raw = spec.type === 'list' ? flagValues.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean) : flagValues.at(-1);
      where = flagName(spec.key);
    } else if (envValue !== undefined && envValue !== '') {
      raw = envValue;
      where = envName(spec.key);
    } else if (spec.key in file) {
      raw = file[spec.key];
      where = `${configPath}: ${spec.key}`;
    } else {
      if (spec.default !== undefined) values[spec.key] = spec.default;
      else if (spec.required) problems.push(`${flagName(spec.key)} is required (or ${envName(spec.key)}, or "${spec.key}" in the config file)`);
      continue;
    }
    const { value, error } = coerce(spec, raw);
    if (error) problems.push(`${where}: ${error}`);
    else values[spec.key] = value;
  }
  if (positionals.length > 0 && !input.allowPositionals) problems.push(`unexpected argument ${positionals[0]}`);
  input.validate?.(file, problems);
  if (problems.length > 0) throw configError(problems);
  return { values, file, positionals, help };
}

const METAVARS: Record<OptionType, string> = {
  string: 'TEXT', int: 'N', bool: '', bytes: 'SIZE', duration: 'DURATION', url: 'URL', hostport: 'HOST:PORT', enum: 'VALUE', list: 'A,B,...',
};

export function configError(problems: readonly string[]): LayerswarmError {
  return new LayerswarmError('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`, { detail: problems });
}

/** The --help text: one paragraph per option with its flag, env, YAML key and default. */
export function formatHelp(usage: string, summary: string, specs: readonly OptionSpec[]): string {
  const lines = [`Usage: ${usage}`, '', summary, '', 'Options (flag, environment variable, config file key):', ''];
  lines.push('  --config FILE', '      YAML config file; any option below may be set there by its key. Env: LAYERSWARM_CONFIG.', '');
  for (const spec of specs) {
    const metavar = spec.metavar ?? METAVARS[spec.type];
    const head = spec.fileOnly
      ? `  ${spec.key} (config file only)`
      : spec.type === 'bool'
        ? `  ${flagName(spec.key)}, --no-${flagName(spec.key).slice(2)}`
        : `  ${flagName(spec.key)} ${metavar}`;
    lines.push(head.trimEnd());
    const dflt = spec.default !== undefined ? `Default: ${describe(spec.default, spec.type)}.` : spec.required ? 'Required.' : 'Default: unset.';
    lines.push(`      ${spec.doc} ${dflt}`);
    if (!spec.fileOnly) lines.push(`      Env: ${envName(spec.key)}. File: ${spec.key}.`);
    lines.push('');
  }
  lines.push('  --help', '      Show this help.');
  return lines.join('\n');
}
