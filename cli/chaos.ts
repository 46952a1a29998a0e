/**
 * `knhk chaos`: runs the chaos runner (actors/chaos.ts) against a worker-thread cluster, shows
 * progress on stderr (one updating line on a terminal, a line every few seconds otherwise) and
 * prints a summary (or, with --json, one JSON object) on stdout. Exits 0 when the history is
 * linearizable, no acknowledged write was lost and the replicas converged; 1 otherwise; 2 on
 * bad arguments. Ctrl-C ends the workload early and still reports; a second one quits.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../runtime/index.js';
import { ConsensusError } from '../protocols/consensus/errors.js';
import { CONSENSUS_ALGORITHMS, type ConsensusAlgorithm } from '../protocols/consensus/config.js';
import { CHAOS_FAULT_KINDS, chaosPassed, resolveChaosOptions, runChaos, type ChaosFaultKind, type ChaosOptions, type ChaosProgress, type ChaosReport } from '../actors/chaos.js';
import type { SignaturePolicy } from '../protocols/crypto/index.js';
import { describeTypedError, isUsageError, UsageError } from './usage.js';

/** The command's help text. */
export const CHAOS_USAGE = `usage: knhk chaos [--protocol pbft|hotstuff|raft] [--n N] [--duration 60s] [--seed S]
                  [--faults crash,partition,delay,byzantine] [--clients 8] [--keys 20]
                  [--policy classical|hybrid|quantum] [--op-timeout 5s]
                  [--snapshot-interval I] [--json]

Runs concurrent clients against a cluster of worker-thread replicas for --duration while
injecting faults on a schedule drawn from --seed (crash and restart, minority partitions, link
delays, a Byzantine replica; never more than f at once), records every operation and checks the
history for linearizability, then reads every key and checks that no acknowledged write was lost
and that the replicas converged. Defaults: pbft, n = 4 (5 for raft), 60s, a random seed, every
fault kind the protocol tolerates (raft: crash,partition,delay; it refuses byzantine), and the
protocol's own interval between stored states (--snapshot-interval: log positions; a small one
makes replicas restart from stored states and catch up by state transfer within a short run).
Durations take ms, s or m (a bare number is seconds). Exit status: 0 pass, 1 fail, 2 bad arguments.`;

/** Parses `60s`, `1500ms`, `2m` or a bare number of seconds into ms. */
export function parseDuration(raw: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw.trim());
  const ms = match === null ? NaN : Number(match[1]) * (match[2] === 'ms' ? 1 : match[2] === 'm' ? 60_000 : 1000);
  if (!(Number.isFinite(ms) && ms >= 1)) throw new UsageError(`bad duration ${JSON.stringify(raw)}: give a positive number of ms, s or m (e.g. 60s)`);
  return Math.round(ms);
}

function integer(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isSafeInteger(v)) throw new UsageError(`--${name} must be an integer, got ${raw}`);
  return v;
}

/** The options `argv` asks for. @throws {UsageError} and node's parseArgs errors. */
function parse(argv: readonly string[]): { options: ChaosOptions; json: boolean } {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      protocol: { type: 'string', default: 'pbft' },
      n: { type: 'string' },
      duration: { type: 'string', default: '60s' },
      faults: { type: 'string' },
      seed: { type: 'string' },
      clients: { type: 'string' },
      keys: { type: 'string' },
      policy: { type: 'string' },
      'op-timeout': { type: 'string' },
      'snapshot-interval': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const protocol = values.protocol as ConsensusAlgorithm;
  if (!CONSENSUS_ALGORITHMS.includes(protocol)) throw new UsageError(`--protocol must be one of ${CONSENSUS_ALGORITHMS.join(', ')}, got ${values.protocol}`);
  let faults: ChaosFaultKind[] | undefined;
  if (values.faults !== undefined) {
    faults = values.faults.split(',').map((f) => f.trim()).filter((f) => f !== '') as ChaosFaultKind[];
    for (const f of faults) if (!CHAOS_FAULT_KINDS.includes(f)) throw new UsageError(`unknown fault kind ${JSON.stringify(f)}; known: ${CHAOS_FAULT_KINDS.join(', ')}`);
  }
  const seed = integer('seed', values.seed) ?? Math.floor(Math.random() * 2 ** 31);
  const clients = integer('clients', values.clients);
  const keys = integer('keys', values.keys);
  const snapshotInterval = integer('snapshot-interval', values['snapshot-interval']);
  const options: ChaosOptions = {
    protocol,
    n: integer('n', values.n) ?? (protocol === 'raft' ? 5 : 4),
    durationMs: parseDuration(values.duration),
    seed,
    ...(faults === undefined ? {} : { faults }),
    ...(clients === undefined ? {} : { clients }),
    ...(keys === undefined ? {} : { keys }),
    ...(values.policy === undefined ? {} : { policy: values.policy as SignaturePolicy }),
    ...(values['op-timeout'] === undefined ? {} : { opTimeoutMs: parseDuration(values['op-timeout']) }),
    ...(snapshotInterval === undefined ? {} : { snapshotInterval }),
  };
  return { options, json: values.json };
}

function isUsageProblem(error: unknown): error is Error {
  return isUsageError(error) || error instanceof ConfigError || (error instanceof ConsensusError && error.code === 'INVALID_CONFIG');
}

const yesNo = (value: boolean | 'unknown'): string => (value === 'unknown' ? 'unknown (the checker ran out of budget)' : value ? 'yes' : 'NO');

