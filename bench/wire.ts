/**
 * `npm run bench:wire`: throughput of the swarm wire protocol against a plain node:net baseline, same run.
 *
 * A sender process streams a blob (default 1 GiB, held in memory) as Piece messages over the TCP transport to a
 * receiver process that verifies each piece's sha256 as it arrives; the baseline sends the same blob as plain
 * 4-byte length-prefixed frames over node:net to a receiver that hashes each frame as it streams in. Modes are
 * interleaved (order alternating by repetition) for each piece length (default 1 and 4 MiB). Time = receiver side,
 * from accepting the connection to the last piece verified.
 *
 * Options: --size-mib N (1024), --reps N (3), --pieces-mib 1,4, --window N (sends in flight, 4), --out DIR.
 * Writes bench/results/wire-<time>.json and wire-latest.json; prints a table and the wire/net ratio (target ≥ 0.85).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineInfo } from './lib/machine.ts';
import { humanBytes, MiB, round, summarize, type Summary } from './lib/stats.ts';
import { fixed, formatTable } from './lib/table.ts';
import { runReceiver, runSender, type FromReceiver, type FromSender, type Mode, type ToReceiver, type ToSender } from './lib/wire-peer.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const TARGET_RATIO = 0.85;

interface Options {
  sizeBytes: number;
  reps: number;
  pieceLengths: number[];
  window: number;
  outDir: string;
}

function parseOptions(argv: string[]): Options {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const int = (name: string, fallback: number): number => {
    const v = get(name);
    const n = v === undefined ? fallback : Number(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
    return n;
  };
  const pieces = (get('pieces-mib') ?? '1,4').split(',').map((s) => Number(s) * MiB);
  for (const p of pieces) if (!Number.isInteger(p) || p < MiB / 64 || (p & (p - 1)) !== 0) throw new Error('--pieces-mib: powers of two, e.g. 1,4');
  return { sizeBytes: int('size-mib', 1024) * MiB, reps: int('reps', 3), pieceLengths: pieces, window: int('window', 4), outDir: get('out') ?? join(HERE, 'results') };
}

/** A forked peer with a typed request/answer channel. */
class Peer<In, Out extends { cmd: string }> {
  readonly child: ChildProcess;
  readonly #inbox: Out[] = [];
  #waiter: (() => void) | undefined;

  constructor(role: string, args: string[]) {
    this.child = fork(fileURLToPath(import.meta.url), [`--role=${role}`, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: Out) => {
      this.#inbox.push(m);
      this.#waiter?.();
    });
  }

  post(m: In): void {
    this.child.send(m as object);
  }

