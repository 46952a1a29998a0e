#!/usr/bin/env node
/**
 * The `knhk` command. `knhk demo` runs the demo (what `npm start` runs); `knhk sim` sweeps seeds
 * of the deterministic simulator; `knhk receipt verify` and `knhk log verify` check receipts and
 * signed tree heads offline.
 */
import { readFileSync } from 'node:fs';
import { DEMO_USAGE, DemoUsageError, runDemo } from './demo.js';
import { runLog, runReceipt } from './receipt.js';
import { runSim, SIM_USAGE, UsageError } from './sim.js';

const USAGE = `usage: knhk <command>

commands:
  demo       run a replicated cluster through a crash and a restart (knhk demo --help)
  sim        sweep seeds of the deterministic simulator (knhk sim --help)
  receipt    verify a receipt offline (knhk receipt verify <receipt.json> --trust <trust.json>)
  log        check that one signed tree head extends another (knhk log verify --help)
  version    print the version
  help       print this text`;

async function main(argv: readonly string[]): Promise<number> {
  const [command = 'help'] = argv;
  switch (command) {
    case 'demo':
      if (argv.includes('--help') || argv.includes('-h')) {
        process.stdout.write(`${DEMO_USAGE}\n`);
        return 0;
      }
      try {
        await runDemo(argv.slice(1));
      } catch (error) {
        if (!(error instanceof DemoUsageError) && !(error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) throw error;
        process.stderr.write(`${error.message}\n${DEMO_USAGE}\n`);
        return 2;
      }
      return 0;
    case 'sim':
      if (argv.includes('--help') || argv.includes('-h')) {
        process.stdout.write(`${SIM_USAGE}\n`);
        return 0;
      }
      try {
        return runSim(argv.slice(1));
      } catch (error) {
        if (!(error instanceof UsageError) && !(error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) throw error;
        process.stderr.write(`${error.message}\n${SIM_USAGE}\n`);
        return 2;
      }
    case 'chaos': return (await import('./chaos.js')).runChaosCommand(argv.slice(1));
    case 'receipt':
      return runReceipt(argv.slice(1));
    case 'log':
      return runLog(argv.slice(1));
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

process.exitCode = await main(process.argv.slice(2));
