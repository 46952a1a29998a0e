/**
 * `knhk sim`: sweeps seeds of the deterministic simulator with a protocol and fault kinds (and a
 * state machine and workload of the user's), shows progress on stderr, and prints a summary (or,
 * with --json, the sweep's summary and the machine's name as one JSON object) on stdout. Exits 1
 * when a seed violated safety or liveness, 2 on bad arguments.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { isStateMachine, KeyValue, stateMachineRef } from '../actors/state-machine-definition.js';
import { MAX_COMMAND_BYTES } from '../protocols/consensus/command.js';
import { CONSENSUS_ALGORITHMS, type ConsensusAlgorithm } from '../protocols/consensus/config.js';
import type { ConsensusState } from '../protocols/consensus/state-machine.js';
import { protocolDefinition } from '../protocols/sim/protocols.js';
import { FAULT_KINDS, sweep, type FaultKind, type SeedResult, type Workload } from '../protocols/sim/sweep.js';
import { UsageError } from './usage.js';

export const SIM_USAGE = `usage: knhk sim [--protocol pbft|hotstuff|raft] [--n N] [--seeds S] [--seed-start S0]
                [--faults crash,partition,byzantine,network,delay] [--commands C]
                [--execution-slice K] [--snapshot-interval I] [--json]
                [--state-machine MODULE#EXPORT [--state-machine-args JSON]] [--workload MODULE#EXPORT]

Runs S seeds of the deterministic simulator. Each seed injects random faults of the given kinds
for 3 s of virtual time while clients submit C commands, then heals the network and requires
every command to commit, then every correct replica to catch up. A safety violation prints the seed that replays it. Raft tolerates
crashes only: --faults byzantine is ignored for it. With --execution-slice, replicas execute K
commands per step (worker-backed replicas execute 128) and resume after 1 ms of virtual time, and
messages and timers due meanwhile reach them part-way through a batch: a stress of the rule that
a core finishes executing before it takes another input. With --snapshot-interval, replicas store
their state every I log positions (PBFT's checkpoint interval, HotStuff's and Raft's snapshot
interval), so that a crash restarts from stored states and lagging replicas catch up by state
transfer even in short runs.

--state-machine replicates a machine of your own instead of the key-value map: the export of a
module (a path from the working directory, or a file: URL) made by defineStateMachine, as a
cluster takes it, with its arguments as JSON. --workload makes the commands: an export of type
Workload (knhk/sim), (random, index) => Uint8Array, drawing only from random so a seed replays
the run; without it, commands are key-value puts. A workload that throws, or makes something
other than a Uint8Array of at most the command size, ends the run with exit status 2 and no
summary. A machine that answers differently on some
replica, or restores a state other than it stored, shows as a safety violation.`;

function positive<F extends number | undefined>(name: string, raw: string | undefined, fallback: F): number | F {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`--${name} must be a positive integer, got ${raw}`);
  return v;
}

/** The export `MODULE#EXPORT` names, the module's path taken from the working directory. */
async function loadExport(option: string, spec: string): Promise<unknown> {
  const hash = spec.lastIndexOf('#');
  if (hash <= 0 || hash === spec.length - 1) throw new UsageError(`--${option} takes MODULE#EXPORT, got ${spec}`);
  const path = spec.slice(0, hash);
  const name = spec.slice(hash + 1);
  let module: Record<string, unknown>;
  try {
    module = (await import(path.startsWith('file:') ? path : pathToFileURL(resolve(path)).href)) as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(`--${option}: ${path} does not load: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!(name in module)) throw new UsageError(`--${option}: ${path} exports no ${name}`);
  return module[name];
}

/** The machine `--state-machine` names, made with `--state-machine-args`, checked as `spawnCluster` checks it. */
async function userStateMachine(spec: string, rawArgs: string | undefined): Promise<{ name: string; create: () => ConsensusState }> {
  const machine = await loadExport('state-machine', spec);
  if (!isStateMachine(machine)) throw new UsageError(`--state-machine: ${spec} is not made by defineStateMachine`);
  let args: unknown;
  try {
    args = rawArgs === undefined ? undefined : JSON.parse(rawArgs);
  } catch {
    throw new UsageError(`--state-machine-args is not JSON: ${rawArgs}`);
  }
  const ref = await stateMachineRef(machine, args).catch((error: unknown) => {
    throw new UsageError(`--state-machine: ${(error as Error).message}`);
  });
  return { name: machine.name, create: () => machine.create(ref.args) };
}

/** The workload `--workload` names, its every payload checked as a command's. */
async function userWorkload(spec: string): Promise<Workload> {
  const draw = await loadExport('workload', spec);
  if (typeof draw !== 'function') throw new UsageError(`--workload: ${spec} is not a function`);
  return (random, index) => {
    let payload: unknown;
    try {
      payload = draw(random, index);
    } catch (error) {
      throw new UsageError(`--workload: ${spec} threw on command ${index}: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (!(payload instanceof Uint8Array) || payload.length > MAX_COMMAND_BYTES) {
      throw new UsageError(`--workload: ${spec} made command ${index} of ${payload instanceof Uint8Array ? `${payload.length} bytes` : typeof payload}, not a Uint8Array of at most ${MAX_COMMAND_BYTES} bytes`);
    }
    return payload;
  };
}

/** Runs `knhk sim` with `argv` (after the command name); returns the exit status. */
export async function runSim(argv: readonly string[]): Promise<number> {
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
      'state-machine': { type: 'string' },
      'state-machine-args': { type: 'string' },
      workload: { type: 'string' },
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
  if (values['state-machine-args'] !== undefined && values['state-machine'] === undefined) throw new UsageError('--state-machine-args needs --state-machine');
  const machine = values['state-machine'] === undefined ? undefined : await userStateMachine(values['state-machine'], values['state-machine-args']);
  const workload = values.workload === undefined ? undefined : await userWorkload(values.workload);
  const progress = process.stderr.isTTY === true;
  let failures = 0;
  const onSeed = (r: SeedResult): void => {
    if (r.violation !== undefined || r.livenessFailure) {
      failures++;
      process.stderr.write(`${progress ? '\n' : ''}seed ${r.seed}: ${r.violation?.message ?? 'liveness failure: not every command committed after the faults stopped, or a replica stayed behind'}\n  ${r.schedule.join('\n  ')}\n`);
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
    ...(machine === undefined ? {} : { stateMachine: machine.create }),
    ...(workload === undefined ? {} : { workload }),
    stopOnViolation: false,
    onSeed,
  });
  if (progress) process.stderr.write('\n');
  const stateMachine = machine?.name ?? KeyValue.name;
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ...summary, state_machine: stateMachine })}\n`);
  } else {
    const slowest = summary.slowest_seed === null ? '-' : `seed ${summary.slowest_seed.seed} (${summary.slowest_seed.wall_ms} ms)`;
    process.stdout.write(
      [
        `protocol        ${summary.protocol} (n = ${summary.n}, faults: ${summary.faults.join(', ') || 'none'})`,
        `state machine   ${stateMachine}`,
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
