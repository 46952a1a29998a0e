/**
 * The chaos runner (`knhk chaos`): concurrent clients against a cluster of worker-thread
 * replicas while faults are injected on a seeded schedule, every client operation recorded, and
 * the history checked for linearizability at the end.
 *
 * A run goes through these phases:
 * 1. **start**: an actor system and a temporary cluster (its key files use a cheap KDF: they die
 *    with the run);
 * 2. **workload** (`durationMs`): `clients` loops, each with one operation in flight at a time —
 *    a random put (a value no other operation writes), get or delete on one of `keys` keys —
 *    while the {@link ChaosSchedule} crashes and restarts replicas, partitions and heals the
 *    network, delays links, and turns replicas Byzantine and back, alternating with quiet
 *    periods. Every operation is recorded (invocation and completion on `performance.now`): a
 *    result with the protocol's proof is `ok`; an ask that timed out is indeterminate (the
 *    command may still commit later); an ask refused before the command reached the client
 *    actor is `failed`. Anything else is indeterminate too, since it cannot prove the command
 *    never went out;
 * 3. **drain**: the last fault is reverted (network healed, replicas honest, crashed replicas
 *    restarted) and the loops finish their last operation;
 * 4. **final reads**: every key is read once more through consensus, retried until it succeeds
 *    or the settle time runs out; the reads join the history;
 * 5. **convergence**: `cluster.status()` is polled until every replica is up with the same
 *    state hash and commit index (a replica may lack trailing empty blocks: see
 *    {@link convergence}), bounded by the settle time;
 * 6. **check**: after the system stops, the history is checked for linearizability (per key) and
 *    the final reads for lost acknowledged writes (see chaos-lost.ts for the definition).
 *
 * The schedule and each client's sequence of operations come from {@link Prng}s seeded with the
 * run's seed (one stream each, so that how many operations a client manages does not change the
 * faults), so a seed replays the same faults and requests; their timing is the machine's.
 */
import { ConfigError, KnhkError } from '../runtime/index.js';
import { CONSENSUS_ALGORITHMS, ConsensusError, consensusConfig, isByzantineTolerant, kvResponse, maxFaults, type ConsensusAlgorithm, type KvOperation, type KvResponse } from '../protocols/consensus/index.js';
import { isSignaturePolicy, type SignaturePolicy } from '../protocols/crypto/index.js';
import { checkLinearizable, formatOperation, formatViolation, HistoryRecorder, kvModel, type OkOperation } from '../protocols/history/index.js';
import { Prng } from '../protocols/sim/prng.js';
import { CHAOS_FAULT_KINDS, ChaosSchedule, describeFault, type ChaosEpisode, type ChaosFaultKind } from './chaos-schedule.js';
import { lostAcknowledgedWrites } from './chaos-lost.js';
import type { Cluster, ReplicaStatus } from './cluster.js';
import { ActorSystem } from './system.js';

export { CHAOS_FAULT_KINDS, ChaosSchedule, describeFault, type ChaosEpisode, type ChaosFault, type ChaosFaultKind } from './chaos-schedule.js';
export { lostAcknowledgedWrites, type LostWrite } from './chaos-lost.js';

