import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './helpers/telemetry.js';

const run = promisify(execFile);
const script = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

test.serial('the demo (npm start) runs a hybrid PBFT cluster through a crash and a restart, and the replicas agree', async (t) => {
  t.timeout(180_000);
  const out = await mkdtemp(join(tmpdir(), 'knhk-demo-test-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  // The default run, but for its length: the same crash, restart and receipts over fewer commands.
  const { stdout } = await run(process.execPath, [script('../cli/knhk.js'), 'demo', '--commands', '600', '--out', out], { timeout: 170_000 });
  t.log(stdout);
  t.regex(stdout, /4 pbft replicas \(f = 1\), hybrid signatures \(ML-DSA-65\+Ed25519\)/);
  t.regex(stdout, /killed replica 3's thread/);
  t.regex(stdout, /restarted replica 3 from its store/);
  t.regex(stdout, /state hashes agree/);
  t.regex(stdout, /commands +600 in/);
  t.regex(stdout, /replica 3: 1/);
  t.regex(stdout, /receipts +600 of 600 fetched and verified/);
  t.regex(stdout, /system stopped\n$/);
  // The receipt it wrote verifies in a fresh process that has nothing but the receipt and the trust file.
  const verified = await run(process.execPath, [script('../cli/knhk.js'), 'receipt', 'verify', join(out, 'receipt.json'), '--trust', join(out, 'trust.json')]);
  t.log(verified.stdout);
  const tampered = JSON.parse(await readFile(join(out, 'receipt.json'), 'utf8')) as { body: { clientTimestamp: number } };
  tampered.body.clientTimestamp += 1;
  await writeFile(join(out, 'tampered.json'), JSON.stringify(tampered));
  const refused = await t.throwsAsync(run(process.execPath, [script('../cli/knhk.js'), 'receipt', 'verify', join(out, 'tampered.json'), '--trust', join(out, 'trust.json')]));
  t.is((refused as unknown as { code: number }).code, 1);
});

test.serial('npm start -- --metrics-port serves the metrics of every thread for Prometheus, with --hold until interrupted', async (t) => {
  t.timeout(180_000);
  const port = await freePort();
  const demo = spawn(process.execPath, [script('../cli/knhk.js'), 'demo', '--commands', '100', '--metrics-port', String(port), '--hold'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => demo.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) => demo.once('exit', resolve));
  let stdout = '';
  await new Promise<void>((resolve, reject) => {
    demo.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('until Ctrl-C')) resolve();
    });
    void exited.then((code) => reject(new Error(`the demo exited (${String(code)}) before holding:\n${stdout}`)));
  });
  t.regex(stdout, new RegExp(`metrics of every thread for Prometheus: http://127\\.0\\.0\\.1:${port}/metrics`));
  const scrape = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (name: string): number => Math.max(0, ...scrape.split('\n').filter((l) => l.startsWith(`${name}{`)).map((l) => Number(l.slice(l.lastIndexOf(' ') + 1))));
  t.true(value('consensus_throughput_total') > 0, 'commands committed by the replicas');
  t.true(value('crypto_sign_duration_count') > 0, 'signatures made by the signers');
  t.true(value('actor_handler_ticks_count') > 0, 'handler time of the actors');
  demo.kill('SIGINT');
  t.is(await exited, 0);
  t.regex(stdout, /system stopped\n$/);
});

test('the demo refuses a bad option with status 2 and its usage', async (t) => {
  const error = await t.throwsAsync(run(process.execPath, [script('../cli/knhk.js'), 'demo', '--protocol', 'paxos']));
  t.is((error as unknown as { code: number }).code, 2);
  t.regex((error as unknown as { stderr: string }).stderr, /unknown protocol paxos/);
});

test('a typed error ends a command with status 1 and one line saying what went wrong, not a stack trace: a demo on a data directory another process runs a cluster on', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'knhk-demo-locked-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  // This test's own process is alive, and is not the demo's.
  await writeFile(join(dataDir, 'LOCK'), `${process.pid}\n`);
  const error = await t.throwsAsync(run(process.execPath, [script('../cli/knhk.js'), 'demo', '--data-dir', dataDir, '--commands', '10'], { env: { ...process.env, KNHK_KEY_PASSPHRASE: 'locked' } }));
  const { code, stderr } = error as unknown as { code: number; stderr: string };
  t.is(code, 1);
  t.regex(stderr, new RegExp(`^knhk: StorageError STORAGE_IN_USE: .*process ${process.pid} runs a cluster on this data directory`, 'm'));
  t.notRegex(stderr, /^\s+at /m, 'no stack trace');
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

test('bench crypto --json reports every scheme, the hybrid overhead and the pool scaling', async (t) => {
  const { stdout } = await run(process.execPath, [script('../bench/run.js'), 'crypto', '--json', '--quick'], { timeout: 300_000 });
  const result = JSON.parse(stdout.trim()) as { bench: string; metrics: Record<string, { value: number; unit: string }> };
  t.is(result.bench, 'crypto');
  for (const key of ['hybrid65_noble_sign_us_p50', 'hybrid65_noble_verify_us_p50', 'mldsa65_noble_keygen_us_p50', 'ed25519_node_verify_us_p50', 'slhdsa128f_noble_sign_us_p99', 'hybrid65_sign_overhead_pct', 'hybrid65_verify_overhead_pct', 'pool_verify_scaling']) {
    t.true(Number.isFinite(result.metrics[key]?.value), key);
  }
  t.true((result.metrics.pool_verify_scaling?.value ?? 0) > 0);
});

test('bench state --json reports what storing the state costs, whole and as changes, per size', async (t) => {
  const { stdout } = await run(process.execPath, [script('../bench/run.js'), 'state', '--json', '--quick'], { timeout: 120_000 });
  const result = JSON.parse(stdout.trim()) as { bench: string; metrics: Record<string, { value: number; unit: string }> };
  t.is(result.bench, 'state');
  for (const size of ['10k', '100k']) {
    for (const what of ['snapshot_ms_p50', 'freeze_ms_p50', 'changes_ms_p50', 'snapshot_bytes', 'changes_bytes']) t.true(Number.isFinite(result.metrics[`state_${size}_${what}`]?.value), `state_${size}_${what}`);
  }
  const bytes = (key: string): number => result.metrics[key]?.value ?? Number.NaN;
  t.true(bytes('state_100k_changes_bytes') * 10 < bytes('state_100k_snapshot_bytes'), 'the changes of a thousand keys are a small part of a hundred thousand');
  t.true(bytes('state_100k_snapshot_bytes') > 5 * bytes('state_10k_snapshot_bytes'), 'a snapshot grows with the state');
  t.true(bytes('state_10k_changes_bytes') * 5 < bytes('state_10k_snapshot_bytes'), 'changes carry the 256 sessions that wrote, not the 10 000 idle ones');
});
