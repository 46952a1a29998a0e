/**
 * Seed sweeps: one randomized fault schedule per seed, a safety check throughout, and a liveness
 * check once the faults stop. A failing seed replays exactly with `runSeed` (or
 * `knhk sim --seed-start S --seeds 1`).
 */
import { isByzantineTolerant, maxFaults, type ConsensusAlgorithm } from '../consensus/config.js';
import type { ProtocolDefinition } from '../consensus/core.js';
import { ConsensusError } from '../consensus/errors.js';
import type { ConsensusState } from '../consensus/state-machine.js';
import { BYZANTINE_MODES, type ByzantineMode } from './byzantine.js';
import { SafetyViolation } from './checker.js';
import type { CryptoCost, CryptoCostPreset } from './cost.js';
import type { NetworkOptions } from './network.js';
import type { Prng } from './prng.js';
import type { Message } from './protocols.js';
import { Simulation } from './simulation.js';

/** Fault kinds a sweep can inject. */
export type FaultKind = 'crash' | 'partition' | 'byzantine' | 'network' | 'delay';

/** All fault kinds. */
export const FAULT_KINDS: readonly FaultKind[] = ['crash', 'partition', 'byzantine', 'network', 'delay'];

/** A sweep's set-up. */
export interface SweepOptions<M extends Message = Message> {
  readonly protocol: ConsensusAlgorithm;
  /** A definition to run instead of the protocol's default (tuned, or deliberately broken in tests). */
  readonly definition?: ProtocolDefinition<M>;
  readonly n: number;
  /** Seeds `seedStart … seedStart + seeds − 1`. */
  readonly seeds: number;
  readonly seedStart?: number;
  readonly faults: readonly FaultKind[];
  /** Commands submitted during the fault phase (default 30). */
  readonly commands?: number;
  /** Length of the fault phase in virtual ms (default 3000). */
  readonly chaosMs?: number;
  /** Bound on virtual ms for every command to commit after the faults stop, and again for every correct replica to catch up (default 60 000). */
  readonly livenessMs?: number;
  readonly network?: NetworkOptions;
  /** Signature costs charged to replicas' CPUs (default `free`). */
  readonly crypto?: CryptoCostPreset | CryptoCost;
  /** The simulation's `resumeAfterMs`: a turn between a paused core's steps, when its definition executes in slices. */
  readonly resumeAfterMs?: number;
  /** Each replica's state machine (default: the key-value machine). */
  readonly stateMachine?: () => ConsensusState;
  /** The commands' payloads (default: key-value puts of fresh keys, for the default machine). */
  readonly workload?: Workload;
  /** Stop at the first violation (default true). */
  readonly stopOnViolation?: boolean;
  /** Called after each seed (progress). */
  readonly onSeed?: (result: SeedResult) => void;
}

/**
 * Makes the payload of a run's `index`th command. It draws what it chooses from `random`, the
 * run's one stream, and from nothing else, so that a seed replays the run exactly.
 */
export type Workload = (random: Prng, index: number) => Uint8Array;

/** The outcome of one seed. */
export interface SeedResult {
  readonly seed: number;
  /** Commands answered to the client. */
  readonly commits: number;
  readonly violation: SafetyViolation | undefined;
  /** Some command was not answered within the liveness bound after the faults stopped, or some correct replica did not catch up within it after that. */
  readonly livenessFailure: boolean;
  /** What happened, for a failing seed: the schedule and the final status. */
  readonly schedule: readonly string[];
  readonly wallMs: number;
  readonly virtualMs: number;
  /** Steps that resumed a core paused part-way through execution (0 unless it executes in slices). */
  readonly resumes: number;
  /** Replica states stored, whole or as changes (more with a smaller snapshot interval). */
  readonly storedStates: number;
}

/** What a sweep found; the JSON keys of `knhk sim --json`. */
export interface SweepSummary {
  readonly protocol: ConsensusAlgorithm;
  readonly n: number;
  readonly faults: readonly FaultKind[];
  readonly seeds: number;
  readonly commits: number;
  /** Steps that resumed a paused core, over every seed (0 unless replicas execute in slices). */
  readonly resumes: number;
  /** Replica states stored, whole or as changes, over every seed. */
  readonly stored_states: number;
  readonly violations: number;
  readonly liveness_failures: number;
  readonly slowest_seed: { readonly seed: number; readonly wall_ms: number } | null;
  readonly first_violation: { readonly seed: number; readonly step: number; readonly detail: string } | null;
  readonly first_liveness_failure: number | null;
  readonly wall_ms: number;
}