/** The human summary of a run. */
export function formatChaosReport(r: ChaosReport): string {
  const passed = chaosPassed(r);
  const byKind = Object.entries(r.faults_by_kind)
    .filter(([kind]) => r.fault_kinds.includes(kind as ChaosFaultKind))
    .map(([kind, count]) => `${kind} ${count}`)
    .join(', ');
  const up = r.replicas.filter((s) => s.up);
  const head = r.replicas[0];
  const lines = [
    `knhk chaos: ${r.protocol} n=${r.n} (f=${r.f}), ${r.policy} signatures, seed ${r.seed}, ${r.clients} clients on ${r.keys} keys`,
    `duration        ${r.duration_s.toFixed(1)} s of workload (${r.wall_s.toFixed(1)} s in all)`,
    `operations      ok ${r.ops_ok}, failed ${r.ops_failed}, indeterminate ${r.ops_indeterminate} (${r.throughput_ops_s.toFixed(1)} ok/s)`,
    `faults          ${r.faults} (${byKind})`,
    `restarts        ${r.restarts}${r.unplanned_crashes > 0 ? ` (${r.unplanned_crashes} after crashes the schedule did not cause: see problems)` : ''}`,
    `evidence        ${r.evidence} proofs of misbehaviour${r.evidence_against_honest > 0 ? `, ${r.evidence_against_honest} against replicas never Byzantine: see problems` : ''}`,
    `linearizable    ${yesNo(r.linearizable)} (checked in ${r.check_s.toFixed(2)} s)`,
    `lost acked      ${r.lost_acknowledged}`,
    `final reads     ${r.keys - r.final_reads_missing}/${r.keys} keys`,
    `converged       ${r.converged && head !== undefined ? `yes (commit index ${Math.max(...r.replicas.map((s) => s.commit_index))}, state ${head.state_hash.slice(0, 16)}…${r.convergence_note ? `; ${r.convergence_note}` : ''})` : `NO (${up.length}/${r.n} up: ${r.replicas.map((s) => `${s.node}:${s.up ? `${s.commit_index}/${s.state_hash.slice(0, 8)}` : 'down'}`).join(' ')})`}`,
    `verdict         ${passed ? 'PASS' : 'FAIL'}`,
  ];
  if (r.violation !== null) lines.push('', r.linearizable === false ? 'violation:' : 'checker:', ...r.violation.split('\n').map((l) => `  ${l}`));
  if (r.lost_writes.length > 0) lines.push('', 'lost acknowledged writes:', ...r.lost_writes.map((l) => `  ${l}`));
  if (r.stalled.length > 0) lines.push('', 'stalled:', ...r.stalled.map((p) => `  ${p}`));
  if (r.problems.length > 0) lines.push('', 'problems:', ...r.problems.map((p) => `  ${p}`));
  if (!passed) lines.push('', `schedule (replay with --seed ${r.seed}):`, ...r.schedule.map((s) => `  ${s}`));
  return lines.join('\n');
}

function progressLine(p: ChaosProgress, protocol: string, n: number): string {
  const clock = p.phase === 'starting' ? 'starting cluster' : `${(p.elapsedMs / 1000).toFixed(1)}/${(p.durationMs / 1000).toFixed(0)} s`;
  const phase = p.phase === 'workload' || p.phase === 'starting' ? '' : ` [${p.phase}]`;
  return `chaos ${protocol} n=${n}  ${clock}${phase}  ok ${p.ok} failed ${p.failed} indeterminate ${p.indeterminate}  faults ${p.faults}  now: ${p.current}`;
}

/** Runs `knhk chaos` with `argv` (after the command name); resolves with the exit status. */
export async function runChaosCommand(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${CHAOS_USAGE}\n`);
    return 0;
  }
  let options: ChaosOptions;
  let json: boolean;
  try {
    ({ options, json } = parse(argv));
    resolveChaosOptions(options);
  } catch (error) {
    if (!isUsageProblem(error)) throw error;
    process.stderr.write(`knhk chaos: ${error.message}\n${CHAOS_USAGE}\n`);
    return 2;
  }

  const tty = process.stderr.isTTY === true;
  let lastLine = 0;
  let lastPhase = '';
  // A terminal that reports no size (columns 0) gets a line of 120.
  const width = (): number => (process.stderr.columns ? Math.max(20, process.stderr.columns - 1) : 120);
  const onProgress = (p: ChaosProgress): void => {
    const line = progressLine(p, options.protocol, options.n);
    if (tty) {
      process.stderr.write(`\r\x1b[2K${line.slice(0, width())}`);
    } else if (p.phase !== lastPhase || performance.now() - lastLine >= 5000) {
      lastLine = performance.now();
      process.stderr.write(`${line}\n`);
    }
    lastPhase = p.phase;
  };

  // The first Ctrl-C ends the workload early (the run still reports); with the listener gone, a second one quits.
  const abort = new AbortController();
  const interrupt = (): void => {
    process.stderr.write(`${tty ? '\n' : ''}interrupted: ending the workload (Ctrl-C again to quit)\n`);
    abort.abort();
  };
  process.once('SIGINT', interrupt);
  let report: ChaosReport;
  try {
    report = await runChaos({ ...options, signal: abort.signal }, onProgress);
  } catch (error) {
    if (tty) process.stderr.write('\n');
    process.stderr.write(`knhk chaos: the run failed: ${describeTypedError(error) ?? (error instanceof Error ? (error.stack ?? error.message) : String(error))}\n`);
    return 1;
  } finally {
    process.removeListener('SIGINT', interrupt);
  }
  if (tty) process.stderr.write('\n');
  process.stdout.write(json ? `${JSON.stringify(report)}\n` : `${formatChaosReport(report)}\n`);
  return chaosPassed(report) ? 0 : 1;
}
