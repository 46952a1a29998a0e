/**
 * `knhk sim`: sweeps seeds of the deterministic simulator with a protocol and fault kinds, shows
 * progress on stderr, and prints a summary (or, with --json, one JSON object) on stdout. Exits 1
 * when a seed violated safety or liveness, 2 on bad arguments.
 */
import { parseArgs } from 'node:util';
import { CONSENSUS_ALGORITHMS, type ConsensusAlgorithm } from '../protocols/consensus/config.js';
import { protocolDefinition } from '../protocols/sim/protocols.js';
import { FAULT_KINDS, sweep, type FaultKind, type SeedResult } from '../protocols/sim/sweep.js';

export const SIM_USAGE = `usage: knhk sim [--protocol pbft|hotstuff|raft] [--n N] [--seeds S] [--seed-start S0]
                [--faults crash,partition,byzantine,network,delay] [--commands C]
                [--execution-slice K] [--snapshot-interval I] [--json]

Runs S seeds of the deterministic simulator. Each seed injects random faults of the given kinds
for 3 s of virtual time while clients submit C commands, then heals the network and requires
every command to commit. A safety violation prints the seed that replays it. Raft tolerates
crashes only: --faults byzantine is ignored for it. With --execution-slice, replicas execute K
commands per step (worker-backed replicas execute 128) and resume after 1 ms of virtual time, and
messages and timers due meanwhile reach them part-way through a batch: a stress of the rule that
a core finishes executing before it takes another input. With --snapshot-interval, replicas store
their state every I log positions (PBFT's checkpoint interval, HotStuff's and Raft's snapshot
interval), so that a crash restarts from stored states and lagging replicas catch up by state
transfer even in short runs.`;

/** Thrown for arguments the command cannot run with (exit status 2). */
export class UsageError extends Error {}

function positive<F extends number | undefined>(name: string, raw: string | undefined, fallback: F): number | F {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`--${name} must be a positive integer, got ${raw}`);
  return v;
}

/** Runs `knhk sim` with `argv` (after the command name); returns the exit status. */
export function runSim(argv: readonly string[]): number {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      protocol: { type: 'string', default: 'pbft' },
      n: { type: 'string' },
      seeds: { type: 'string' },
      'seed-start': { type: 'string' },
      faults: { type: 'string', default: 'crash,partition,byzantine' },
      commands: { type: 'string' },
      'execution-slice': { type: 'string' },
      'snapshot-interval': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const protocol = values.protocol as ConsensusAlgorithm;
  if (!CONSENSUS_ALGORITHMS.includes(protocol)) throw new UsageError(`--protocol must be one of ${CONSENSUS_ALGORITHMS.join(', ')}`);
  const faults = (values.faults === '' ? [] : values.faults.split(',')) as FaultKind[];
  for (const f of faults) if (!FAULT_KINDS.includes(f)) throw new UsageError(`unknown fault kind ${f}; known: ${FAULT_KINDS.join(', ')}`);
  const n = positive('n', values.n, 4);
  const seeds = positive('seeds', values.seeds, 100);
  const progress = process.stderr.isTTY === true;
  let failures = 0;
  const onSeed = (r: SeedResult): void => {
    if (r.violation !== undefined || r.livenessFailure) {
      failures++;
      process.stderr.write(`${progress ? '\n' : ''}seed ${r.seed}: ${r.violation?.message ?? 'liveness failure: not every command committed after the faults stopped'}\n  ${r.schedule.join('\n  ')}\n`);
    }
    if (progress) process.stderr.write(`\r${protocol} n=${n}: seed ${r.seed} (${failures} failing)   `);
  };
  const slice = positive('execution-slice', values['execution-slice'], undefined);
  const snapshotInterval = positive('snapshot-interval', values['snapshot-interval'], undefined);
  const summary = sweep({
    protocol,
    // With no tuning this is the protocol's default definition, what the simulator builds by name.
    definition: protocolDefinition(protocol, { executionSlice: slice, snapshotInterval }),
    ...(slice === undefined ? {} : { resumeAfterMs: 1 }),
    n,
    seeds,
    seedStart: positive('seed-start', values['seed-start'], 1),
    faults,
    commands: positive('commands', values.commands, 30),
    stopOnViolation: false,
    onSeed,
  });
  if (progress) process.stderr.write('\n');
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    const slowest = summary.slowest_seed === null ? '-' : `seed ${summary.slowest_seed.seed} (${summary.slowest_seed.wall_ms} ms)`;
    process.stdout.write(
      [
        `protocol        ${summary.protocol} (n = ${summary.n}, faults: ${summary.faults.join(', ') || 'none'})`,
        `seeds run       ${summary.seeds}`,
        `commits         ${summary.commits}`,
        `resumes         ${summary.resumes}`,
        `stored states   ${summary.stored_states}`,
        `violations      ${summary.violations}`,
        `liveness fails  ${summary.liveness_failures}`,
        `slowest seed    ${slowest}`,
        `wall time       ${(summary.wall_ms / 1000).toFixed(1)} s`,
      ].join('\n') + '\n',
    );
  }
  return summary.violations > 0 || summary.liveness_failures > 0 ? 1 : 0;
}