/**
 * Runs one seed: random commands and faults for `chaosMs`, then heals everything (Byzantine
 * replicas stay Byzantine: at most f of them) and requires every command to commit, then every
 * correct replica to catch up with the others (in a cluster idle by then: nothing but the
 * protocol's own messages brings a laggard up).
 * Crashed plus Byzantine replicas never exceed f at once, so the run stays within the fault model.
 */
export function runSeed<M extends Message>(options: SweepOptions<M>, seed: number): SeedResult {
  const started = performance.now();
  const { protocol, n, faults } = options;
  const has = (kind: FaultKind): boolean => faults.includes(kind);
  for (const kind of faults) if (!FAULT_KINDS.includes(kind)) throw new ConsensusError('INVALID_CONFIG', `unknown fault kind ${JSON.stringify(kind)}`);
  const sim = new Simulation<M>({
    protocol: options.definition ?? protocol,
    n,
    seed,
    ...(options.network === undefined ? {} : { network: options.network }),
    ...(options.crypto === undefined ? {} : { crypto: options.crypto }),
    ...(options.resumeAfterMs === undefined ? {} : { resumeAfterMs: options.resumeAfterMs }),
    ...(options.stateMachine === undefined ? {} : { stateMachine: options.stateMachine }),
  });
  const rng = sim.random;
  const chaosMs = options.chaosMs ?? 3000;
  const f = maxFaults(protocol, n);
  const schedule: string[] = [];
  const note = (line: string): void => void schedule.push(`${sim.now.toFixed(1)}ms ${line}`);

  const byzantine = new Set<number>();
  if (has('byzantine') && isByzantineTolerant(protocol) && f > 0) {
    // Zero to f liars: with none, the crash budget is all of f (at n = 4 a liar would use it up).
    for (const id of rng.shuffle([...Array(n).keys()]).slice(0, rng.int(f + 1))) {
      const mode: ByzantineMode = rng.pick(BYZANTINE_MODES);
      sim.byzantine(id, mode);
      byzantine.add(id);
      note(`byzantine ${id} ${mode}`);
    }
  }
  const crashBudget = f - byzantine.size;
  const down = new Set<number>();

  /** A link between two replicas: one from a replica to itself is loopback, which no fault touches. */
  const link = (): [from: number, to: number] => {
    const from = rng.int(n);
    return [from, (from + 1 + rng.int(n - 1)) % n];
  };
  const { workload } = options;
  for (let i = 0; i < (options.commands ?? 30); i++) sim.at(rng.between(0, chaosMs), () => void sim.submit(workload?.(rng, i)));
  if (has('crash') && crashBudget > 0) {
    for (let k = 0; k < 1 + rng.int(4); k++) {
      sim.at(rng.between(0, chaosMs), () => {
        const candidates = [...Array(n).keys()].filter((id) => !byzantine.has(id) && !down.has(id));
        if (down.size >= crashBudget || candidates.length === 0) return;
        const id = rng.pick(candidates);
        down.add(id);
        sim.crash(id);
        note(`crash ${id}`);
        sim.at(rng.between(50, 1500), () => {
          down.delete(id);
          sim.restart(id);
          note(`restart ${id}`);
        });
      });
    }
  }
  if (has('partition')) {
    // A partition replaces the one before; each heals only its own, or an earlier partition's
    // timer would cut a later one short.
    let partitions = 0;
    for (let k = 0; k < 1 + rng.int(3); k++) {
      sim.at(rng.between(0, chaosMs), () => {
        const order = rng.shuffle([...Array(n).keys()]);
        const cut = 1 + rng.int(n - 1);
        const groups = [order.slice(0, cut), order.slice(cut)];
        const partition = ++partitions;
        sim.partition(groups);
        note(`partition ${JSON.stringify(groups)}`);
        sim.at(rng.between(100, 1500), () => {
          if (partition !== partitions) return;
          sim.heal();
          note('heal');
        });
      });
    }
  }
  if (has('network')) {
    const impairment = { loss: rng.between(0, 0.1), duplicate: rng.between(0, 0.1), reorder: rng.between(0, 0.3) };
    sim.impair(impairment);
    note(`impair ${JSON.stringify(impairment)}`);
    for (let k = 0; k < rng.int(3); k++) {
      const [from, to] = link();
      const loss = rng.between(0.2, 0.6);
      sim.link(from, to, { loss });
      note(`flaky link ${from}→${to} loss ${loss.toFixed(2)}`);
    }
  }
  if (has('delay')) {
    for (let k = 0; k < 1 + rng.int(4); k++) {
      const [from, to] = link();
      const extra = rng.between(10, 200);
      sim.delay(from, to, [0, extra]);
      note(`delay ${from}→${to} +0…${extra.toFixed(0)}ms`);
    }
  }

  let violation: SafetyViolation | undefined;
  let live = true;
  try {
    sim.run({ ms: chaosMs });
    sim.heal();
    sim.impair({});
    sim.clearLinks();
    for (const id of down) sim.restart(id);
    down.clear();
    note('faults stop');
    // A command submitted at the very end of the fault phase gets the same bound.
    live = sim.runUntilCommitted({ maxMs: options.livenessMs ?? 60_000 });
    // Then every correct replica catches up, however far behind the faults left it.
    const correct = [...Array(n).keys()].filter((id) => !byzantine.has(id));
    const commands = (): number[] => correct.map((id) => sim.committed(id).length);
    // Counted only when some replica executed more: the check runs after every event.
    let positions = '';
    let caughtUp = false;
    const allCaughtUp = (): boolean => {
      const now = correct.map((id) => sim.executed(id)).join();
      if (now !== positions) [positions, caughtUp] = [now, new Set(commands()).size === 1];
      return caughtUp;
    };
    if (live && !sim.runUntil(allCaughtUp, { maxMs: options.livenessMs ?? 60_000 })) {
      live = false;
      note(`replicas ${correct.join(', ')} stay at ${commands().join(', ')} commands`);
    }
  } catch (error) {
    if (!(error instanceof SafetyViolation)) throw error;
    violation = error;
  }
  if (!live) {
    for (let i = 0; i < n; i++) {
      const s = sim.status(i);
      note(`node ${i}: ${s.role} view ${s.view} executed ${s.commitIndex}${s.byzantine === null ? '' : ` (byzantine ${s.byzantine})`}`);
    }
    schedule.push('last events:', ...sim.trace());
  }
  return {
    seed,
    commits: sim.submissions().filter((s) => s.done).length,
    violation,
    livenessFailure: violation === undefined && !live,
    schedule,
    wallMs: performance.now() - started,
    virtualMs: sim.now,
    resumes: sim.stats().resumes,
    storedStates: sim.stats().storedStates,
  };
}

