/**
 * The deterministic simulator itself, and the properties every protocol must have in it:
 * determinism from the seed, the network model and its validation, recovery from partitions,
 * delay injection, and (fast-check over generated fault schedules) agreement and deterministic
 * state hashes. Every randomized test logs the seed that replays it.
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { command, hex, isByzantineTolerant, KvStateMachine, maxFaults, type AppliedEntry, type ConsensusAlgorithm, type ConsensusState, type Core, type ProtocolDefinition, type Reply } from '../protocols/consensus/index.js';
import { hotstuff } from '../protocols/hotstuff/index.js';
import { pbft } from '../protocols/pbft/index.js';
import { raft } from '../protocols/raft/index.js';
import { SafetyChecker } from '../protocols/sim/checker.js';
import { BYZANTINE_MODES, CONSENSUS_ALGORITHMS, Simulation, SafetyViolation, runSeed, sweep, type ByzantineMode, type Submission, type Workload } from '../protocols/sim/index.js';
import { testSeed } from './helpers/seed.js';
import { LedgerMachine, ledgerResponse } from '../examples/ledger/ledger.js';
import { ledgerWorkload } from '../examples/ledger/workload.js';

const N = 4;

function agreeOnPrefixes(t: ExecutionContext, sim: Simulation, replicas: readonly number[], label = ''): void {
  const logs = replicas.map((i) => sim.committed(i).map((c) => `${c.client}/${c.timestamp}`));
  const longest = logs.reduce((a, b) => (b.length > a.length ? b : a), []);
  for (const [k, log] of logs.entries()) t.deepEqual(log, longest.slice(0, log.length), `${label} replica ${replicas[k]} diverges`);
}

test('a seed replays a run exactly; another seed runs differently', (t) => {
  const run = (seed: number): { trace: readonly string[]; stats: unknown; latencies: (number | undefined)[] } => {
    const sim = new Simulation({ protocol: 'pbft', n: N, seed, network: { loss: 0.05, duplicate: 0.05, reorder: 0.2 } });
    for (let i = 0; i < 20; i++) sim.submit();
    sim.at(300, () => sim.crash(0));
    sim.at(900, () => sim.restart(0));
    sim.runUntilCommitted({ maxMs: 60_000 });
    return { trace: sim.trace(), stats: sim.stats(), latencies: sim.submissions().map((s) => s.latencyMs) };
  };
  const seed = testSeed(t);
  const a = run(seed);
  t.deepEqual(run(seed), a);
  t.notDeepEqual(run(seed + 1).trace, a.trace);
});

test('bad simulator configuration is a typed error', (t) => {
  const bad: [string, () => unknown][] = [
    ['n < 3f+1', () => new Simulation({ protocol: 'pbft', n: 4, f: 2, seed: 1 })],
    ['an unknown protocol', () => new Simulation({ protocol: 'paxos' as ConsensusAlgorithm, n: 3, seed: 1 })],
    ['a loss probability above 1', () => new Simulation({ protocol: 'raft', n: 3, seed: 1, network: { loss: 2 } })],
    ['an inverted delay range', () => new Simulation({ protocol: 'raft', n: 3, seed: 1, network: { delayMs: [5, 1] } })],
    ['regions for the wrong number of nodes', () => new Simulation({ protocol: 'raft', n: 3, seed: 1, network: { regions: { of: [0, 1], intraMs: [1, 2], interMs: [5, 9] } } })],
    ['no clients', () => new Simulation({ protocol: 'raft', n: 3, seed: 1, clients: 0 })],
    ['a negative turn before resuming', () => new Simulation({ protocol: 'raft', n: 3, seed: 1, resumeAfterMs: -1 })],
    ['a Byzantine Raft server', () => new Simulation({ protocol: 'raft', n: 3, seed: 1 }).byzantine(0, 'silent')],
    ['a replica that does not exist', () => new Simulation({ protocol: 'raft', n: 3, seed: 1 }).crash(3)],
    ['a partition naming a stranger', () => new Simulation({ protocol: 'raft', n: 3, seed: 1 }).partition([[0, 7]])],
  ];
  for (const [what, make] of bad) t.is((t.throws(make, undefined, what) as { code?: string } | undefined)?.code, 'INVALID_CONFIG', what);
});

test('execution in slices, with inputs reaching paused cores between resumes, keeps every protocol safe and live under faults', (t) => {
  const seed = testSeed(t);
  const definitions = { pbft: pbft({ executionSlice: 1 }), hotstuff: hotstuff({ executionSlice: 1 }), raft: raft({ executionSlice: 1 }) };
  for (const protocol of CONSENSUS_ALGORITHMS) {
    const base = definitions[protocol] as ProtocolDefinition<{ readonly type: string }>;
    let whilePaused = 0;
    const definition: ProtocolDefinition<{ readonly type: string }> = {
      ...base,
      create: (options) => {
        const core = base.create(options);
        const step = core.step.bind(core);
        core.step = (input, now) => {
          if (input.kind !== 'resume' && core.executionPaused === true) whilePaused++;
          step(input, now);
        };
        return core;
      },
    };
    const faults = isByzantineTolerant(protocol) ? (['crash', 'partition', 'byzantine', 'network', 'delay'] as const) : (['crash', 'partition', 'network', 'delay'] as const);
    const summary = sweep({ protocol, definition, n: protocol === 'raft' ? 5 : 4, seeds: 10, seedStart: seed, faults, resumeAfterMs: 2 });
    t.is(summary.violations, 0, `${protocol}: ${JSON.stringify(summary.first_violation)}`);
    t.is(summary.liveness_failures, 0, `${protocol}: first liveness failure at seed ${summary.first_liveness_failure}`);
    t.is(summary.commits, summary.seeds * 30, protocol);
    t.true(whilePaused > 0, `${protocol}: ${whilePaused} inputs reached a paused core`);
  }
});

test('a state machine that cannot freeze, stored and sent whole at every stored state, keeps every protocol safe and live under faults', (t) => {
  const seed = testSeed(t);
  // The key-value machine without freeze and applyChanges: what a user's machine may well be.
  const whole = (): ConsensusState => {
    const kv = new KvStateMachine();
    return { apply: (cmd) => kv.apply(cmd), hash: () => kv.hash(), snapshot: () => kv.snapshot(), restore: (bytes) => kv.restore(bytes) };
  };
  const definitions = { pbft: pbft({ checkpointInterval: 2 }), hotstuff: hotstuff({ snapshotInterval: 2 }), raft: raft({ snapshotInterval: 2 }) };
  for (const protocol of CONSENSUS_ALGORITHMS) {
    const definition = definitions[protocol] as ProtocolDefinition<{ readonly type: string }>;
    const faults = isByzantineTolerant(protocol) ? (['crash', 'partition', 'byzantine', 'network', 'delay'] as const) : (['crash', 'partition', 'network', 'delay'] as const);
    const summary = sweep({ protocol, definition, n: protocol === 'raft' ? 5 : 4, seeds: 10, seedStart: seed, faults, stateMachine: whole });
    t.is(summary.violations, 0, `${protocol}: ${JSON.stringify(summary.first_violation)}`);
    t.is(summary.liveness_failures, 0, `${protocol}: first liveness failure at seed ${summary.first_liveness_failure}`);
    t.is(summary.commits, summary.seeds * 30, protocol);
    t.true(summary.stored_states > 0, `${protocol}: ${summary.stored_states} states stored`);
  }
});

test('a sweep fails a seed in which a correct replica stays behind, though every command committed', (t) => {
  const seed = testSeed(t);
  const definition = pbft() as ProtocolDefinition<{ readonly type: string }>;
  // Replica 3 hears nothing its peers send: the others commit without it, and nothing brings it up.
  const deaf: ProtocolDefinition<{ readonly type: string }> = {
    ...definition,
    create(options) {
      const core = definition.create(options);
      if (options.config.nodeId !== 3) return core;
      const step = core.step.bind(core);
      core.step = (input, now) => (input.kind === 'message' ? undefined : step(input, now));
      return core;
    },
  };
  let schedule: readonly string[] = [];
  const summary = sweep({ protocol: 'pbft', definition: deaf, n: 4, seeds: 1, seedStart: seed, faults: [], livenessMs: 5_000, onSeed: (r) => (schedule = r.schedule) });
  t.is(summary.commits, 30, 'every command committed');
  t.is(summary.liveness_failures, 1);
  t.true(schedule.some((line) => /replicas 0, 1, 2, 3 stay at 30, 30, 30, 0 commands/.test(line)), schedule.join('\n'));
  t.is(sweep({ protocol: 'pbft', definition, n: 4, seeds: 1, seedStart: seed, faults: [] }).liveness_failures, 0, 'with replica 3 hearing, the seed passes');
});

test('a sweep runs a workload of its user for a state machine of its user: the ledger of examples/ledger, under every fault, on every protocol', (t) => {
  const seed = testSeed(t);
  let drawn = 0;
  let carriedOut = 0;
  const ledger = (): ConsensusState => {
    const machine = new LedgerMachine(5);
    return {
      apply: (cmd) => {
        const response = machine.apply(cmd);
        if (ledgerResponse(response).ok) carriedOut++;
        return response;
      },
      hash: () => machine.hash(),
      snapshot: () => machine.snapshot(),
      restore: (bytes) => machine.restore(bytes),
    };
  };
  const workload: Workload = (random, index) => {
    drawn++;
    return ledgerWorkload(random, index);
  };
  const definitions = { pbft: pbft({ checkpointInterval: 2 }), hotstuff: hotstuff({ snapshotInterval: 2 }), raft: raft({ snapshotInterval: 2 }) };
  for (const protocol of CONSENSUS_ALGORITHMS) {
    const definition = definitions[protocol] as ProtocolDefinition<{ readonly type: string }>;
    const faults = isByzantineTolerant(protocol) ? (['crash', 'partition', 'byzantine', 'network', 'delay'] as const) : (['crash', 'partition', 'network', 'delay'] as const);
    const summary = sweep({ protocol, definition, n: protocol === 'raft' ? 5 : 4, seeds: 6, seedStart: seed, faults, stateMachine: ledger, workload });
    t.is(summary.violations, 0, `${protocol}: ${JSON.stringify(summary.first_violation)}`);
    t.is(summary.liveness_failures, 0, `${protocol}: first liveness failure at seed ${summary.first_liveness_failure}`);
    t.is(summary.commits, summary.seeds * 30, protocol);
  }
  t.is(drawn, CONSENSUS_ALGORITHMS.length * 6 * 30, 'every command came from the workload');
  t.true(carriedOut > 0, `the replicas carried out ${carriedOut} ledger commands`);
});

test('a resume queued for a core that crashed is dropped, and a restarted core is resumed as its own', (t) => {
  const seed = testSeed(t);
  const cores: (Core<{ readonly type: string }> | undefined)[] = [];
  let resumedUnpaused = 0;
  const base = hotstuff({ executionSlice: 1 }) as ProtocolDefinition<{ readonly type: string }>;
  const definition: ProtocolDefinition<{ readonly type: string }> = {
    ...base,
    create: (options) => {
      const core = base.create(options);
      cores[options.config.nodeId] = core;
      const step = core.step.bind(core);
      core.step = (input, now) => {
        if (input.kind === 'resume' && core.executionPaused !== true) resumedUnpaused++;
        step(input, now);
      };
      return core;
    },
  };
  const sim = new Simulation({ protocol: definition, n: N, seed, clients: 40, resumeAfterMs: 5 });
  for (let i = 0; i < 200; i++) sim.submit();
  t.true(sim.runUntil(() => cores[1]?.executionPaused === true, { maxMs: 30_000 }), 'replica 1 paused part-way through a block');
  sim.crash(1);
  sim.restart(1);
  t.true(sim.runUntilCommitted({ maxMs: 120_000 }));
  t.is(resumedUnpaused, 0, 'no core was stepped resume when it was not paused');
  t.true(sim.stats().resumes > 0);
});

test('a link can lose everything while the rest of the network works', (t) => {
  const sim = new Simulation({ protocol: 'pbft', n: N, seed: testSeed(t) });
  sim.link(0, 1, { loss: 1 });
  sim.link(2, 1, { loss: 1, duplicate: 0 });
  for (let i = 0; i < 10; i++) sim.submit();
  t.true(sim.runUntilCommitted({ maxMs: 30_000 }));
  t.true(sim.stats().dropped > 0);
  t.is((t.throws(() => sim.link(0, 1, { loss: 1.5 })) as { code?: string }).code, 'INVALID_CONFIG');
});

test('test_network_partition_recovery', (t) => {
  const seed = testSeed(t);
  for (const protocol of CONSENSUS_ALGORITHMS) {
    const sim = new Simulation({ protocol, n: N, seed });
    const before = Array.from({ length: 5 }, () => sim.submit());
    t.true(sim.runUntilCommitted({ maxMs: 10_000 }), `${protocol}: commits before the partition`);
    // Two halves of 4: neither holds a quorum (3 of 4 for every protocol here), so nothing may commit.
    sim.partition([[0, 1], [2, 3]]);
    const during = Array.from({ length: 5 }, () => sim.submit());
    sim.run({ ms: 3_000 });
    t.true(during.every((s) => !s.done), `${protocol}: no command commits without a quorum`);
    sim.heal();
    t.true(sim.runUntilCommitted({ maxMs: 60_000 }), `${protocol}: every command commits after the heal`);
    t.true([...before, ...during].every((s) => s.done));
    // Chained HotStuff learns a commit from the QC carried by a later block, so on an idle
    // cluster the last few blocks' commits are known only to the leader that formed the QC.
    const lag = protocol === 'hotstuff' ? 3 : 0;
    const converged = (): boolean => Math.max(...[0, 1, 2, 3].map((i) => sim.executed(i))) - Math.min(...[0, 1, 2, 3].map((i) => sim.executed(i))) <= lag;
    t.true(sim.runUntil(converged, { maxMs: 30_000 }), `${protocol}: replicas converge`);
    agreeOnPrefixes(t, sim, [0, 1, 2, 3], protocol);
  }
});

/**
 * Crashes replica 3 and has the other three commit `count` commands sent one at a time, so that
 * every one takes a position of its own: past PBFT's log window, past what a peer keeps to replay.
 */
