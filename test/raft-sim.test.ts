/**
 * Raft in the deterministic simulator: elections under crashes and partitions, agreement of
 * committed prefixes over random fault schedules, membership and ReadIndex end to end, and a
 * deliberately broken variant (Figure 8's commit rule) that the safety checker must catch.
 */
import test from 'ava';
import fc from 'fast-check';
import type { CoreOptions, NodeId, ProtocolDefinition, Ready } from '../protocols/consensus/index.js';
import { RaftCore, raft, type RaftMessage, type RaftOptions } from '../protocols/raft/index.js';
import { Prng, SafetyViolation, Simulation } from '../protocols/sim/index.js';
import { CountingRaft } from './helpers/raft.js';
import { testSeed } from './helpers/seed.js';
import { slicesChangeNothing } from './helpers/slices.js';

/** What the helpers below need of a simulation, whichever way its protocol was named. */
type Cluster = Pick<Simulation, 'n' | 'status' | 'crash' | 'restart' | 'partition' | 'heal' | 'disconnect' | 'connect' | 'at'>;

function ids(sim: Cluster): NodeId[] {
  return Array.from({ length: sim.n }, (_, i) => i);
}

function leaderOf(sim: Cluster): NodeId | undefined {
  return ids(sim).find((i) => sim.status(i).up && sim.status(i).role === 'leader');
}

/** What each server executed, position by position ("client:timestamp" lists), across restarts. */
type Executions = Map<NodeId, Map<number, string>>;

/** A Raft definition whose cores record every position they execute into `executions`. */
function recordingRaft(options: RaftOptions, executions: Executions): ProtocolDefinition<RaftMessage> {
  class Recording extends RaftCore {
    override ready(): Ready<RaftMessage> {
      const ready = super.ready();
      const mine = executions.get(this.config.nodeId) ?? new Map<number, string>();
      executions.set(this.config.nodeId, mine);
      for (const step of ready.applied) {
        if (step.kind === 'entry') mine.set(step.position, step.commands.map((c) => `${c.client}:${c.timestamp}`).join());
      }
      return ready;
    }
  }
  return { ...raft(options), create: (o) => new Recording(o, options) };
}

/** The first position at which two servers executed different commands, if any. */
function disagreement(executions: Executions): string | undefined {
  const servers = [...executions];
  for (const [a, left] of servers) {
    for (const [b, right] of servers) {
      if (a >= b) continue;
      for (const [position, commands] of left) {
        const other = right.get(position);
        if (other !== undefined && other !== commands) return `servers ${a} and ${b} executed [${commands}] and [${other}] at ${position}`;
      }
    }
  }
  return undefined;
}

/** One random fault, drawn from the run's stream; each undoes itself after a while. */
function randomFault(sim: Cluster, rng: Prng): void {
  const n = sim.n;
  switch (rng.int(4)) {
    case 0: {
      const i = rng.int(n);
      sim.crash(i);
      sim.at(50 + rng.int(600), () => sim.restart(i));
      return;
    }
    case 1: {
      const order = rng.shuffle(ids(sim));
      const cut = 1 + rng.int(n - 1);
      sim.partition([order.slice(0, cut), order.slice(cut)]);
      sim.at(100 + rng.int(800), () => sim.heal());
      return;
    }
    case 2: {
      const i = leaderOf(sim) ?? rng.int(n);
      sim.disconnect(i);
      sim.at(100 + rng.int(600), () => sim.connect(i));
      return;
    }
    default:
      return;
  }
}

function healEverything(sim: Cluster): void {
  sim.heal();
  for (const i of ids(sim)) {
    sim.restart(i);
    sim.connect(i);
  }
}

