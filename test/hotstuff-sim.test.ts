/**
 * Chained HotStuff in the deterministic simulator: progress under each Byzantine behaviour, after
 * partitions and crashes, and the safety checker catching a replica built without the lock.
 * Every run is replayable from the seed it logs.
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import type { CoreOptions, QuorumCert } from '../protocols/consensus/index.js';
import { HotStuffCore, hotstuff, type Block, type HotStuffMessage } from '../protocols/hotstuff/index.js';
import { BYZANTINE_MODES } from '../protocols/sim/byzantine.js';
import { SafetyViolation } from '../protocols/sim/checker.js';
import { Prng } from '../protocols/sim/prng.js';
import { Simulation } from '../protocols/sim/simulation.js';
import { testSeed } from './helpers/seed.js';

type Sim = Simulation<HotStuffMessage>;

function cluster(seed: number, n = 4, options: Parameters<typeof hotstuff>[0] = {}, network: ConstructorParameters<typeof Simulation>[0]['network'] = {}): Sim {
  return new Simulation({ protocol: hotstuff(options), n, seed, network });
}

function submit(sim: Sim, count: number): void {
  for (let i = 0; i < count; i++) sim.submit();
}

/** Every replica's executed commands are a prefix of the longest one. */
function prefixesAgree(t: ExecutionContext, sim: Sim, replicas: readonly number[]): void {
  const logs = replicas.map((i) => sim.committed(i).map((c) => `${c.client}/${c.timestamp}`));
  const longest = logs.reduce((a, b) => (b.length > a.length ? b : a), []);
  for (const [i, log] of logs.entries()) t.deepEqual(log, longest.slice(0, log.length), `replica ${replicas[i]} diverges`);
}

test('test_hotstuff_three_chain_finality', (t) => {
  const seed = testSeed(t);
  const sim = cluster(seed);
  submit(sim, 30);
  // A committed block b has b' and b'' above it and a QC on b'': its replica's high QC is at least
  // two blocks higher than what it committed.
  let checked = 0;
  const threeChainHolds = (): boolean =>
    [0, 1, 2, 3].every((i) => {
      const c = sim.core<HotStuffCore>(i);
      const high = c.block(c.highQC.valueHash);
      checked++;
      return c.committedBlock.height === 0 || (high !== undefined && high.height >= c.committedBlock.height + 2);
    });
  let held = true;
  const done = sim.runUntil(() => {
    held &&= threeChainHolds();
    return sim.submissions().every((s) => s.done);
  }, { maxMs: 10_000 });
  t.true(done);
  t.true(held, 'no replica committed a block without a certified three-chain above it');
  t.true(checked > 0);
  prefixesAgree(t, sim, [0, 1, 2, 3]);
  t.is(sim.stats().committedCommands, 30);
});

for (const mode of BYZANTINE_MODES) {
  test(`progress with f Byzantine replicas: ${mode}`, (t) => {
    const seed = testSeed(t);
    const sim = cluster(seed);
    const byzantine = new Prng(seed).int(4);
    sim.byzantine(byzantine, mode);
    submit(sim, 16);
    t.true(sim.runUntilCommitted({ maxMs: 30_000 }), `replica ${byzantine} ${mode}`);
    const correct = [0, 1, 2, 3].filter((i) => i !== byzantine);
    prefixesAgree(t, sim, correct);
    const stats = sim.stats();
    if (mode === 'forge') t.true(stats.rejected.forged > 0, 'forgeries are refused by the host');
    if (mode === 'double-vote') t.true(stats.evidence > 0, 'conflicting proposals or votes are reported');
  });
}

test('progress with f = 2 Byzantine replicas out of 7 (equivocate and silent)', (t) => {
  const seed = testSeed(t);
  const sim = cluster(seed, 7);
  sim.byzantine(1, 'equivocate');
  sim.byzantine(4, 'silent');
  submit(sim, 16);
  t.true(sim.runUntilCommitted({ maxMs: 60_000 }));
  prefixesAgree(t, sim, [0, 2, 3, 5, 6]);
});

test('progress after a partition heals', (t) => {
  const seed = testSeed(t);
  const sim = cluster(seed);
  submit(sim, 8);
  t.true(sim.runUntilCommitted({ maxMs: 10_000 }));
  sim.partition([[0, 1], [2, 3]]);
  const before = sim.stats().committedCommands;
  submit(sim, 8);
  sim.run({ ms: 1_500 });
  t.is(sim.stats().committedCommands, before, 'no quorum on either side: nothing commits');
  sim.heal();
  t.true(sim.runUntilCommitted({ maxMs: 30_000 }));

  // A replica cut off while the others go on catches up once it is back.
  sim.partition([[3]]);
  submit(sim, 12);
  t.true(sim.runUntilCommitted({ maxMs: 30_000 }));
  sim.heal();
  submit(sim, 4);
  t.true(sim.runUntilCommitted({ maxMs: 30_000 }));
  t.true(sim.runUntil(() => sim.executed(3) >= sim.executed(0) - 3, { maxMs: 10_000 }), 'the cut-off replica caught up');
  prefixesAgree(t, sim, [0, 1, 2, 3]);
});