function commitWithout3(t: ExecutionContext, sim: Simulation, count: number, label: string): void {
  sim.submit();
  t.true(sim.runUntilCommitted({ maxMs: 10_000 }), `${label}: commits with every replica up`);
  sim.crash(3);
  for (let k = 0; k < count; k++) sim.at(50 * k, () => sim.submit());
  sim.run({ ms: 50 * count });
  t.true(sim.runUntilCommitted({ maxMs: 120_000 }), `${label}: three replicas commit without 3`);
}

/**
 * Waits until replica 3 holds every command the others committed. Commands, not positions: a
 * HotStuff leader can be alone in knowing that an empty block committed (no leader proposes again
 * for that), and it then holds one position more.
 */
function caughtUpWith3(t: ExecutionContext, sim: Simulation, label: string): void {
  const caughtUp = (): boolean => [0, 1, 2].every((i) => sim.committed(3).length >= sim.committed(i).length);
  t.true(sim.runUntil(caughtUp, { maxMs: 60_000 }), `${label}: replica 3 committed ${sim.committed(3).length} commands of ${sim.committed(0).length}`);
  agreeOnPrefixes(t, sim, [0, 1, 2, 3], label);
}

test('a replica restarted into a cluster that went idle while it was down catches up with no new command, and the cluster then stays idle', (t) => {
  const seed = testSeed(t);
  // Reordering: what a peer sends need not arrive in the order it was sent. With loss as well,
  // the restarted replica must not depend on any one message arriving; the others, missing some
  // too, may then take longer to fall silent, so silence is checked without loss only.
  const networks = [{ reorder: 0.3 }, { loss: 0.05, reorder: 0.3 }];
  for (const protocol of CONSENSUS_ALGORITHMS) {
    for (const network of networks) {
      const label = `${protocol} ${JSON.stringify(network)}`;
      const sim = new Simulation({ protocol, n: N, seed, network });
      commitWithout3(t, sim, 60, label);
      // A Raft leader sends heartbeats whatever the load (§5.2): only the BFT clusters fall silent.
      const quiet = protocol !== 'raft' && network.loss === undefined;
      sim.run({ ms: 5_000 });
      const idle = sim.stats().messages;
      sim.run({ ms: 5_000 });
      if (quiet) t.is(sim.stats().messages, idle, `${label}: the cluster is idle before the restart`);
      sim.restart(3);
      caughtUpWith3(t, sim, label);
      sim.run({ ms: 5_000 });
      const settled = sim.stats().messages;
      sim.run({ ms: 30_000 });
      if (quiet) t.is(sim.stats().messages, settled, `${label}: nothing is sent once it caught up`);
    }
  }
});

