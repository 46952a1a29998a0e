/**
 * The main job (`npm start`, `knhk demo`): a replicated key-value cluster on worker threads —
 * by default four PBFT replicas with hybrid ML-DSA-65 + Ed25519 signatures on every vote — takes
 * a workload; midway one replica's thread is killed, the rest carry on, the replica is restarted
 * from its LMDB store and catches up; at the end every replica holds the same state, and every
 * command's receipt is fetched and verified.
 */
import { parseArgs } from 'node:util';
import { ActorSystem } from '../actors/system.js';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { statusLine, type Cluster, type Submitted } from '../actors/cluster.js';
import { closedLoop } from '../actors/workload.js';
import { receiptToJson, trustToJson, type Receipt } from '../protocols/receipts/index.js';
import { CONSENSUS_ALGORITHMS, type ConsensusAlgorithm } from '../protocols/consensus/index.js';
import { SIGNATURE_POLICIES, type SignaturePolicy } from '../protocols/crypto/index.js';
import { percentile } from '../bench/stats.js';
import { TICK_MS } from '../runtime/index.js';
import { UsageError } from './usage.js';

/** Usage of `knhk demo`. */
export const DEMO_USAGE = `usage: knhk demo [--protocol pbft|hotstuff|raft] [--n 4] [--policy classical|hybrid|quantum]
                 [--commands 2000] [--concurrency 200] [--data-dir DIR] [--out DIR]
                 [--metrics-port PORT [--hold]]

--out: where the demo writes its last receipt and the cluster's trust file (default: a new
temporary directory), for \`knhk receipt verify\` to check in another process.
--metrics-port: serves the metrics of every thread for Prometheus at
http://127.0.0.1:PORT/metrics while the demo runs; with --hold, until Ctrl-C after it ends.`;

interface DemoOptions {
  readonly protocol: ConsensusAlgorithm;
  readonly n: number;
  readonly policy: SignaturePolicy;
  readonly commands: number;
  readonly concurrency: number;
  readonly dataDir?: string;
  readonly out?: string;
  readonly metricsPort?: number;
  readonly hold: boolean;
}

function options(argv: readonly string[]): DemoOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      protocol: { type: 'string', default: 'pbft' },
      n: { type: 'string', default: '4' },
      policy: { type: 'string', default: 'hybrid' },
      commands: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '200' },
      'data-dir': { type: 'string' },
      out: { type: 'string' },
      'metrics-port': { type: 'string' },
      hold: { type: 'boolean', default: false },
    },
  });
  const protocol = values.protocol as ConsensusAlgorithm;
  if (!CONSENSUS_ALGORITHMS.includes(protocol)) throw new UsageError(`unknown protocol ${values.protocol}`);
  const policy = values.policy as SignaturePolicy;
  if (!SIGNATURE_POLICIES.includes(policy)) throw new UsageError(`unknown policy ${values.policy}`);
  const count = (name: string, text: string, min: number): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min) throw new UsageError(`--${name} must be an integer >= ${min}, got ${text}`);
    return value;
  };
  const metricsPort = values['metrics-port'] === undefined ? undefined : count('metrics-port', values['metrics-port'], 1);
  if (metricsPort !== undefined && metricsPort > 65_535) throw new UsageError(`--metrics-port must be a TCP port, got ${metricsPort}`);
  if (values.hold && metricsPort === undefined) throw new UsageError('--hold needs --metrics-port');
  return {
    protocol,
    policy,
    hold: values.hold,
    ...(metricsPort === undefined ? {} : { metricsPort }),
    n: count('n', values.n, 1),
    commands: count('commands', values.commands, 10),
    concurrency: count('concurrency', values.concurrency, 1),
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values.out === undefined ? {} : { out: values.out }),
  };
}