test('a replica that restarts rebuilds from its durable state and catches up past pruned history', (t) => {
  const seed = testSeed(t);
  const sim = cluster(seed, 4, { snapshotInterval: 8 });
  submit(sim, 12);
  t.true(sim.runUntilCommitted({ maxMs: 10_000 }));
  sim.crash(3);
  submit(sim, 40);
  t.true(sim.runUntilCommitted({ maxMs: 60_000 }));
  sim.restart(3);
  t.true(sim.executed(3) >= 8, 'the restarted replica re-executes from its own snapshot and blocks');
  submit(sim, 8);
  t.true(sim.runUntilCommitted({ maxMs: 30_000 }));
  t.true(sim.runUntil(() => sim.executed(3) >= sim.executed(0) - 3, { maxMs: 10_000 }));
  t.true((sim.stats().byType.snapshot?.messages ?? 0) > 0, 'peers that pruned the history sent snapshots');
  prefixesAgree(t, sim, [0, 1, 2, 3]);
});

test('progress on a lossy, duplicating, reordering network', (t) => {
  const seed = testSeed(t);
  const sim = cluster(seed, 4, {}, { loss: 0.05, duplicate: 0.05, reorder: 0.3 });
  submit(sim, 24);
  t.true(sim.runUntilCommitted({ maxMs: 60_000 }));
  prefixesAgree(t, sim, [0, 1, 2, 3]);
});

test('an idle cluster stops proposing once the tail is committed', (t) => {
  const seed = testSeed(t);
  const sim = cluster(seed);
  submit(sim, 10);
  t.true(sim.runUntilCommitted({ maxMs: 10_000 }));
  sim.run({ ms: 200 });
  const settled = sim.stats();
  sim.run({ ms: 5_000 });
  const later = sim.stats();
  t.is(later.byType.proposal?.messages, settled.byType.proposal?.messages, 'no empty blocks while idle');
  t.is(later.messages, settled.messages, 'no timeouts while idle');
  t.is(sim.committed(0).length, 10);
});

test('property: random partitions, crashes and a Byzantine replica never break safety and the cluster recovers', (t) => {
  const seed = testSeed(t);
  const schedule = fc.record({
    seed: fc.nat(),
    mode: fc.constantFrom(...BYZANTINE_MODES, null),
    byzantine: fc.nat(3),
    steps: fc.array(fc.record({ fault: fc.nat(4), node: fc.nat(3), ms: fc.integer({ min: 20, max: 400 }) }), { minLength: 3, maxLength: 12 }),
  });
  t.notThrows(() =>
    fc.assert(
      fc.property(schedule, (s) => {
        const sim = cluster(s.seed, 4, { snapshotInterval: 16 }, { loss: 0.02, reorder: 0.2 });
        if (s.mode !== null) sim.byzantine(s.byzantine, s.mode);
        let down = -1;
        for (const step of s.steps) {
          submit(sim, 3);
          if (step.fault === 0) sim.heal();
          else if (step.fault === 1) sim.partition([[step.node]]);
          else if (step.fault === 2) sim.partition([[step.node, (step.node + 1) % 4]]);
          else if (step.fault === 3 && down < 0 && !(s.mode !== null && step.node === s.byzantine)) sim.crash((down = step.node));
          else if (step.fault === 4 && down >= 0) sim.restart(down), (down = -1);
          sim.run({ ms: step.ms });
        }
        sim.heal();
        if (down >= 0) sim.restart(down);
        submit(sim, 2);
        return sim.runUntilCommitted({ maxMs: 60_000 });
      }),
      { seed, numRuns: 12 },
    ),
  );
});

/** HotStuff without its locking rule: votes for any block of the current view. Test-only. */
class Unlocked extends HotStuffCore {
  protected override safeNode(_block: Block, _justify: QuorumCert): boolean {
    return true;
  }
}

/**
 * A schedule that makes an honest leader propose from a stale high QC: replica 3 is cut off while
 * the others commit blocks; then the leader of the view before 3's crashes as 3 comes back, so 3
 * enters its view on a TC formed from the others' timeouts — which can reach it before their
 * new-view messages carrying the newer QC. Its proposal forks below blocks the others committed.
 * With the lock they refuse it; without it they vote, and the fork commits too.
 */
function staleLeaderSchedule(sim: Sim, rounds: number): void {
  for (let round = 0; round < rounds; round++) {
    submit(sim, 8);
    sim.run({ ms: 50 });
    sim.partition([[3]]);
    sim.run({ ms: 200 });
    sim.runUntil(() => [0, 1, 2].every((i) => sim.status(i).view % 4 === 2), { maxMs: 2_000 });
    sim.crash(2);
    sim.heal();
    sim.run({ ms: 400 });
    sim.restart(2);
    sim.run({ ms: 100 });
  }
}

const STALE_NETWORK = { reorder: 0.5 };

test('without the locking rule the safety checker finds a violation within a bounded number of seeds', (t) => {
  const unlocked = { ...hotstuff(), create: (o: CoreOptions) => new Unlocked(o) };
  const maxSeeds = 20;
  let found: SafetyViolation | undefined;
  let seeds = 0;
  for (let seed = 1; seed <= maxSeeds && found === undefined; seed++) {
    seeds++;
    const sim = new Simulation({ protocol: unlocked, n: 4, seed, network: STALE_NETWORK });
    try {
      staleLeaderSchedule(sim, 12);
    } catch (error) {
      if (!(error instanceof SafetyViolation)) throw error;
      found = error;
    }
  }
  t.log(`violation after ${seeds} seed(s): ${found?.detail ?? 'none'}`);
  t.true(found instanceof SafetyViolation, `no violation in ${maxSeeds} seeds`);
  // The same schedule with the lock in place stays safe.
  const honest = new Simulation({ protocol: hotstuff(), n: 4, seed: found?.seed ?? 1, network: STALE_NETWORK });
  t.notThrows(() => staleLeaderSchedule(honest, 12));
  t.true(honest.runUntilCommitted({ maxMs: 30_000 }));
});