test('a replica restarted while cut off from an idle cluster catches up once the link heals, with no new command', (t) => {
  const seed = testSeed(t);
  for (const protocol of CONSENSUS_ALGORITHMS) {
    const sim = new Simulation({ protocol, n: N, seed });
    commitWithout3(t, sim, 30, protocol);
    sim.run({ ms: 10_000 });
    // What the replica says on starting is lost: it must say it again.
    sim.partition([[3], [0, 1, 2]]);
    sim.restart(3);
    sim.run({ ms: 300 });
    sim.heal();
    caughtUpWith3(t, sim, protocol);
  }
});

test('test_network_delay_injection', (t) => {
  const seed = testSeed(t);
  const median = (subs: readonly Submission[]): number => [...subs.map((s) => s.latencyMs as number)].sort((a, b) => a - b)[Math.floor(subs.length / 2)] as number;
  for (const protocol of CONSENSUS_ALGORITHMS) {
    const run = (slow: boolean): number => {
      const sim = new Simulation({ protocol, n: N, seed, clients: 1 });
      // Every link touching replica 2 or 3 gets 40–60 ms more: every quorum of 3 out of 4 includes one of them.
      if (slow) {
        for (let a = 0; a < N; a++) {
          for (let b = 0; b < N; b++) if (a !== b && (a >= 2 || b >= 2)) sim.delay(a, b, [40, 60]);
        }
      }
      const subs = Array.from({ length: 20 }, () => sim.submit());
      t.true(sim.runUntilCommitted({ maxMs: 60_000 }), `${protocol}${slow ? ' with delays' : ''}: all commit`);
      agreeOnPrefixes(t, sim, [0, 1, 2, 3], protocol);
      return median(subs);
    };
    const fast = run(false);
    const slow = run(true);
    t.log(`${protocol}: median commit latency ${fast.toFixed(1)} ms, with injected delay ${slow.toFixed(1)} ms`);
    t.true(slow >= fast + 40, `${protocol}: injected delay shows in the latency (${fast} → ${slow})`);
  }
});