/** A one-line progress bar on a terminal, nothing elsewhere. */
function progress(done: number, total: number, note: string): void {
  if (!process.stdout.isTTY) return;
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stdout.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${note}`.padEnd(100));
}

/** Runs the demo with the command line `argv`, writing its narrative to `out`. */
export async function runDemo(argv: readonly string[] = [], out: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<void> {
  const opts = options(argv);
  const system = await ActorSystem.start(opts.metricsPort === undefined ? {} : { telemetry: { prometheus: { port: opts.metricsPort } } });
  if (system.telemetry?.prometheusUrl !== undefined) out(`metrics of every thread for Prometheus: ${system.telemetry.prometheusUrl}`);
  try {
    const started = performance.now();
    const cluster = await system.spawnCluster({
      protocol: opts.protocol,
      n: opts.n,
      policy: opts.policy,
      ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir, passphrase: process.env['KNHK_KEY_PASSPHRASE'] ?? 'knhk-demo' }),
    });
    out(`${cluster.id}: ${opts.n} ${opts.protocol} replicas (f = ${cluster.f}), ${opts.policy} signatures (${cluster.keys[0]?.scheme}), ` + `each replica, signer and the verifier in a worker thread; data in ${cluster.dataDir}; started in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const victim = opts.n - 1;
    const crashAt = Math.floor(opts.commands / 3);
    const restartAt = Math.floor((opts.commands * 2) / 3);
    let done = 0;
    let note = '';
    const milestones = new Map<number, () => Promise<void>>([
      [crashAt, async () => {
        await cluster.crash(victim);
        note = `replica ${victim} crashed`;
        out(`\n${done} commands in: killed replica ${victim}'s thread; the others carry on`);
      }],
      [restartAt, async () => {
        await cluster.restart(victim);
        note = `replica ${victim} restarted`;
        out(`\n${done} commands in: restarted replica ${victim} from its store`);
      }],
    ]);
    const { seconds, latencies, results: committed } = await closedLoop(cluster, {
      commands: opts.commands,
      concurrency: opts.concurrency,
      timeoutMs: 120_000,
      operation: (k) => ({ type: 'put', key: `key-${k % 500}`, value: `value-${k}` }),
      onCommitted: async (_, count) => {
        done = Math.max(done, count);
        progress(done, opts.commands, note);
        await milestones.get(count)?.();
      },
    });
    if (process.stdout.isTTY) process.stdout.write('\n');
    await caughtUp(cluster, out);
    const status = await cluster.status();
    const states = new Set(status.map((s) => s.stateHash));
    out(`every replica executed position ${status[0]?.commitIndex}; state hashes ${states.size === 1 ? 'agree' : 'DISAGREE'} (${status[0]?.stateHash.slice(0, 16)}…)`);
    const handler = await Promise.all(
      status.map(async (s) => {
        const ref = system.lookup(`${cluster.id}/replica-${s.node}`);
        return ref ? (await system.control(ref).status()).handler : undefined;
      }),
    );
    const receipts = await verifyReceipts(committed, opts.out, cluster, out);
    out('summary:');
    out(`  commands        ${opts.commands} in ${seconds.toFixed(1)} s = ${(opts.commands / seconds).toFixed(0)} commands/s`);
    out(`  latency         p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`);
    out(`  restarts        ${status.map((s) => `replica ${s.node}: ${s.restarts}`).join(', ')}`);
    out(`  handler time    p99 per replica thread: ${handler.map((h) => h?.p99Ticks.toFixed(2) ?? '-').join(', ')} ticks of ${TICK_MS * 1000} µs (longest: ${handler.map((h) => h?.maxTicks.toFixed(0) ?? '-').join(', ')})`);
    out(`  receipts        ${receipts} of ${committed.length} fetched and verified (2f+1 signatures over the receipt log's tree head, inclusion proof)`);
    out(`  refused         ${status.reduce((sum, s) => sum + s.refused.forged + s.refused.malformed + s.refused.nonMember, 0)} envelopes (forged, malformed or from non-members)`);
    if (states.size !== 1) throw new Error('replicas disagree on the state');
    if (opts.hold) {
      out(`serving ${system.telemetry?.prometheusUrl} until Ctrl-C`);
      await new Promise((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
    await cluster.stop();
  } finally {
    await system.stop();
    out('system stopped');
  }
}

/** Fetches and verifies every command's receipt; writes the last one and the trust file for the CLI. */
async function verifyReceipts(committed: readonly Submitted[], dir: string | undefined, cluster: Cluster, out: (line: string) => void): Promise<number> {
  const started = performance.now();
  let verified = 0;
  let next = 0;
  let last: Receipt | undefined;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < committed.length) {
        const receipt = await (committed[next++] as Submitted).receipt;
        verified++;
        last = receipt;
        progress(verified, committed.length, 'receipts verified');
      }
    }),
  );
  if (process.stdout.isTTY) process.stdout.write('\n');
  const folder = dir ?? (await mkdtemp(join(tmpdir(), 'knhk-demo-receipts-')));
  await mkdir(folder, { recursive: true });
  const receiptFile = join(folder, 'receipt.json');
  const trustFile = join(folder, 'trust.json');
  await writeFile(receiptFile, `${JSON.stringify(receiptToJson(last as Receipt), null, 2)}\n`);
  await writeFile(trustFile, `${JSON.stringify(trustToJson(cluster.trust), null, 2)}\n`);
  out(`${verified} receipts verified in ${((performance.now() - started) / 1000).toFixed(1)} s; check the last one in another process with:`);
  out(`  knhk receipt verify ${receiptFile} --trust ${trustFile}`);
  return verified;
}

/** How long the demo waits for every replica to reach the last position before it reports a failure. */
const CATCH_UP_LIMIT_MS = 60_000;

/** Waits until the restarted replica has executed what the others have, narrating. */
async function caughtUp(cluster: Cluster, out: (line: string) => void): Promise<void> {
  const read = await cluster.submit({ type: 'get', key: 'key-0' });
  const started = performance.now();
  try {
    await Promise.all(Array.from({ length: cluster.n }, (_, i) => cluster.executedUpTo(i, read.position, { timeoutMs: CATCH_UP_LIMIT_MS })));
  } catch (error) {
    const status = await cluster.status();
    throw new Error(`${error instanceof Error ? error.message : String(error)} (${status.map(statusLine).join('; ')})`, { cause: error });
  }
  out(`all ${cluster.n} replicas reached position ${read.position} (the restarted one caught up ${((performance.now() - started) / 1000).toFixed(1)} s after the last command)`);
}
