#!/usr/bin/env node
/**
 * The `knhk` command. `knhk demo` runs the demo (what `npm start` runs); `knhk sim` sweeps seeds
 * of the deterministic simulator; `knhk chaos` runs clients against a cluster under seeded faults
 * and checks the history; `knhk receipt verify` and `knhk log verify` check receipts and signed
 * tree heads offline. Each command's module is loaded when it runs: checking a receipt
 * offline need not load the actor system.
 */
import { readFileSync } from 'node:fs';
import { describeTypedError, isUsageError } from './usage.js';

const USAGE = `usage: knhk <command>

commands:
  demo       run a replicated cluster through a crash and a restart (knhk demo --help)
  sim        sweep seeds of the deterministic simulator (knhk sim --help)
  chaos      clients against a worker-thread cluster under seeded faults, history checked (knhk chaos --help)
  receipt    verify a receipt offline (knhk receipt verify <receipt.json> --trust <trust.json>)
  log        check that one signed tree head extends another (knhk log verify --help)
  version    print the version
  help       print this text`;

/** Runs a subcommand: `--help` prints its usage; a bad command line prints why, then the usage, and exits 2. */
async function subcommand(args: readonly string[], usage: string, run: (args: readonly string[]) => Promise<number> | number): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  try {
    return await run(args);
  } catch (error) {
    if (!isUsageError(error)) throw error;
    process.stderr.write(`${error.message}\n${usage}\n`);
    return 2;
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const [command = 'help'] = argv;
  switch (command) {
    case 'demo': {
      const { DEMO_USAGE, runDemo } = await import('./demo.js');
      return subcommand(argv.slice(1), DEMO_USAGE, async (args) => {
        await runDemo(args);
        return 0;
      });
    }
    case 'sim': {
      const { runSim, SIM_USAGE } = await import('./sim.js');
      return subcommand(argv.slice(1), SIM_USAGE, runSim);
    }
    case 'chaos':
      return (await import('./chaos.js')).runChaosCommand(argv.slice(1));
    case 'receipt':
      return (await import('./receipt.js')).runReceipt(argv.slice(1));
    case 'log':
      return (await import('./receipt.js')).runLog(argv.slice(1));
    case 'version': {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
      process.stdout.write(`knhk ${pkg.version}\n`);
      return 0;
    }
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      process.stderr.write(`unknown command: ${command}\n${USAGE}\n`);
      return 2;
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  const told = describeTypedError(error);
  if (told === undefined) throw error;
  process.stderr.write(`knhk: ${told}\n`);
  process.exitCode = 1;
}
