/**
 * Chained HotStuff in the deterministic simulator: progress under each Byzantine behaviour, after
 * partitions and crashes, catching up after a lossy heal, and the safety checker catching replicas
 * built without the lock.
 * Every run is replayable from the seed it logs.
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import type { ConsensusConfig, Core, CoreOptions, Input, NodeStatus, QuorumCert, Ready, SignedPosition } from '../protocols/consensus/index.js';
import { HotStuffCore, hotstuff, leaderOf, makeBlock, proposalBody, type Block, type HotStuffMessage } from '../protocols/hotstuff/index.js';
import { BYZANTINE_MODES } from '../protocols/sim/byzantine.js';
import { SafetyViolation } from '../protocols/sim/checker.js';
import { Prng } from '../protocols/sim/prng.js';
import { Simulation } from '../protocols/sim/simulation.js';
import { testSeed } from './helpers/seed.js';
import { slicesChangeNothing } from './helpers/slices.js';

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

test('a crashed replica stops being chosen as leader, so no view waits for it, and is chosen again once it votes', (t) => {
  const seed = testSeed(t);
  const baseTimeoutMs = 150;
  const sim = cluster(seed, 4, { baseTimeoutMs });
  sim.crash(3);
  const sequential = (count: number): number[] =>
    Array.from({ length: count }, () => {
      const s = sim.submit();
      t.true(sim.runUntil(() => s.done, { maxMs: 10_000 }));
      return s.latencyMs ?? Infinity;
    });
  sequential(1);
  const timeouts = sim.stats().byType.timeout?.messages ?? 0;
  const latencies = sequential(20);
  // Round robin would give replica 3 one view in four, each waiting out a view timeout.
  t.true(Math.max(...latencies) < baseTimeoutMs, `latencies ${latencies.map((ms) => ms.toFixed(1)).join(', ')} ms`);
  t.is(sim.stats().byType.timeout?.messages ?? 0, timeouts, 'no view timed out');
  sim.restart(3);
  let led = false;
  for (let k = 0; k < 100 && !led; k++) {
    const s = sim.submit();
    led = sim.runUntil(() => sim.status(3).role === 'leader' || s.done, { maxMs: 10_000 }) && sim.status(3).role === 'leader';
    t.true(sim.runUntil(() => s.done, { maxMs: 10_000 }));
  }
  t.true(led, 'replica 3 leads a view again');
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

test('a replica restarted behind slow links catches up under load, asking for each missing block at doubling gaps', (t) => {
  const seed = testSeed(t);
  const sim = cluster(seed, 4, { snapshotInterval: 8, fetchRetryMs: 50 });
  submit(sim, 12);
  t.true(sim.runUntilCommitted({ maxMs: 10_000 }));
  sim.crash(3);
  submit(sim, 80);
  t.true(sim.runUntilCommitted({ maxMs: 60_000 }));
  // Answers to 3 take 450–750 ms to go and come back: nine to fifteen fetch-retry periods.
  for (const i of [0, 1, 2]) {
    sim.link(i, 3, { extraDelayMs: [225, 375] });
    sim.link(3, i, { extraDelayMs: [225, 375] });
  }
  const requestsBefore = sim.stats().byType['block-request']?.messages ?? 0;
  sim.restart(3);
  submit(sim, 300);
  // Every command, not every position: an idle leader may have committed an empty block the others never hear of.
  const caughtUp = (): boolean => sim.submissions().every((s) => s.done) && sim.committed(3).length === sim.committed(0).length;
  t.true(sim.runUntil(caughtUp, { maxMs: 60_000 }), `replica 3 executed ${sim.committed(3).length} of ${sim.committed(0).length} commands`);
  prefixesAgree(t, sim, [0, 1, 2, 3]);
  // Asking for every missing block every period (before stop 25) sent about 6 000 requests here
  // (2 650–8 900 over the 22 of 24 seeds that fetched at all); at growing gaps, at most 2 560 over 47.
  const requests = (sim.stats().byType['block-request']?.messages ?? 0) - requestsBefore;
  t.true(requests < 3_500, `${requests} block requests while catching up`);
});

test('a replica partitioned away under sustained load, with snapshots every 2 heights, catches up past pruned history', (t) => {
  // Peers' snapshots move on every 2 heights under load, so the laggard's offers rarely agree, and
  // the chain of orphans it walks down expires from the bottom first (ORPHAN_VIEWS). Until stop 28
  // the orphans left above then waited for a parent nobody asked for any more: half of these seeds
  // left replica 3 behind for good, the cluster idle, seeds 2 and 3 among them; a third is new each run.
  for (const seed of [2, 3, testSeed(t)]) {
    const sim = cluster(seed, 4, { snapshotInterval: 2 });
    submit(sim, 5);
    t.true(sim.runUntilCommitted({ maxMs: 10_000 }));
    sim.partition([[3], [0, 1, 2]]);
    for (let k = 0; k < 500; k++) sim.at(5 * k, () => void sim.submit());
    sim.run({ ms: 1_000 });
    sim.heal();
    sim.run({ ms: 1_500 });
    t.true(sim.runUntilCommitted({ maxMs: 60_000 }), `seed ${seed}`);
    const caughtUp = sim.runUntil(() => sim.committed(3).length === sim.committed(0).length, { maxMs: 30_000 });
    t.true(caughtUp, `seed ${seed}: replica 3 executed ${sim.committed(3).length} of ${sim.committed(0).length} commands`);
    prefixesAgree(t, sim, [0, 1, 2, 3]);
  }
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

test('HotStuff: execution in slices changes nothing the simulator can see: same commits, same messages', (t) => {
  const seed = testSeed(t);
  slicesChangeNothing(t, (executionSlice) => {
    const sim = cluster(seed, 4, { batchSize: 16, snapshotInterval: 4, ...(executionSlice === undefined ? {} : { executionSlice }) });
    submit(sim, 80);
    return sim;
  }, [1, 5]);
});

test('property: random partitions, crashes and a Byzantine replica never break safety and the cluster recovers', (t) => {
  const seed = testSeed(t);
  const schedule = fc.record({
    seed: fc.nat(),
    mode: fc.constantFrom(...BYZANTINE_MODES, null),
    byzantine: fc.nat(3),
    executionSlice: fc.constantFrom(undefined, 1, 3),
    steps: fc.array(fc.record({ fault: fc.nat(4), node: fc.nat(3), ms: fc.integer({ min: 20, max: 400 }) }), { minLength: 3, maxLength: 12, size: 'max' }),
  });
  t.notThrows(() =>
    fc.assert(
      fc.property(schedule, (s) => {
        const sim = cluster(s.seed, 4, { snapshotInterval: 16, ...(s.executionSlice === undefined ? {} : { executionSlice: s.executionSlice }) }, { loss: 0.02, reorder: 0.2 });
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

test('after a lossy heal the laggard catches up, and the idle cluster then stays idle', (t) => {
  const seed = testSeed(t);
  const sim = cluster(seed);
  submit(sim, 5);
  t.true(sim.runUntilCommitted({ maxMs: 10_000 }));
  sim.partition([[3], [0, 1, 2]]);
  submit(sim, 5);
  t.true(sim.runUntilCommitted({ maxMs: 10_000 }), 'three replicas commit without 3');
  sim.run({ ms: 500 });
  // The partition heals, but for three seconds nothing reaches 3: the first answers to its
  // timeouts are lost, and the others are idle by then.
  for (const i of [0, 1, 2]) sim.link(i, 3, { loss: 1 });
  sim.heal();
  sim.run({ ms: 3_000 });
  sim.clearLinks();
  t.true(sim.runUntil(() => sim.committed(3).length === 10, { maxMs: 60_000 }), `replica 3 executed ${sim.committed(3).length} of 10 commands`);
  prefixesAgree(t, sim, [0, 1, 2, 3]);
  sim.run({ ms: 1_000 });
  const settled = sim.stats().messages;
  sim.run({ ms: 30_000 });
  t.is(sim.stats().messages, settled, 'nothing is sent once it caught up');
});

/** HotStuff without its locking rule: votes for any block of the current view. Test-only. */
class Unlocked extends HotStuffCore {
  protected override safeNode(_block: Block, _justify: QuorumCert): boolean {
    return true;
  }
}