test('test_raft_leader_election_correctness', (t) => {
  const base = testSeed(t);
  const runs = 40;
  let elections = 0;
  let worstMs = 0;
  for (let k = 0; k < runs; k++) {
    const seed = (base + k) >>> 0;
    const n = k % 2 === 0 ? 5 : 3;
    const sim = new Simulation({ protocol: 'raft', n, seed });
    const rng = new Prng(seed ^ 0x9e3779b9);
    const leaders = new Map<number, NodeId>();
    let twoLeaders: string | undefined;
    // Watch every event: no term may ever have two leaders (Election Safety, §5.2).
    const watch = (): boolean => {
      for (const i of ids(sim)) {
        const s = sim.status(i);
        if (!s.up || s.role !== 'leader') continue;
        const other = leaders.get(s.view);
        if (other === undefined) leaders.set(s.view, i);
        else if (other !== i) twoLeaders ??= `seed ${seed}: ${other} and ${i} both lead term ${s.view}`;
      }
      return false;
    };
    for (let round = 0; round < 10; round++) {
      sim.submit();
      randomFault(sim, rng);
      sim.runUntil(watch, { maxMs: 100 + rng.int(500) });
    }
    // The last fault: the leader crashes. Once everything is back, a new election must succeed.
    const last = leaderOf(sim);
    if (last !== undefined) sim.crash(last);
    healEverything(sim);
    const start = sim.now;
    const elected = sim.runUntil(() => {
      watch();
      const l = leaderOf(sim);
      return l !== undefined && ids(sim).every((i) => sim.status(i).leader === l && sim.status(i).view === sim.status(l).view);
    }, { maxMs: 10_000 });
    t.is(twoLeaders, undefined);
    t.true(elected, `seed ${seed}: no leader that every server follows within 10 s of the faults stopping`);
    worstMs = Math.max(worstMs, sim.now - start);
    elections += leaders.size;
  }
  t.log(`${runs} runs, ${elections} terms with a leader, worst time to a stable leader after the faults stopped: ${worstMs.toFixed(0)} ms`);
});

test('property: over random fault schedules, live replicas agree on their committed prefixes and everything commits once faults stop', (t) => {
  const seed = testSeed(t);
  const fault = fc.record({
    kind: fc.constantFrom('crash', 'partition', 'disconnect', 'impair', 'none'),
    node: fc.nat(4),
    afterMs: fc.integer({ min: 0, max: 600 }),
    lastsMs: fc.integer({ min: 20, max: 900 }),
  });
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(3, 5), fc.constantFrom(undefined, 1, 3), fc.array(fault, { minLength: 1, maxLength: 12, size: 'max' }), (simSeed, n, executionSlice, faults) => {
        const executions: Executions = new Map();
        const options: RaftOptions = { snapshotInterval: 8, maxEntriesPerMessage: 4, ...(executionSlice === undefined ? {} : { executionSlice }) };
        const sim = new Simulation<RaftMessage>({ protocol: recordingRaft(options, executions), n, seed: simSeed });
        for (const f of faults) {
          sim.submit();
          sim.submit();
          const node = f.node % n;
          sim.run({ ms: f.afterMs });
          if (f.kind === 'crash') {
            sim.crash(node);
            sim.at(f.lastsMs, () => sim.restart(node));
          } else if (f.kind === 'partition') {
            sim.partition([ids(sim).filter((i) => i <= node), ids(sim).filter((i) => i > node)]);
            sim.at(f.lastsMs, () => sim.heal());
          } else if (f.kind === 'disconnect') {
            sim.disconnect(node);
            sim.at(f.lastsMs, () => sim.connect(node));
          } else if (f.kind === 'impair') {
            sim.impair({ loss: 0.2, duplicate: 0.1, reorder: 0.2 });
            sim.at(f.lastsMs, () => sim.impair({}));
          }
        }
        sim.run({ ms: 1000 });
        sim.impair({});
        healEverything(sim);
        const done = sim.runUntilCommitted({ maxMs: 30_000 });
        sim.run({ ms: 500 });
        const conflict = disagreement(executions);
        if (conflict !== undefined) throw new Error(conflict);
        const heights = ids(sim).map((i) => sim.status(i).commitIndex);
        return done && executions.size === n && heights.every((h) => h === heights[0]);
      }),
      { seed, numRuns: 100 },
    ),
  );
});