  async next<C extends Out['cmd']>(cmd: C): Promise<Extract<Out, { cmd: C }>> {
    for (;;) {
      const m = this.#inbox.shift();
      if (m) {
        if (m.cmd === cmd) return m as Extract<Out, { cmd: C }>;
        if (m.cmd === 'failed') throw new Error(`peer failed: ${(m as unknown as { error: string }).error}`);
        continue;
      }
      await new Promise<void>((resolve) => (this.#waiter = resolve));
      this.#waiter = undefined;
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.post({ cmd: 'exit' } as In);
    await once(this.child, 'exit');
  }
}

interface Run {
  rep: number;
  mode: Mode;
  pieceBytes: number;
  seconds: number;
  mbps: number;
  pieces: number;
  mismatches: number;
}

async function transfer(sender: Peer<ToSender, FromSender>, receiver: Peer<ToReceiver, FromReceiver>, mode: Mode, pieceLength: number, hashes: string[], window: number) {
  receiver.post({ cmd: 'listen', mode, pieceLength, hashes });
  const { port } = await receiver.next('listening');
  sender.post({ cmd: 'send', mode, port, pieceLength, window });
  const [done] = await Promise.all([receiver.next('done'), sender.next('sent')]);
  return done;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const machine = await machineInfo();
  const say = (s: string): void => console.log(s);
  say(`bench:wire: ${humanBytes(opts.sizeBytes)} blob, pieces ${opts.pieceLengths.map(humanBytes).join(' / ')}, ${opts.reps} reps, window ${opts.window}`);
  const sender = new Peer<ToSender, FromSender>('sender', [String(opts.sizeBytes), opts.pieceLengths.join(',')]);
  const receiver = new Peer<ToReceiver, FromReceiver>('receiver', []);
  const runs: Run[] = [];
  try {
    const { hashes } = await sender.next('ready');
    await receiver.next('ready');
    // Warm-up (not recorded): one transfer per mode with the first piece length.
    const first = opts.pieceLengths[0] as number;
    for (const mode of ['wire', 'net'] as const) await transfer(sender, receiver, mode, first, hashes[first] ?? [], opts.window);
    for (let rep = 1; rep <= opts.reps; rep++) {
      for (const pieceBytes of opts.pieceLengths) {
        const order: Mode[] = rep % 2 === 1 ? ['wire', 'net'] : ['net', 'wire'];
        for (const mode of order) {
          const done = await transfer(sender, receiver, mode, pieceBytes, hashes[pieceBytes] ?? [], opts.window);
          const seconds = done.ms / 1000;
          const run: Run = { rep, mode, pieceBytes, seconds: round(seconds, 4), mbps: round(done.bytes / seconds / 1e6, 1), pieces: done.pieces, mismatches: done.mismatches };
          if (done.bytes !== opts.sizeBytes || done.mismatches !== 0) throw new Error(`${mode}: ${done.bytes} bytes, ${done.mismatches} hash mismatches`);
          runs.push(run);
          say(`  rep ${rep} ${humanBytes(pieceBytes).padStart(7)} ${mode.padEnd(4)} ${run.seconds.toFixed(3)} s  ${fixed(run.mbps, 0)} MB/s`);
        }
      }
    }
  } finally {
    await Promise.all([sender.stop(), receiver.stop()]);
  }

  const summary: { pieceBytes: number; wire: Summary; net: Summary; ratio: number }[] = opts.pieceLengths.map((pieceBytes) => {
    const of = (mode: Mode): Summary => summarize(runs.filter((r) => r.mode === mode && r.pieceBytes === pieceBytes).map((r) => r.mbps));
    const wire = of('wire');
    const net = of('net');
    return { pieceBytes, wire, net, ratio: round(wire.median / net.median, 3) };
  });
  const rows = [['piece', 'wire MB/s (median, min–max)', 'net MB/s (median, min–max)', 'wire/net', `≥ ${TARGET_RATIO}`]];
  for (const s of summary) {
    rows.push([
      humanBytes(s.pieceBytes),
      `${fixed(s.wire.median, 0)} (${fixed(s.wire.min, 0)}–${fixed(s.wire.max, 0)})`,
      `${fixed(s.net.median, 0)} (${fixed(s.net.min, 0)}–${fixed(s.net.max, 0)})`,
      fixed(s.ratio, 3),
      s.ratio >= TARGET_RATIO ? 'yes' : 'NO',
    ]);
  }
  say('\n' + formatTable(rows, ['l', 'r', 'r', 'r', 'l']));

  const finishedAt = new Date();
  const result = {
    bench: 'wire',
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    machine,
    options: { sizeBytes: opts.sizeBytes, reps: opts.reps, pieceLengths: opts.pieceLengths, window: opts.window },
    method:
      'sender and receiver are separate processes on loopback; wire = Piece messages over TcpTransport, receiver hashes each piece (payload slices) after it arrives; net = 4-byte length-prefixed frames over node:net, receiver hashes as bytes stream in; time from accept to last piece verified; modes interleaved',
    targetRatio: TARGET_RATIO,
    summary: summary.map((s) => ({ ...s, wire: roundSummary(s.wire), net: roundSummary(s.net), meetsTarget: s.ratio >= TARGET_RATIO })),
    runs,
  };
  const stamp = startedAt.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  await mkdir(opts.outDir, { recursive: true });
  const jsonPath = join(opts.outDir, `wire-${stamp}.json`);
  await writeFile(jsonPath, JSON.stringify(result, null, 2) + '\n');
  await copyFile(jsonPath, join(opts.outDir, 'wire-latest.json'));
  say(`results: ${relative(process.cwd(), jsonPath)} (also wire-latest.json)`);
}

function roundSummary(s: Summary): Summary {
  return { n: s.n, median: round(s.median, 1), min: round(s.min, 1), max: round(s.max, 1), mean: round(s.mean, 1) };
}

const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length);
if (role === 'sender') {
  runSender(Number(process.argv[3]), (process.argv[4] ?? '').split(',').map(Number));
} else if (role === 'receiver') {
  runReceiver();
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
