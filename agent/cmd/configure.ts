/**
 * `layerswarm configure containerd`: point containerd at the local layerswarm agent by writing hosts.toml files.
 *
 * Exit codes: 0 done, 1 failed while writing (I/O, a conflicting backup), 2 usage error.
 */
import { LayerswarmError, isLayerswarmError } from '../../shared/errors.ts';
import { formatHelp, loadOptions, type OptionSpec } from '../../shared/config/options.ts';
import {
  applyContainerdHosts,
  formatAction,
  removeContainerdHosts,
} from '../containerd/configure.ts';
import { DEFAULT_HOSTS_DIR, normalizeMirrorUrl, normalizeRegistry } from '../containerd/hosts-toml.ts';

export interface CommandIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

const TARGETS = ['containerd'] as const;

const CONTAINERD_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'hostsDir',
    type: 'string',
    metavar: 'DIR',
    default: DEFAULT_HOSTS_DIR,
    doc: 'containerd hosts directory: the CRI plugin\'s registry config_path, or what you pass to `ctr image pull --hosts-dir`.',
  },
  {
    key: 'mirror',
    type: 'string',
    metavar: 'URL',
    doc: 'Base URL of the layerswarm agent\'s registry endpoint, e.g. http://127.0.0.1:5050. Required unless --remove.',
  },
  {
    key: 'registry',
    type: 'list',
    metavar: 'HOST[:PORT]',
    required: true,
    doc:
      'Registry host to pull through the mirror, as it appears in image references: HOST[:PORT] (docker.io, ' +
      'ghcr.io, 127.0.0.1:5000), or _default for every registry without a directory of its own (containerd then ' +
      'falls back to the image\'s own registry: https, plain HTTP for loopback). Repeat the flag or separate ' +
      'with commas.',
  },
  {
    key: 'insecureRegistry',
    type: 'list',
    metavar: 'HOST[:PORT]',
    default: [],
    doc:
      'Registry HOST or HOST:PORT whose origin speaks plain HTTP (server = "http://..."). Loopback registries ' +
      '(localhost, 127.0.0.0/8, ::1) are always treated as plain HTTP; every other origin gets https://, and ' +
      'docker.io gets https://registry-1.docker.io. Repeatable.',
  },
  {
    key: 'remove',
    type: 'bool',
    default: false,
    doc:
      'Delete the hosts.toml files layerswarm wrote for the given registries and put back the ' +
      'hosts.toml.layerswarm-backup saved when they were first written. Files layerswarm did not write are kept.',
  },
];

const CONTAINERD_SUMMARY = [
  'Writes <hosts-dir>/<registry>/hosts.toml for every --registry so that containerd resolves tags and pulls',
  'manifests and blobs through the layerswarm agent (capabilities "pull" and "resolve"), falling back to the origin',
  'registry (server) when the agent cannot answer. An existing hosts.toml not written by layerswarm is saved once to',
  'hosts.toml.layerswarm-backup. Running again changes nothing ("unchanged"). containerd reads these files on every',
  'pull, so no restart is needed; the CRI plugin must have',
  '  [plugins."io.containerd.grpc.v1.cri".registry] config_path = "<hosts-dir>"',
  'and ctr needs --hosts-dir <hosts-dir>.',
  '',
  'Examples:',
  '  layerswarm configure containerd --mirror http://127.0.0.1:5050 --registry docker.io --registry ghcr.io',
  '  layerswarm configure containerd --mirror http://127.0.0.1:5050 --registry registry.lan:5000 \\',
  '      --insecure-registry registry.lan:5000',
  '  layerswarm configure containerd --remove --registry docker.io --registry ghcr.io',
].join('\n');

const USAGE = [
  'Usage: layerswarm configure TARGET [options]',
  '',
  'Configure a container runtime on this node to pull through the layerswarm agent.',
  '',
  'Targets:',
  '  containerd   write containerd hosts.toml files (layerswarm configure containerd --help)',
  '',
].join('\n');

function containerdHelp(): string {
  return formatHelp(
    'layerswarm configure containerd --mirror URL --registry HOST[:PORT]... [--hosts-dir DIR] ' +
      '[--insecure-registry HOST[:PORT]...] [--remove]',
    CONTAINERD_SUMMARY,
    CONTAINERD_OPTIONS,
  );
}

function usageError(message: string): LayerswarmError {
  return new LayerswarmError('CONFIG_INVALID', message);
}

interface ContainerdArgs {
  hostsDir: string;
  mirror: string | undefined;
  registries: string[];
  insecureRegistries: string[];
  remove: boolean;
}

/** Parse and validate `configure containerd` options (after the target word). Throws CONFIG_INVALID. */
export function parseContainerdArgs(argv: readonly string[], env: NodeJS.ProcessEnv): ContainerdArgs | 'help' {
  // The agent's config file (LAYERSWARM_CONFIG) has other keys; only an explicit --config applies here.
  const { LAYERSWARM_CONFIG: _agentConfig, ...ownEnv } = env;
  const loaded = loadOptions(CONTAINERD_OPTIONS, { argv, env: ownEnv });
  if (loaded.help) return 'help';
  const v = loaded.values;
  const remove = v.remove === true;
  const hostsDir = String(v.hostsDir);
  if (hostsDir.trim() === '') throw usageError('--hosts-dir must not be empty');
  let mirror: string | undefined;
  if (typeof v.mirror === 'string') mirror = normalizeMirrorUrl(v.mirror);
  else if (!remove) throw usageError('--mirror URL is required (the layerswarm agent, e.g. http://127.0.0.1:5050)');
  const registries = [...new Set((v.registry as string[]).map(normalizeRegistry))];
  if (registries.length === 0) throw usageError('--registry is required');
  const insecureRegistries = (v.insecureRegistry as string[]).map(normalizeRegistry);
  return { hostsDir, mirror, registries, insecureRegistries, remove };
}

/** Entry point: argv is everything after `configure`. */
export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv,
  io: CommandIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const [target, ...rest] = argv;
  if (target === undefined || target === '--help' || target === '-h' || target === 'help') {
    (target === undefined ? io.stderr : io.stdout).write(USAGE);
    return target === undefined ? 2 : 0;
  }
  if (!(TARGETS as readonly string[]).includes(target)) {
    io.stderr.write(`layerswarm configure: unknown target ${JSON.stringify(target)}\n\n${USAGE}`);
    return 2;
  }

  let args: ContainerdArgs | 'help';
  try {
    args = parseContainerdArgs(rest, env);
  } catch (err) {
    if (isLayerswarmError(err, 'CONFIG_INVALID')) {
      io.stderr.write(`layerswarm configure containerd: ${err.message}\nRun with --help for usage.\n`);
      return 2;
    }
    throw err;
  }
  if (args === 'help') {
    io.stdout.write(`${containerdHelp()}\n`);
    return 0;
  }

  try {
    const actions = args.remove
      ? await removeContainerdHosts({ hostsDir: args.hostsDir, registries: args.registries })
      : await applyContainerdHosts({
          hostsDir: args.hostsDir,
          mirror: args.mirror as string,
          registries: args.registries,
          insecureRegistries: args.insecureRegistries,
        });
    for (const action of actions) io.stdout.write(`${formatAction(action)}\n`);
    return 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    io.stderr.write(`layerswarm configure containerd: ${message}\n`);
    return 1;
  }
}
