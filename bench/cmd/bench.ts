/**
 * `layerswarm bench SUBCOMMAND`: `rollout` (bench/rollout.ts, the emulated N-node rollout with real parts) and
 * `simulate` (bench/simulate.ts, the discrete-event rollout simulator). Subcommands are imported lazily, so each
 * loads only its own code.
 */
const SUBCOMMANDS: Record<string, [string, string]> = {
  rollout: ['../rollout.ts', 'emulated N-node rollout: real registry, tracker, seeder and N agents in host processes'],
  simulate: ['../simulate.ts', 'discrete-event simulation of a rollout with the same scheduler'],
};

function usage(): string {
  return ['Usage: layerswarm bench SUBCOMMAND [options]', '', 'Subcommands:', ...Object.entries(SUBCOMMANDS).map(([n, [, d]]) => `  ${n.padEnd(10)} ${d}`), '',
    'Run "layerswarm bench SUBCOMMAND --help" for its options.'].join('\n');
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(usage());
    return sub === undefined ? 2 : 0;
  }
  const entry = SUBCOMMANDS[sub];
  if (entry === undefined) {
    console.error(`layerswarm bench: unknown subcommand "${sub}".\n\n${usage()}`);
    return 2;
  }
  const mod = (await import(new URL(entry[0], import.meta.url).href)) as { main?: (argv: string[], env: NodeJS.ProcessEnv) => Promise<number> };
  if (typeof mod.main !== 'function') {
    console.error(`layerswarm bench ${sub}: ${entry[0]} exports no main()`);
    return 1;
  }
  return mod.main(rest, env);
}