test('Raft: execution in slices changes nothing the simulator can see: same commits, same messages', (t) => {
  const seed = testSeed(t);
  slicesChangeNothing(t, (executionSlice) => {
    const options: RaftOptions = { maxCommandsPerEntry: 16, ...(executionSlice === undefined ? {} : { executionSlice }) };
    const sim = new Simulation<RaftMessage>({ protocol: raft(options), n: 3, seed, clients: 40 });
    for (let i = 0; i < 120; i++) sim.submit();
    return sim;
  }, [1, 5]);
});

test('membership in the simulator: a learner is added, a member removed, and the cluster keeps committing', (t) => {
  const seed = testSeed(t);
  const sim = new Simulation<RaftMessage>({ protocol: raft({ initialMembers: [0, 1, 2] }), n: 5, seed });
  t.true(sim.runUntil(() => leaderOf(sim) !== undefined, { maxMs: 5000 }));
  t.is(sim.status(3).role, 'learner');
  for (let i = 0; i < 10; i++) sim.submit();
  t.true(sim.runUntilCommitted({ maxMs: 10_000 }));
  const members = (i: NodeId): readonly NodeId[] => sim.core<RaftCore>(i).members;
  const change = (apply: (core: RaftCore) => boolean, expected: readonly NodeId[]): void => {
    t.true(sim.runUntil(() => {
      const l = leaderOf(sim);
      if (l === undefined || !apply(sim.core<RaftCore>(l))) return false;
      sim.flush(l);
      return true;
    }, { maxMs: 5000 }));
    t.true(sim.runUntil(() => ids(sim).filter((i) => expected.includes(i)).every((i) => members(i).join() === expected.join()), { maxMs: 5000 }), `members ${expected.join()}`);
  };
  change((core) => core.proposeAddServer(3), [0, 1, 2, 3]);
  t.is(sim.status(3).role, 'follower');
  change((core) => core.proposeAddServer(4), [0, 1, 2, 3, 4]);
  const removed = leaderOf(sim) as NodeId;
  change((core) => core.proposeRemoveServer(removed), ids(sim).filter((i) => i !== removed));
  t.true(sim.runUntil(() => leaderOf(sim) !== undefined && leaderOf(sim) !== removed, { maxMs: 5000 }), 'the removed leader stepped down and another was elected');
  t.is(sim.status(removed).role, 'learner');
  for (let i = 0; i < 10; i++) sim.submit();
  t.true(sim.runUntilCommitted({ maxMs: 10_000 }));
  const survivors = ids(sim).filter((i) => i !== removed);
  t.true(sim.runUntil(() => survivors.every((i) => sim.status(i).commitIndex === sim.status(survivors[0]!).commitIndex), { maxMs: 2000 }));
});

test('ReadIndex in the simulator: a leader releases reads, a deposed leader cut off from the majority does not', (t) => {
  const seed = testSeed(t);
  const sim = new Simulation<RaftMessage>({ protocol: raft(), n: 3, seed });
  for (let i = 0; i < 3; i++) sim.submit();
  t.true(sim.runUntilCommitted({ maxMs: 5000 }));
  const leader = leaderOf(sim) as NodeId;
  t.true(sim.core<RaftCore>(leader).readIndex('r1'));
  sim.flush(leader);
  t.true(sim.runUntil(() => sim.reads(leader).length === 1, { maxMs: 1000 }));
  t.deepEqual(sim.reads(leader)[0], { id: 'r1', index: sim.status(leader).commitIndex });
  sim.partition([[leader], ids(sim).filter((i) => i !== leader)]);
  t.true(sim.core<RaftCore>(leader).readIndex('stale'));
  sim.flush(leader);
  sim.run({ ms: 2000 });
  t.deepEqual(sim.reads(leader).map((r) => r.id), ['r1'], 'no read from a leader that cannot reach a majority');
  t.not(sim.status(leader).role, 'leader', 'check quorum made it step down');
});

const FAR: readonly [number, number] = [1e9, 1e9];