interface FaultEvent {
  readonly at: number;
  readonly kind: 'crash' | 'partition' | 'loss';
  readonly node: number;
  readonly lengthMs: number;
  readonly side: readonly boolean[];
  readonly p: number;
}

const faultEvent: fc.Arbitrary<FaultEvent> = fc.record({
  at: fc.integer({ min: 0, max: 2_500 }),
  kind: fc.constantFrom('crash' as const, 'partition' as const, 'loss' as const),
  node: fc.nat(N - 1),
  lengthMs: fc.integer({ min: 50, max: 1_500 }),
  side: fc.array(fc.boolean(), { minLength: N, maxLength: N }),
  p: fc.double({ min: 0, max: 0.2, noNaN: true }),
});

interface Schedule {
  readonly seed: number;
  readonly events: readonly FaultEvent[];
  readonly byzantine: readonly ByzantineMode[];
}

const schedule: fc.Arbitrary<Schedule> = fc.record({
  seed: fc.nat(),
  events: fc.array(faultEvent, { maxLength: 8, size: 'max' }),
  byzantine: fc.array(fc.constantFrom(...BYZANTINE_MODES), { maxLength: 1 }),
});

/**
 * Runs a schedule: Byzantine replicas first (BFT only, at most f), then the timed faults, never
 * more than f replicas crashed or Byzantine at once; at 3 s everything heals. Returns the
 * simulation, whether every command committed, and each replica's current state machine.
 */
