#!/usr/bin/env node
/**
 * The `knhk` command. `knhk demo` runs the demo (what `npm start` runs).
 */
import { readFileSync } from 'node:fs';
import { runDemo } from './demo.js';

const USAGE = `usage: knhk <command>

commands:
  demo       run the runtime demo (worker-thread actors, supervision, dead letters)
  version    print the version
  help       print this text`;

async function main(argv: readonly string[]): Promise<number> {
  const [command = 'help'] = argv;
  switch (command) {
    case 'demo':
      await runDemo();
      return 0;
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