/** What a chaos run does. */
export interface ChaosOptions {
  readonly protocol: ConsensusAlgorithm;
  /** Replicas; must tolerate at least one fault (PBFT/HotStuff n ≥ 4, Raft n ≥ 3). */
  readonly n: number;
  /** Length of the workload (faults included), ms. */
  readonly durationMs: number;
  /** Seeds the fault schedule, the clients' operations and the replicas' own randomness. */
  readonly seed: number;
  /** Fault kinds to inject (default: all the protocol tolerates; Raft refuses `byzantine`). */
  readonly faults?: readonly ChaosFaultKind[];
  /** Concurrent client loops (default 8). */
  readonly clients?: number;
  /** Keys the clients spread over (default 20; many keys keep the checker fast). */
  readonly keys?: number;
  /** Signature policy (default `classical`). */
  readonly policy?: SignaturePolicy;
  /** How long an operation waits for its proof before it counts as indeterminate, ms (default 5000). */
  readonly opTimeoutMs?: number;
  /** Threads of the system's crypto pool (default 2). */
  readonly cryptoThreads?: number;
  /** Bound on the final reads and on convergence, each, ms (default 30 000). */
  readonly settleTimeoutMs?: number;
  /** Search budget per key of the linearizability checker (default: the checker's). */
  readonly maxSteps?: number;
  /**
   * Log positions between two stored states (the cluster option; default: the protocol's). A
   * small interval makes crashed replicas restart from stored states, and lagging ones catch up
   * by state transfer, several times in a short run.
   */
  readonly snapshotInterval?: number;
  /** How often `onProgress` is called during the run, ms (default 500). */
  readonly progressIntervalMs?: number;
  /** Ends the workload early (the run still drains, reads, converges and checks). */
  readonly signal?: AbortSignal;
}

/** {@link ChaosOptions} with every default filled in. */
export interface ResolvedChaosOptions extends Required<Omit<ChaosOptions, 'maxSteps' | 'snapshotInterval' | 'signal'>> {
  /** Faults the cluster tolerates. */
  readonly f: number;
  readonly maxSteps: number | undefined;
  readonly snapshotInterval: number | undefined;
  readonly signal: AbortSignal | undefined;
}

/** Where a run is. */
export type ChaosPhase = 'starting' | 'workload' | 'draining' | 'final-reads' | 'converging' | 'checking';

/** What `onProgress` is told. */
export interface ChaosProgress {
  readonly phase: ChaosPhase;
  /** Since the workload started, ms (0 before). */
  readonly elapsedMs: number;
  readonly durationMs: number;
  readonly ok: number;
  readonly failed: number;
  readonly indeterminate: number;
  /** Faults injected so far. */
  readonly faults: number;
  /** The faults in force, or `quiet`. */
  readonly current: string;
}

/** One replica at the end of a run. */
export interface ChaosReplica {
  readonly node: number;
  readonly up: boolean;
  readonly role: string;
  readonly view: number;
  readonly commit_index: number;
  readonly state_hash: string;
  readonly restarts: number;
}