function runSchedule(protocol: ConsensusAlgorithm, s: Schedule): { sim: Simulation; live: boolean; correct: number[]; machines: KvStateMachine[] } {
  const machines: KvStateMachine[] = [];
  const current: number[] = [];
  const sim = new Simulation({
    protocol,
    n: N,
    seed: s.seed,
    stateMachine: () => {
      const m = new KvStateMachine();
      machines.push(m);
      return m;
    },
  });
  for (let i = 0; i < N; i++) current.push(i);
  const f = maxFaults(protocol, N);
  const liars = isByzantineTolerant(protocol) ? s.byzantine.slice(0, f) : [];
  liars.forEach((mode, k) => sim.byzantine(N - 1 - k, mode));
  const budget = f - liars.length;
  const down = new Set<number>();
  const restart = (node: number): void => {
    if (!down.delete(node)) return;
    current[node] = machines.length;
    sim.restart(node);
  };
  for (const e of s.events) {
    sim.at(e.at, () => {
      if (e.kind === 'crash' && !down.has(e.node) && down.size < budget && e.node < N - liars.length) {
        down.add(e.node);
        sim.crash(e.node);
        sim.at(e.lengthMs, () => restart(e.node));
      } else if (e.kind === 'partition') {
        sim.partition([[...Array(N).keys()].filter((i) => e.side[i])]);
        sim.at(e.lengthMs, () => sim.heal());
      } else if (e.kind === 'loss') {
        sim.impair({ loss: e.p, duplicate: e.p, reorder: e.p });
      }
    });
  }
  for (let i = 0; i < 15; i++) sim.at((i * 2_500) / 15, () => void sim.submit());
  sim.run({ ms: 3_000 });
  sim.heal();
  sim.impair({});
  for (const node of [...down]) restart(node);
  const live = sim.runUntilCommitted({ maxMs: 60_000 });
  const correct = [...Array(N - liars.length).keys()];
  return { sim, live, correct, machines: current.map((k) => machines[k] as KvStateMachine) };
}