/**
 * A Byzantine leader (test-only), built on {@link Unlocked}: until it has forked it votes only in
 * its own views, and the first time it enters its view on a TC it proposes, instead of extending
 * its high QC, a sibling of its previous proposal — a block on that proposal's parent, carrying
 * the QC on that parent — which is what the lock exists to refuse.
 */
class ForkingLeader implements Core<HotStuffMessage> {
  readonly #core: Unlocked;
  #previous: Block | undefined;
  #forked = false;

  constructor(options: CoreOptions) {
    this.#core = new Unlocked(options);
  }

  get config(): ConsensusConfig {
    return this.#core.config;
  }

  step(input: Input<HotStuffMessage>, now: number): void {
    this.#core.step(input, now);
  }

  status(): NodeStatus {
    return this.#core.status();
  }

  signedThrough(): SignedPosition {
    return this.#core.signedThrough();
  }

  ready(): Ready<HotStuffMessage> {
    const ready = this.#core.ready();
    const { nodeId, n } = this.config;
    const messages = ready.messages
      .filter((m) => this.#forked || m.body.type !== 'vote' || leaderOf(m.body.view, n) === nodeId)
      .map((m) => {
        if (m.body.type !== 'proposal') return m;
        const { block, tc } = m.body;
        const previous = this.#previous;
        this.#previous = block;
        if (this.#forked || tc === undefined || previous === undefined) return m;
        this.#forked = true;
        return { to: m.to, body: proposalBody(makeBlock({ ...block, parent: previous.parent, height: previous.height, justify: previous.justify }), tc) };
      });
    return { ...ready, messages };
  }
}

/**
 * Replica 1 is the forking leader, replicas 0, 2, 3 run `Core` (honest or unlocked). When 0 votes
 * for c4 in a chain c1 ← c2 ← c3 ← c4 of consecutive views (c2 proposed by 1, which votes for
 * neither c3 nor c4, so the votes 2 and 3 re-broadcast on timeout cannot rebuild QC(c4)), 0's
 * links out are cut: it alone forms QC(c4) and commits c2, then crashes.
 * 2 and 3 hold QC(c3): they committed c1 and lock on c2. Views time out until 1 leads, on a TC,
 * and proposes the fork on c1 at c2's height. Locked, 2 and 3 refuse it; unlocked, they vote,
 * and the fork commits at c2's height beside 0's c2.
 */
function forkSchedule(seed: number, Core: new (options: CoreOptions) => HotStuffCore): Sim {
  const definition = { ...hotstuff(), create: (o: CoreOptions) => (o.config.nodeId === 1 ? new ForkingLeader(o) : new Core(o)) };
  const sim = new Simulation({ protocol: definition, n: 4, seed });
  sim.byzantine(1, 'replay');
  submit(sim, 60);
  const zero = (): HotStuffCore => sim.core<HotStuffCore>(0);
  let c2: Block | undefined;
  const chained = sim.runUntil(() => {
    const voted = zero().lastVotedView;
    const c3 = zero().block(zero().highQC.valueHash);
    const before = c3 === undefined ? undefined : zero().block(c3.parent);
    if (voted % 4 !== 3 || c3?.view !== voted - 1 || before?.view !== voted - 2 || before.commands.length === 0) return false;
    c2 = before;
    return true;
  }, { maxMs: 10_000 });
  if (!chained || c2 === undefined) throw new Error('no chain of consecutive views formed');
  const height = c2.height;
  for (const to of [1, 2, 3]) sim.link(0, to, { loss: 1 });
  if (!sim.runUntil(() => zero().committedBlock.height >= height, { maxMs: 10_000 })) throw new Error('replica 0 did not commit c2');
  sim.crash(0);
  sim.run({ ms: 10_000 });
  return sim;
}

test('without the locking rule a leader\'s fork commits beside a committed block; with it the fork is refused', (t) => {
  const seed = testSeed(t);
  const violation = t.throws(() => forkSchedule(seed, Unlocked), { instanceOf: SafetyViolation });
  t.log(violation?.detail);
  t.regex(violation?.detail ?? '', /executed different commands at position/);
  const honest = forkSchedule(seed, HotStuffCore);
  honest.clearLinks();
  honest.restart(0);
  t.true(honest.runUntilCommitted({ maxMs: 60_000 }));
  prefixesAgree(t, honest, [0, 2, 3]);
});