/** Runs many seeds and summarises them. */
export function sweep<M extends Message>(options: SweepOptions<M>): SweepSummary {
  const started = performance.now();
  const start = options.seedStart ?? 1;
  let commits = 0;
  let resumes = 0;
  let storedStates = 0;
  let violations = 0;
  let livenessFailures = 0;
  let seeds = 0;
  let slowest: { seed: number; wall_ms: number } | null = null;
  let firstViolation: SweepSummary['first_violation'] = null;
  let firstLiveness: number | null = null;
  for (let seed = start; seed < start + options.seeds; seed++) {
    const result = runSeed(options, seed);
    seeds++;
    commits += result.commits;
    resumes += result.resumes;
    storedStates += result.storedStates;
    if (slowest === null || result.wallMs > slowest.wall_ms) slowest = { seed, wall_ms: Math.round(result.wallMs) };
    if (result.livenessFailure) {
      livenessFailures++;
      firstLiveness ??= seed;
    }
    options.onSeed?.(result);
    if (result.violation !== undefined) {
      violations++;
      firstViolation ??= { seed, step: result.violation.step, detail: result.violation.detail };
      if (options.stopOnViolation ?? true) break;
    }
  }
  return {
    protocol: options.protocol,
    n: options.n,
    faults: options.faults,
    seeds,
    commits,
    resumes,
    stored_states: storedStates,
    violations,
    liveness_failures: livenessFailures,
    slowest_seed: slowest,
    first_violation: firstViolation,
    first_liveness_failure: firstLiveness,
    wall_ms: Math.round(performance.now() - started),
  };
}