/** Checks `holds` with fast-check over generated schedules, for every protocol. */
function forEveryProtocol(t: ExecutionContext, numRuns: number, holds: (protocol: ConsensusAlgorithm, s: Schedule) => boolean): void {
  const seed = testSeed(t);
  for (const protocol of CONSENSUS_ALGORITHMS) {
    t.notThrows(() => fc.assert(fc.property(schedule, (s) => holds(protocol, s)), { seed, numRuns }), protocol);
  }
}

test('prop_consensus_commits_same_value', (t) => {
  forEveryProtocol(t, 20, (protocol, s) => {
    const { sim, live, correct } = runSchedule(protocol, s);
    const logs = correct.map((i) => sim.committed(i).map((c) => `${c.client}/${c.timestamp}`).join(','));
    const longest = logs.reduce((a, b) => (b.length > a.length ? b : a), '');
    return live && logs.every((log) => longest.startsWith(log));
  });
});

test('prop_state_hash_deterministic', (t) => {
  forEveryProtocol(t, 10, (protocol, s) => {
    const first = runSchedule(protocol, s);
    const again = runSchedule(protocol, s);
    const hashes = first.machines.map((m) => hex(m.hash()));
    // The same seed and schedule reach the same states; replicas at the same height hold the same state.
    if (hashes.join() !== again.machines.map((m) => hex(m.hash())).join()) return false;
    const byHeight = new Map<number, string>();
    for (const i of first.correct) {
      const h = byHeight.get(first.sim.executed(i));
      if (h !== undefined && h !== hashes[i]) return false;
      byHeight.set(first.sim.executed(i), hashes[i] as string);
    }
    return true;
  });
});

