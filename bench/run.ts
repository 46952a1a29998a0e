/**
 * `npm run bench -- [name...] [--json] [--quick]`: runs the named benchmarks (all by default) and
 * prints a table each, or with `--json` one JSON object per benchmark and nothing else on stdout.
 */
import { actorsBench } from './actors.js';
import { consensusBench } from './consensus.js';
import { cryptoBench } from './crypto.js';
import { receiptsBench } from './receipts.js';
import { stateBench } from './state.js';
import { telemetryBench } from './telemetry.js';
import { toJson, toTable, type BenchResult } from './report.js';

const BENCHES: Record<string, (options: { quick?: boolean }) => Promise<BenchResult>> = {
  actors: actorsBench,
  consensus: consensusBench,
  crypto: cryptoBench,
  receipts: receiptsBench,
  state: stateBench,
  telemetry: telemetryBench,
};

const args = process.argv.slice(2);
const json = args.includes('--json');
const quick = args.includes('--quick');
const names = args.filter((a) => !a.startsWith('--'));
const unknown = names.filter((n) => !(n in BENCHES));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}\n`);
  process.exit(2);
}
for (const name of names.length > 0 ? names : Object.keys(BENCHES)) {
  const result = await (BENCHES[name] as (typeof BENCHES)[string])({ quick });
  process.stdout.write(`${json ? toJson(result) : toTable(result)}\n`);
}