/** What a chaos run found; also the JSON of `knhk chaos --json`. */
export interface ChaosReport {
  readonly protocol: ConsensusAlgorithm;
  readonly n: number;
  readonly f: number;
  readonly policy: SignaturePolicy;
  readonly seed: number;
  readonly clients: number;
  readonly keys: number;
  readonly fault_kinds: readonly ChaosFaultKind[];
  /** Length of the workload, s. */
  readonly duration_s: number;
  /** Whole run (start-up, settling and the check included), s. */
  readonly wall_s: number;
  /** Workload operations by outcome (the final reads are not counted here). */
  readonly ops_ok: number;
  readonly ops_failed: number;
  readonly ops_indeterminate: number;
  /** `ops_ok` per second of workload. */
  readonly throughput_ops_s: number;
  /** Faults injected, in all. */
  readonly faults: number;
  readonly faults_by_kind: Readonly<Record<ChaosFaultKind, number>>;
  /** Replica restarts (the sum of `status().restarts`: the runner's and the supervisor's). */
  readonly restarts: number;
  /**
   * Misbehaviour honest replicas proved with signed messages, and what the cluster's own checks of
   * receipts found: receipt-log forks, and tree heads whose signature does not verify.
   */
  readonly evidence: number;
  /**
   * Evidence against a replica the schedule never made Byzantine, from one it never made so (the
   * cluster's own checks included): a false accusation, or honest replicas that diverged. `problems` says which.
   */
  readonly evidence_against_honest: number;
  /**
   * Replica crashes the schedule did not cause (the supervisor restarted them; `problems` says why,
   * when the runner watched the incarnation that crashed), restarts beyond the schedule's (an
   * incarnation that crashed before it was watched), and replicas halted at the end: the run fails.
   */
  readonly unplanned_crashes: number;
  /** The checker's verdict on the whole history, final reads included. */
  readonly linearizable: boolean | 'unknown';
  /** The offending sub-history (formatViolation) or why the verdict is unknown; null when linearizable. */
  readonly violation: string | null;
  /** Acknowledged writes the final reads prove lost (see chaos-lost.ts). */
  readonly lost_acknowledged: number;
  /** The first few lost writes, one line each. */
  readonly lost_writes: readonly string[];
  /** Keys whose final read never succeeded (their writes could not be judged). */
  readonly final_reads_missing: number;
  /** Every replica up with the same state hash and commit index (less trailing empty blocks) after the run. */
  readonly converged: boolean;
  /** What convergence allowed for, if anything (replicas short only of empty blocks); null when not converged. */
  readonly convergence_note: string | null;
  readonly replicas: readonly ChaosReplica[];
  /** What was injected and reverted, when (s since the workload started). */
  readonly schedule: readonly string[];
  /** Anything that went wrong in the runner's own actions (a restart that failed, an undecodable response). */
  readonly problems: readonly string[];
  /**
   * Steps of the runner that did not finish within their bound (a crash or restart, the clients'
   * last operations), each with the phase it stalled in; the run went on without them and fails.
   */
  readonly stalled: readonly string[];
  /** Time the linearizability check took, s. */
  readonly check_s: number;
}

/**
 * True when a run passed: linearizable, no lost acknowledged write, every key read, converged, no
 * honest replica accused, no replica crashed by itself (a broken invariant, a failed store), nothing stalled.
 */
export function chaosPassed(report: ChaosReport): boolean {
  return (
    report.linearizable === true &&
    report.lost_acknowledged === 0 &&
    report.final_reads_missing === 0 &&
    report.converged &&
    report.evidence_against_honest === 0 &&
    report.unplanned_crashes === 0 &&
    report.stalled.length === 0
  );
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new ConfigError(`${name} must be a positive integer, got ${value}`);
  return value;
}

/**
 * Checks options and fills in defaults.
 * @throws {ConsensusError} `INVALID_CONFIG` for an unknown protocol or an `n` that tolerates no fault.
 * @throws {ConfigError} for anything else: Byzantine faults with Raft, an unknown fault kind or
 *   policy, a duration or count that is not positive.
 */