test('the checker catches different commands or states at one position, a skipped position and two leaders in one term', (t) => {
  const violations: string[] = [];
  const fresh = (): SafetyChecker =>
    new SafetyChecker((detail) => {
      violations.push(detail);
      throw new SafetyViolation(7, violations.length, detail, []);
    });
  const entry = (position: number, client: string, hash: number): AppliedEntry => ({
    kind: 'entry',
    position,
    view: 0,
    commands: [command(client, 1, new Uint8Array())],
    responses: [new Uint8Array()],
    failed: 0,
    stateHashBefore: new Uint8Array(32),
    stateHash: new Uint8Array(32).fill(hash),
    timestamp: 0,
  });
  const checker = fresh();
  checker.applied(0, entry(1, 'a', 1));
  checker.applied(1, entry(1, 'a', 1));
  t.is(checker.executed(1), 1);
  const double = t.throws(() => checker.applied(2, entry(1, 'b', 1)), { instanceOf: SafetyViolation });
  t.regex(double?.message ?? '', /seed 7.*different commands at position 1/);
  t.is(double?.code, 'SAFETY_VIOLATION');
  t.throws(() => fresh().applied(0, entry(2, 'a', 1)), { instanceOf: SafetyViolation }, 'position 2 before position 1');
  const forked = fresh();
  forked.applied(0, entry(1, 'a', 1));
  t.throws(() => forked.applied(1, entry(1, 'a', 2)), { instanceOf: SafetyViolation }, 'same commands, different state');
  t.throws(() => forked.applied(2, { kind: 'snapshot', position: 1, stateHash: new Uint8Array(32).fill(3) }), { instanceOf: SafetyViolation }, 'a snapshot of another state');
  const leaders = fresh();
  leaders.leader(0, 5);
  leaders.leader(0, 5);
  t.throws(() => leaders.leader(1, 5), { instanceOf: SafetyViolation });
  const snapshotFirst = fresh();
  snapshotFirst.applied(2, { kind: 'snapshot', position: 1, stateHash: new Uint8Array(32).fill(3) });
  t.throws(() => snapshotFirst.applied(0, entry(1, 'a', 1)), { instanceOf: SafetyViolation }, 'an execution after a snapshot of another state');
  t.is(violations.length, 6);
});