/**
 * Figure 8 staged with partitions, crashes and a slow link; the seed decides timings and roles.
 * (a) Leader L of term T appends X at index i and replicates it to F only, behind a partition.
 * (b) The majority elects M1 in a later term, whose first entry (its no-op at i) never leaves it:
 *     its outgoing links are made arbitrarily slow while it campaigns; then it crashes.
 * (c) L or F wins the next term with M2's vote and copies X to M2, which crashes right after
 *     storing it: X is on a majority but no entry of the new term is.
 * (d) L and F crash; M1 and M2 return. M1's log ends in a later term than M2's, so M1 wins and
 *     overwrites X at i. A leader that committed X in (c) broke safety.
 * Returns undefined when this seed's timing did not produce the staging (a split vote, say).
 */
function figure8(seed: number, create: (options: CoreOptions) => RaftCore): 'staged' | undefined {
  const sim = new Simulation<RaftMessage>({ protocol: { ...raft(), create }, n: 5, seed, clients: 1 });
  const rng = new Prng(seed ^ 0x5eed);
  const all = ids(sim);
  for (let k = 0; k < 3; k++) sim.submit();
  if (!sim.runUntilCommitted({ maxMs: 5000 })) return undefined;
  sim.run({ ms: 200 });
  const L = leaderOf(sim) as NodeId;
  const i = sim.core<RaftCore>(L).lastLogIndex + 1;
  const [F, ...majority] = rng.shuffle(all.filter((j) => j !== L)) as [NodeId, ...NodeId[]];
  sim.partition([[L, F], majority]);
  sim.submit();
  if (!sim.runUntil(() => sim.core<RaftCore>(F).lastLogIndex >= i, { maxMs: 500 })) return undefined;
  let M1: NodeId | undefined;
  if (!sim.runUntil(() => (M1 = majority.find((j) => sim.status(j).role === 'candidate')) !== undefined, { maxMs: 3000 })) return undefined;
  const m1 = M1 as NodeId;
  for (const j of all) if (j !== m1) sim.delay(m1, j, FAR);
  if (!sim.runUntil(() => sim.status(m1).role === 'leader', { maxMs: 500 })) return undefined;
  sim.crash(m1);
  const [M2, M3] = majority.filter((j) => j !== m1) as [NodeId, NodeId];
  sim.partition([[L, F, M2], [m1, M3]]);
  if (!sim.runUntil(() => sim.core<RaftCore>(M2).lastLogIndex >= i, { maxMs: 3000 })) return undefined;
  sim.crash(M2);
  sim.runUntil(() => sim.executed(L) >= i || sim.executed(F) >= i, { maxMs: 300 });
  sim.crash(L);
  sim.crash(F);
  sim.run({ ms: 50 });
  sim.heal();
  sim.clearLinks();
  sim.restart(m1);
  sim.restart(M2);
  if (!sim.runUntil(() => sim.executed(M3) >= i, { maxMs: 5000 })) return undefined;
  sim.restart(L);
  sim.restart(F);
  sim.runUntilCommitted({ maxMs: 10_000 });
  return 'staged';
}

test('a broken commit rule (earlier-term entries committed by counting replicas) is caught by the safety checker', (t) => {
  const base = testSeed(t);
  const options: RaftOptions = { maxEntriesPerMessage: 1 };
  let violation: SafetyViolation | undefined;
  let tried = 0;
  for (; tried < 10 && violation === undefined; tried++) {
    try {
      figure8((base + tried) >>> 0, (o) => new CountingRaft(o, options));
    } catch (error) {
      if (!(error instanceof SafetyViolation)) throw error;
      violation = error;
    }
  }
  t.truthy(violation, `no violation in ${tried} seeds`);
  t.log(`SafetyViolation after ${tried} seed(s): ${violation?.detail}`);
  let staged = 0;
  for (let k = 0; k < tried; k++) {
    let outcome: 'staged' | undefined;
    t.notThrows(() => {
      outcome = figure8((base + k) >>> 0, (o) => new RaftCore(o, options));
    });
    if (outcome === 'staged') staged++;
  }
  t.true(staged >= 1, 'the correct core went through the whole staging at least once');
  t.log(`the correct core ran the same ${tried} schedule(s) safely (${staged} fully staged)`);
});