export function resolveChaosOptions(options: ChaosOptions): ResolvedChaosOptions {
  // A chaos run needs room for at least one fault: ask for f = 1, and the config refuses an n too small for it.
  try {
    consensusConfig({ nodeId: 0, n: options.n, algorithm: options.protocol, f: 1 });
  } catch (error) {
    if (!(error instanceof ConsensusError) || !(Number.isSafeInteger(options.n) && options.n >= 1) || !CONSENSUS_ALGORITHMS.includes(options.protocol)) throw error;
    throw new ConsensusError('INVALID_CONFIG', `a chaos run needs a cluster that tolerates at least one fault: ${error.message}`);
  }
  const f = maxFaults(options.protocol, options.n);
  const byzantineTolerant = isByzantineTolerant(options.protocol);
  const faults = options.faults ?? CHAOS_FAULT_KINDS.filter((k) => byzantineTolerant || k !== 'byzantine');
  if (faults.length === 0) throw new ConfigError('at least one fault kind is needed');
  for (const kind of faults) if (!CHAOS_FAULT_KINDS.includes(kind)) throw new ConfigError(`unknown fault kind ${JSON.stringify(kind)}; known: ${CHAOS_FAULT_KINDS.join(', ')}`);
  if (!byzantineTolerant && faults.includes('byzantine')) {
    throw new ConfigError(`${options.protocol} tolerates crash faults only, not Byzantine ones: leave byzantine out of the fault kinds`);
  }
  const policy = options.policy ?? 'classical';
  if (!isSignaturePolicy(policy)) throw new ConfigError(`unknown signature policy ${JSON.stringify(policy)}`);
  if (!(Number.isFinite(options.durationMs) && options.durationMs > 0)) throw new ConfigError(`the duration must be positive, got ${options.durationMs} ms`);
  if (!Number.isSafeInteger(options.seed)) throw new ConfigError(`the seed must be an integer, got ${options.seed}`);
  if (options.maxSteps !== undefined && !(options.maxSteps > 0)) throw new ConfigError(`maxSteps must be positive, got ${options.maxSteps}`);
  return {
    protocol: options.protocol,
    n: options.n,
    f,
    durationMs: options.durationMs,
    seed: options.seed,
    faults: [...new Set(faults)],
    clients: positiveInteger('clients', options.clients ?? 8),
    keys: positiveInteger('keys', options.keys ?? 20),
    policy,
    opTimeoutMs: positiveInteger('opTimeoutMs', options.opTimeoutMs ?? 5000),
    cryptoThreads: positiveInteger('cryptoThreads', options.cryptoThreads ?? 2),
    settleTimeoutMs: positiveInteger('settleTimeoutMs', options.settleTimeoutMs ?? 30_000),
    maxSteps: options.maxSteps,
    snapshotInterval: options.snapshotInterval === undefined ? undefined : positiveInteger('snapshotInterval', options.snapshotInterval),
    progressIntervalMs: positiveInteger('progressIntervalMs', options.progressIntervalMs ?? 500),
    signal: options.signal,
  };
}

/**
 * Codes of errors that prove a command never reached the client actor, so never went out: the
 * ask was refused at the sender. Every other error (a timeout above all) leaves it indeterminate.
 */
const REFUSED_BEFORE_SUBMISSION = new Set(['MAILBOX_FULL', 'MESSAGE_TOO_LARGE', 'SCHEMA_ERROR', 'CONFIG_ERROR']);

function refusedBeforeSubmission(error: unknown): boolean {
  return error instanceof KnhkError && REFUSED_BEFORE_SUBMISSION.has(error.code);
}

/** Mixes the run's seed with a stream number, so that each client draws from a stream of its own. */
function streamSeed(seed: number, stream: number): number {
  return (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) + Math.imul(stream, 0x85ebca6b)) >>> 0;
}

/** How long a crash, a restart or the clients' drain may take before the run calls it stalled, ms. */
const STEP_BOUND_MS = 20_000;

const short = (hash: string): string => (hash === '' ? '-' : hash.slice(0, 12));

/** Positions a replica may lag behind by and still count as converged (see {@link convergence}). */
const EMPTY_TAIL_LIMIT = 64;

/**
 * Whether the replicas agree: all up, one state hash, and one commit index — except that a
 * replica may stop short of the highest commit index by positions that committed no command.
 * Chained HotStuff needs that allowance: an idle leader stops proposing once every block with
 * commands is known committed, so the empty blocks that carried the last certificates commit on
 * the replicas that formed or saw the next QC and not on the others, for as long as the cluster
 * stays idle; those replicas have executed every command the others have. Whether a position
 * was empty is taken from the executions the replicas reported ({@link Cluster.executed}).
 * @returns undefined when they do not agree, else a note on what was allowed ('' when nothing).
 */
