/** Machine and tool description recorded with every benchmark result. */
import { readFile } from 'node:fs/promises';
import { arch, availableParallelism, cpus, freemem, hostname, loadavg, release, totalmem } from 'node:os';
import { run } from '../../test/fixtures/process.ts';

export interface MachineInfo {
  hostname: string;
  os: string;
  kernel: string;
  arch: string;
  cpuModel: string;
  /** Logical CPUs (os.cpus()). */
  cores: number;
  /** CPUs this process may run on (cgroup/affinity aware). */
  availableParallelism: number;
  cpuFlags: { sha_ni: boolean; avx2: boolean };
  memTotalMiB: number;
  memFreeMiB: number;
  /** 1/5/15-minute load averages when the run started: a busy machine skews every number. */
  loadAvg: number[];
  node: string;
  v8: string;
  tools: Record<string, string>;
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run(cmd, args, { timeoutMs: 10_000 });
    return (stdout || stderr).split('\n')[0]?.trim() ?? '';
  } catch {
    return 'unavailable';
  }
}

async function osName(): Promise<string> {
  try {
    const text = await readFile('/etc/os-release', 'utf8');
    return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text)?.[1] ?? 'linux';
  } catch {
    return 'unknown';
  }
}

export async function machineInfo(): Promise<MachineInfo> {
  const cpuList = cpus();
  const flags = await readFile('/proc/cpuinfo', 'utf8').then((t) => /^flags\s*:(.*)$/m.exec(t)?.[1] ?? '', () => '');
  const [curl, skopeo, registry] = await Promise.all([
    firstLine('curl', ['--version']),
    firstLine('skopeo', ['--version']),
    firstLine('docker-registry', ['--version']),
  ]);
  return {
    hostname: hostname(),
    os: await osName(),
    kernel: release(),
    arch: arch(),
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    availableParallelism: availableParallelism(),
    cpuFlags: { sha_ni: /\bsha_ni\b/.test(flags), avx2: /\bavx2\b/.test(flags) },
    memTotalMiB: Math.round(totalmem() / 2 ** 20),
    memFreeMiB: Math.round(freemem() / 2 ** 20),
    loadAvg: loadavg().map((l) => Math.round(l * 100) / 100),
    node: process.version,
    v8: process.versions.v8,
    tools: { curl, skopeo, 'docker-registry': registry },
  };
}
