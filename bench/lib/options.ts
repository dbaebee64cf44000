/** Command-line options of `npm run bench:serve` (bench/serve.ts). */
import { parseArgs } from 'node:util';
import { parseBytes } from '../../shared/config/units.ts';

const MiB = 2 ** 20;

export interface ServeBenchOptions {
  /** Size of the blob for the cache-hit throughput test and the large RSS test. */
  blobSize: number;
  /** Size of the small blob of the RSS test (to compare growth against blobSize). */
  smallBlobSize: number;
  /** Layer sizes of the cold-pull image, in bytes. */
  imageSizes: number[];
  /** Repetitions per side (agent / baseline) of the throughput and cold-pull tests. */
  reps: number;
  /** RSS sampling interval. */
  sampleMs: number;
  /** Where results (JSON, SVG) go. */
  outDir: string;
  /** Keep the work dir (image layouts, agent data dirs and logs) after the run. */
  keep: boolean;
  quick: boolean;
}

export const USAGE = `Usage: npm run bench:serve -- [options]

Measures the agent against a plain distribution registry in one run: cache-hit blob GET throughput (curl),
cold image pull time (skopeo) and agent RSS during cold fetches. Writes bench/results/serve-<time>.{json,svg}.

Options:
  --blob-size SIZE         cache-hit / large RSS blob (default 1GiB; --quick 128MiB)
  --small-blob-size SIZE   small RSS blob (default 64MiB; --quick 16MiB)
  --image-sizes A,B,C      cold-pull image layers in MiB (default 50,100,150; --quick 20,20,20)
  --reps N                 repetitions per side, interleaved (default 3; --quick 2)
  --sample-ms N            RSS sampling interval (default 20)
  --out DIR                results directory (default bench/results)
  --keep                   keep the work dir (layouts, agent data dirs and logs)
  --quick                  small smoke run (about 15 s; the default run takes about a minute)
  --help`;

/** Parses argv; returns undefined for --help. Throws with a message on bad input. */
export function parseServeOptions(argv: readonly string[], defaultOutDir: string): ServeBenchOptions | undefined {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      'blob-size': { type: 'string' },
      'small-blob-size': { type: 'string' },
      'image-sizes': { type: 'string' },
      reps: { type: 'string' },
      'sample-ms': { type: 'string' },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return undefined;
  const quick = values.quick;
  const size = (flag: string, raw: string | undefined, fallback: number): number => {
    if (raw === undefined) return fallback;
    const n = parseBytes(raw);
    if (n === undefined || n < 1) throw new Error(`--${flag}: expected a size such as 64MiB or 1GiB, got ${JSON.stringify(raw)}`);
    return n;
  };
  const int = (flag: string, raw: string | undefined, fallback: number, min: number): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${flag}: expected an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
    return n;
  };
  const imageSizes = (values['image-sizes'] ?? (quick ? '20,20,20' : '50,100,150')).split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--image-sizes: expected MiB numbers such as 50,100,150, got ${JSON.stringify(values['image-sizes'])}`);
    return Math.round(n * MiB);
  });
  return {
    blobSize: size('blob-size', values['blob-size'], quick ? 128 * MiB : 1024 * MiB),
    smallBlobSize: size('small-blob-size', values['small-blob-size'], quick ? 16 * MiB : 64 * MiB),
    imageSizes,
    reps: int('reps', values.reps, quick ? 2 : 3, 1),
    sampleMs: int('sample-ms', values['sample-ms'], 20, 1),
    outDir: values.out ?? defaultOutDir,
    keep: values.keep,
    quick,
  };
}