function convergence(cluster: Cluster, status: readonly ReplicaStatus[]): string | undefined {
  const first = status[0];
  if (first === undefined || !status.every((s) => s.up && s.stateHash !== '' && s.stateHash === first.stateHash)) return undefined;
  const top = Math.max(...status.map((s) => s.commitIndex));
  const behind = status.filter((s) => s.commitIndex < top);
  for (const s of behind) {
    if (top - s.commitIndex > EMPTY_TAIL_LIMIT) return undefined;
    for (let position = s.commitIndex + 1; position <= top; position++) {
      const empty = status.some((r) => {
        const executed = cluster.executed(r.node, position);
        return executed?.type === 'entry' && executed.commands === 0;
      });
      if (!empty) return undefined;
    }
  }
  return behind.length === 0 ? '' : `replica${behind.length === 1 ? '' : 's'} ${behind.map((s) => `${s.node} (at ${s.commitIndex})`).join(', ')} lack only empty blocks up to ${top}`;
}

/**
 * Runs a chaos test and reports what it found. Starts its own actor system and stops it before
 * returning (or throwing).
 * @param onProgress called every `progressIntervalMs` and at each phase change.
 * @throws what {@link resolveChaosOptions} throws, before anything starts; what the cluster's
 *   start throws (`SpawnError`, …).
 */
