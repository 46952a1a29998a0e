import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const script = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

test('the demo (npm start) runs to completion and tells its story', async (t) => {
  const { stdout } = await run(process.execPath, [script('../cli/knhk.js'), 'demo'], { timeout: 120_000 });
  t.regex(stdout, /30000 tells delivered/);
  t.regex(stdout, /restarts: alpha=0 beta=1 gamma=1/);
  t.regex(stdout, /dead letter for gamma#1: invalid \(DECODE_ERROR\)/);
  t.regex(stdout, /after the crash: totals 10000, 0, 0/);
  t.regex(stdout, /system stopped\n$/);
});

test('an unknown command exits with status 2 and the usage', async (t) => {
  const error = await t.throwsAsync(run(process.execPath, [script('../cli/knhk.js'), 'bogus']));
  t.is((error as unknown as { code: number }).code, 2);
  t.regex((error as unknown as { stderr: string }).stderr, /usage: knhk/);
});

test('bench --json prints exactly one JSON object with the actor metrics', async (t) => {
  const { stdout } = await run(process.execPath, [script('../bench/run.js'), 'actors', '--json', '--quick'], { timeout: 120_000 });
  const lines = stdout.trim().split('\n');
  t.is(lines.length, 1, 'nothing but the JSON object on stdout');
  const result = JSON.parse(lines[0] as string) as { bench: string; node: string; cpus: number; metrics: Record<string, { value: number; unit: string }> };
  t.is(result.bench, 'actors');
  t.is(result.node, process.version);
  t.true(result.cpus >= 1);
  for (const key of ['tell_small_vs_raw', 'tell_vote_vs_raw', 'ask_small_rtt_vs_raw', 'ask_vote_rtt_vs_raw', 'raw_small_rtt_us', 'ask_small_rtt_us']) {
    const metric = result.metrics[key];
    t.truthy(metric, key);
    t.true(Number.isFinite(metric?.value) && (metric?.value ?? 0) > 0, key);
  }
  t.is(result.metrics.tell_small_vs_raw?.unit, 'ratio');
});