/** A core that answers every request at once, before ordering it: what a core replying before commit would do. */
class HastyCore<M> implements Core<M> {
  readonly #inner: Core<M>;
  readonly #early: Reply[] = [];
  constructor(inner: Core<M>) {
    this.#inner = inner;
  }
  get config(): Core<M>['config'] {
    return this.#inner.config;
  }
  get executionPaused(): boolean | undefined {
    return this.#inner.executionPaused;
  }
  step(input: Parameters<Core<M>['step']>[0], now: number): void {
    if (input.kind === 'request') this.#early.push({ client: input.command.client, timestamp: input.command.timestamp, position: 0, view: 0, response: new Uint8Array([0x7b, 0x7d]) });
    this.#inner.step(input, now);
  }
  ready(): ReturnType<Core<M>['ready']> {
    const ready = this.#inner.ready();
    return { ...ready, replies: [...this.#early.splice(0), ...ready.replies] };
  }
  status(): ReturnType<Core<M>['status']> {
    return this.#inner.status();
  }
  signedThrough(): ReturnType<Core<M>['signedThrough']> {
    return this.#inner.signedThrough();
  }
}

/** `definition` with cores that answer every request at once (see {@link HastyCore}). */
function hasty<M extends { readonly type: string }>(definition: ProtocolDefinition<M>): ProtocolDefinition<M> {
  return { ...definition, create: (options) => new HastyCore(definition.create(options)) };
}

test('a sweep catches replicas that answer clients before the command is executed', (t) => {
  const sweeps = [sweep({ protocol: 'pbft', definition: hasty(pbft()), n: 4, seeds: 1, faults: [] }), sweep({ protocol: 'hotstuff', definition: hasty(hotstuff()), n: 4, seeds: 1, faults: [] }), sweep({ protocol: 'raft', definition: hasty(raft()), n: 4, seeds: 1, faults: [] })];
  for (const summary of sweeps) {
    t.is(summary.violations, 1, summary.protocol);
    t.regex(summary.first_violation?.detail ?? '', /answered client-\d+\/\d+ at position 0, which no correct replica executed/, summary.protocol);
  }
});

/** `definition` with cores that say they have signed nothing past view 0 and sequence 0, whatever they sign. */
function shortReach<M extends { readonly type: string }>(definition: ProtocolDefinition<M>): ProtocolDefinition<M> {
  return {
    ...definition,
    create(options) {
      return Object.assign(definition.create(options), { signedThrough: () => ({ view: 0, sequence: 0 }) });
    },
  };
}

test('a sweep catches a replica whose votes inside certificates stand past what it says it signed through', (t) => {
  for (const [protocol, definition] of [['pbft', shortReach(pbft())], ['hotstuff', shortReach(hotstuff())]] as const) {
    const summary = sweep({ protocol, definition: definition as ProtocolDefinition<{ readonly type: string }>, n: 4, seeds: 1, faults: ['crash'] });
    t.is(summary.violations, 1, protocol);
    t.regex(summary.first_violation?.detail ?? '', /replica \d signed a vote at view \d+, sequence [\d-]+, beyond the view 0 and sequence 0 it says it signed through/, protocol);
  }
});

test('the checker catches a correct replica answering what it has not executed, at another position than where it executed, or otherwise than another, and a client accepting what none answered', (t) => {
  const fresh = (): SafetyChecker =>
    new SafetyChecker((detail) => {
      throw new SafetyViolation(7, 0, detail, []);
    });
  const ok = new Uint8Array([1]);
  const reply = (client: string, position: number, response = ok): Reply => ({ client, timestamp: 1, position, view: 0, response });
  const entry = (position: number, client: string): AppliedEntry => ({
    kind: 'entry',
    position,
    view: 0,
    commands: [command(client, 1, new Uint8Array())],
    responses: [ok],
    failed: 0,
    stateHashBefore: new Uint8Array(32),
    stateHash: new Uint8Array(32).fill(position),
    timestamp: 0,
  });
  const checker = fresh();
  checker.applied(0, entry(1, 'a'));
  checker.applied(0, entry(2, 'b'));
  checker.replied(0, reply('a', 1));
  t.notThrows(() => checker.accepted(reply('a', 1)));
  t.throws(() => checker.replied(0, reply('c', 2)), { instanceOf: SafetyViolation, message: /which no correct replica executed/ });
  t.throws(() => checker.replied(0, reply('b', 1)), { instanceOf: SafetyViolation, message: /executed at 2/ });
  t.throws(() => checker.replied(0, reply('a', 2)), { instanceOf: SafetyViolation, message: /executed at 1/ });
  t.throws(() => checker.replied(0, reply('a', 3)), { instanceOf: SafetyViolation, message: /having executed up to 2/ });
  checker.applied(1, entry(1, 'a'));
  t.throws(() => checker.replied(1, reply('a', 1, new Uint8Array([2]))), { instanceOf: SafetyViolation, message: /different responses/ });
  t.throws(() => fresh().accepted(reply('a', 1)), { instanceOf: SafetyViolation, message: /no correct replica answered/ });
  const snapshot = fresh();
  snapshot.applied(3, { kind: 'snapshot', position: 5, stateHash: new Uint8Array(32) });
  t.notThrows(() => snapshot.replied(3, reply('z', 5)), 'a command taken in a snapshot');
});

test('a sweep draws no fault that does nothing: no link from a replica to itself, and a partition is healed by its own timer only', (t) => {
  const seed = testSeed(t);
  let partitions = 0;
  for (let k = 0; k < 40; k++) {
    const { schedule } = runSeed({ protocol: 'raft', n: 3, seeds: 1, faults: ['partition', 'network', 'delay'], commands: 5, livenessMs: 20_000 }, seed + k);
    const at = (line: string): number => Number.parseFloat(line);
    let partitioned: number | undefined;
    for (const line of schedule) {
      const link = /(?:flaky link|delay) (\d+)→(\d+)/.exec(line);
      if (link !== null) t.not(link[1], link[2], `seed ${seed + k}: ${line}`);
      if (/ partition /.test(line)) [partitioned, partitions] = [at(line), partitions + 1];
      // Every partition's heal comes 100 ms or more after it: one sooner was an earlier partition's timer.
      if (/ heal$/.test(line) && partitioned !== undefined) t.true(at(line) - partitioned >= 100, `seed ${seed + k}: healed ${at(line) - partitioned} ms after the partition`);
    }
  }
  t.true(partitions > 40, `${partitions} partitions drawn`);
});