export async function runChaos(options: ChaosOptions, onProgress?: (progress: ChaosProgress) => void): Promise<ChaosReport> {
  const o = resolveChaosOptions(options);
  const wallStart = performance.now();
  const recorder = new HistoryRecorder<KvOperation, KvResponse>(() => performance.now());
  const counts = { ok: 0, failed: 0, indeterminate: 0 };
  const faultsByKind: Record<ChaosFaultKind, number> = { crash: 0, partition: 0, delay: 0, byzantine: 0 };
  const schedule: string[] = [];
  const problems: string[] = [];
  const stalled: string[] = [];
  let phase: ChaosPhase = 'starting';
  let current = 'quiet';
  let start = 0;
  let end = Infinity;

  const elapsed = (): number => (start === 0 ? 0 : performance.now() - start);
  const stamp = (): string => `${(elapsed() / 1000).toFixed(1)}s`;
  const progress = (): void =>
    onProgress?.({
      phase,
      elapsedMs: elapsed(),
      durationMs: o.durationMs,
      ...counts,
      faults: Object.values(faultsByKind).reduce((a, b) => a + b, 0),
      current,
    });
  const enter = (next: ChaosPhase): void => {
    phase = next;
    progress();
  };

  // The workload's end: a timer, or the caller's abort signal, whichever comes first.
  let endWorkload!: () => void;
  const workloadOver = new Promise<void>((resolve) => (endWorkload = resolve));
  const pause = (ms: number): Promise<void> =>
    ms <= 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const timer = setTimeout(resolve, ms);
          void workloadOver.then(() => {
            clearTimeout(timer);
            resolve();
          });
        });
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  /**
   * Waits for `work` at most `ms`. A step that hangs (a replica that never comes back up, a client
   * that never returns) is noted with its phase and left behind, so a stuck run fails with a
   * cause instead of running into its caller's timeout.
   */
  const within = async (what: string, ms: number, work: Promise<unknown>): Promise<void> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        stalled.push(`${stamp()} ${phase}: ${what} did not finish within ${ms} ms`);
        resolve();
      }, ms);
    });
    try {
      await Promise.race([work, late]);
    } finally {
      clearTimeout(timer);
    }
  };

  let endTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = (): void => {
    end = Math.min(end, performance.now());
    endWorkload();
  };
  const system = await ActorSystem.start({ cryptoThreads: o.cryptoThreads });
  /** Crashes the schedule did not cause, by what the replica reported. */
  const crashes = new Map<string, number>();
  let watchReplicas = (): void => {};
  let markKilled = (_node: number): void => {};
  const ticker = setInterval(() => {
    watchReplicas();
    progress();
  }, o.progressIntervalMs);
  let finalStatus: ReplicaStatus[] = [];
  /** Restarts the schedule made: any others were the supervisor's, after crashes of the replicas' own. */
  let plannedRestarts = 0;
  let evidence = 0;
  let againstHonest = 0;
  /** Replicas the schedule made Byzantine at some point: evidence against them may be true. */
  const everByzantine = new Set<number>();
  const finalReads = new Map<string, OkOperation<KvOperation, KvResponse>>();
  let converged = false;
  let convergedNote = '';
  try {
    progress();
    const cluster = await system.spawnCluster({
      protocol: o.protocol,
      n: o.n,
      policy: o.policy,
      seed: o.seed,
      kdfLog2N: 10,
      ...(o.snapshotInterval === undefined ? {} : { snapshotInterval: o.snapshotInterval }),
    });

    // Replicas that crash on their own (not killed by the schedule) are restarted by the
    // supervisor and would show only as restarts; watch each incarnation so the report says why.
    const replicaName = (i: number): string => `${cluster.id}/replica-${i}`;
    const watched = new Set<string>();
    const killed = new Set<string>();
    watchReplicas = (): void => {
      for (let i = 0; i < o.n; i++) {
        const ref = system.lookup(replicaName(i));
        if (ref === undefined || watched.has(`${ref.name}#${ref.incarnation}`)) continue;
        const label = `${ref.name}#${ref.incarnation}`;
        watched.add(label);
        void system.watch(ref).then((reason) => {
          if (reason.kind !== 'crash' || killed.has(label)) return;
          const what = `replica ${i} crashed: ${reason.error.name}: ${reason.error.message}`;
          const seen = crashes.get(what) ?? 0;
          crashes.set(what, seen + 1);
          if (seen === 0 && crashes.size <= 10) problems.push(`${stamp()} ${what}`);
        });
      }
    };
    markKilled = (i: number): void => {
      const ref = system.lookup(replicaName(i));
      if (ref !== undefined) killed.add(`${ref.name}#${ref.incarnation}`);
    };
    watchReplicas();

    /** Submits one operation and records it; resolves with it if it completed with a proven result. */
    const perform = async (client: string, input: KvOperation, timeoutMs: number, counted: boolean): Promise<OkOperation<KvOperation, KvResponse> | undefined> => {
      const handle = recorder.invoke(client, input);
      let response: Uint8Array;
      try {
        response = (await cluster.submit(input, { timeoutMs })).response;
      } catch (error) {
        if (refusedBeforeSubmission(error)) {
          recorder.fail(handle);
          if (counted) counts.failed++;
          // Refused at once: do not spin on a full mailbox.
          await sleep(50);
        } else {
          recorder.unknown(handle);
          if (counted) counts.indeterminate++;
          if (!(error instanceof KnhkError && error.code === 'ASK_TIMEOUT') && problems.length < 20) problems.push(`${client}: ${error instanceof Error ? error.message : String(error)}`);
        }
        return undefined;
      }
      let output: KvResponse;
      try {
        output = kvResponse(response);
      } catch (error) {
        // A proven result that does not decode: the checker cannot use it; say so.
        recorder.unknown(handle);
        if (counted) counts.indeterminate++;
        problems.push(`${client}: undecodable response to ${kvModel.describeInput?.(input) ?? JSON.stringify(input)}: ${String(error)}`);
        return undefined;
      }
      if (counted) counts.ok++;
      return recorder.ok(handle, output);
    };

    const clientLoop = async (c: number): Promise<void> => {
      const rng = new Prng(streamSeed(o.seed, c + 1));
      let written = 0;
      while (performance.now() < end) {
        const key = `k${rng.int(o.keys)}`;
        const r = rng.next();
        const input: KvOperation = r < 0.5 ? { type: 'put', key, value: `c${c}-${written++}` } : r < 0.85 ? { type: 'get', key } : { type: 'delete', key };
        await perform(`c${c}`, input, o.opTimeoutMs, true);
      }
    };

    const faultLoop = async (): Promise<void> => {
      const plan = new ChaosSchedule({ n: o.n, f: o.f, kinds: o.faults, seed: o.seed });
      // An episode shorter than this would revert before the cluster noticed it.
      const shortest = 500;
      for (;;) {
        const episode: ChaosEpisode = plan.next();
        await pause(episode.quietMs);
        if (performance.now() + shortest > end) return;
        await inject(cluster, episode);
        await pause(Math.min(episode.holdMs, end - performance.now()));
        await revert(cluster, episode);
      }
    };

    const inject = async (cluster: Cluster, episode: ChaosEpisode): Promise<void> => {
      current = episode.faults.map(describeFault).join(' + ');
      for (const fault of episode.faults) {
        schedule.push(`${stamp()} ${describeFault(fault)}`);
        faultsByKind[fault.kind]++;
        try {
          switch (fault.kind) {
            case 'crash':
              markKilled(fault.node);
              await within(`crashing replica ${fault.node}`, STEP_BOUND_MS, cluster.crash(fault.node));
              break;
            case 'partition':
              cluster.partition(fault.groups);
              break;
            case 'delay':
              for (const link of fault.links) cluster.delay(link);
              break;
            case 'byzantine':
              everByzantine.add(fault.node);
              cluster.byzantine(fault.node, fault.mode);
              break;
          }
        } catch (error) {
          problems.push(`${stamp()} ${describeFault(fault)} failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    };

    const revert = async (cluster: Cluster, episode: ChaosEpisode): Promise<void> => {
      let healed = false;
      for (const fault of episode.faults) {
        try {
          switch (fault.kind) {
            case 'crash':
              schedule.push(`${stamp()} restart ${fault.node}`);
              await within(`restarting replica ${fault.node}`, STEP_BOUND_MS, cluster.restart(fault.node));
              plannedRestarts++;
              break;
            case 'partition':
            case 'delay':
              // heal() lifts every link fault: an episode's link faults all end together.
              if (healed) break;
              healed = true;
              schedule.push(`${stamp()} heal`);
              cluster.heal();
              break;
            case 'byzantine':
              schedule.push(`${stamp()} honest ${fault.node}`);
              cluster.byzantine(fault.node, null);
              break;
          }
        } catch (error) {
          problems.push(`${stamp()} reverting ${describeFault(fault)} failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      current = 'quiet';
    };

    start = performance.now();
    end = start + o.durationMs;
    endTimer = setTimeout(endWorkload, o.durationMs);
    if (o.signal?.aborted) onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    enter('workload');
    const clients = Array.from({ length: o.clients }, (_, c) => clientLoop(c));
    await faultLoop();

    // Everything back to normal, whatever the schedule left in force.
    enter('draining');
    current = 'healing';
    cluster.heal();
    for (let i = 0; i < o.n; i++) {
      try {
        cluster.byzantine(i, null);
        await within(`restarting replica ${i}`, STEP_BOUND_MS, cluster.restart(i)); // leaves a running replica alone
      } catch (error) {
        problems.push(`restoring replica ${i} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    current = 'quiet';
    // Each client has at most one operation in flight, bounded by the operation timeout.
    await within('the clients\' last operations', o.opTimeoutMs + STEP_BOUND_MS, Promise.all(clients));

    enter('final-reads');
    const settleBy = performance.now() + o.settleTimeoutMs;
    const keys = Array.from({ length: o.keys }, (_, k) => `k${k}`);
    const reader = async (_: unknown, r: number): Promise<void> => {
      for (let key = keys.shift(); key !== undefined; key = keys.shift()) {
        while (performance.now() < settleBy) {
          const read = await perform(`final-${r}`, { type: 'get', key }, Math.max(1000, Math.min(o.opTimeoutMs, settleBy - performance.now())), false);
          if (read !== undefined) {
            finalReads.set(key, read);
            break;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.clients, o.keys) }, reader));

    enter('converging');
    const convergeBy = performance.now() + o.settleTimeoutMs;
    for (;;) {
      finalStatus = await cluster.status();
      const note = convergence(cluster, finalStatus);
      if (note !== undefined) {
        converged = true;
        convergedNote = note;
        break;
      }
      if (performance.now() > convergeBy) break;
      await sleep(250);
    }
    const reports = cluster.evidence();
    evidence = reports.reduce((sum, report) => sum + report.count, 0);
    const honest = reports.filter((report) => !everByzantine.has(report.accused) && !everByzantine.has(report.reporter));
    againstHonest = honest.reduce((sum, report) => sum + report.count, 0);
    for (const report of honest.slice(0, 10)) {
      problems.push(`replica ${report.accused}, never Byzantine, accused by ${report.reporter === -1 ? 'the cluster' : `replica ${report.reporter}`} of ${report.kind}: ${report.detail}`);
    }
  } finally {
    clearInterval(ticker);
    clearTimeout(endTimer);
    o.signal?.removeEventListener('abort', onAbort);
    endWorkload();
    await system.stop();
  }

  enter('checking');
  const history = recorder.history();
  const checkStart = performance.now();
  const verdict = checkLinearizable(history, kvModel, o.maxSteps === undefined ? {} : { maxSteps: o.maxSteps });
  const checkS = (performance.now() - checkStart) / 1000;
  const lost = lostAcknowledgedWrites(history, finalReads);
  const durationS = (Math.min(end, performance.now()) - start) / 1000;
  // Crashes watched on the progress ticker miss an incarnation that crashed before the next tick.
  const watchedCrashes = [...crashes.values()].reduce((a, b) => a + b, 0);
  const restarts = finalStatus.reduce((sum, s) => sum + s.restarts, 0);
  const unseen = Math.max(0, restarts - plannedRestarts - watchedCrashes);
  if (unseen > 0) problems.push(`${unseen} restart(s) the schedule did not make: replicas crashed by themselves before the runner watched them`);
  const halted = finalStatus.filter((s) => s.halted !== null);
  for (const s of halted) problems.push(`replica ${s.node} halted: ${s.halted}`);
  if (!converged) {
    problems.push(`replicas did not converge within ${o.settleTimeoutMs} ms: ${finalStatus.map((s) => `${s.node}:${s.up ? `${s.commitIndex}/${short(s.stateHash)}` : 'down'}`).join(' ')}`);
  }
  return {
    protocol: o.protocol,
    n: o.n,
    f: o.f,
    policy: o.policy,
    seed: o.seed,
    clients: o.clients,
    keys: o.keys,
    fault_kinds: o.faults,
    duration_s: round(durationS, 1),
    wall_s: round((performance.now() - wallStart) / 1000, 1),
    ops_ok: counts.ok,
    ops_failed: counts.failed,
    ops_indeterminate: counts.indeterminate,
    throughput_ops_s: durationS > 0 ? round(counts.ok / durationS, 1) : 0,
    faults: Object.values(faultsByKind).reduce((a, b) => a + b, 0),
    faults_by_kind: faultsByKind,
    restarts,
    evidence,
    evidence_against_honest: againstHonest,
    unplanned_crashes: watchedCrashes + unseen + halted.length,
    linearizable: verdict.linearizable,
    violation: verdict.linearizable === true ? null : verdict.linearizable === false ? formatViolation(verdict) : verdict.explanation,
    lost_acknowledged: lost.length,
    lost_writes: lost.slice(0, 10).map((l) => `${formatOperation(l.write)}; final read ${formatOperation(l.finalRead)}`),
    final_reads_missing: o.keys - finalReads.size,
    converged,
    convergence_note: converged ? convergedNote : null,
    replicas: finalStatus.map((s) => ({ node: s.node, up: s.up, role: s.role, view: s.view, commit_index: s.commitIndex, state_hash: s.stateHash, restarts: s.restarts })),
    schedule,
    problems,
    stalled,
    check_s: round(checkS, 2),
  };
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
