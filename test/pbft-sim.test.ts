/**
 * PBFT in the deterministic simulator: the seed's safety, liveness and latency tests, state
 * transfer, and the safety checker catching a replica that counts 2f votes instead of 2f+1.
 * Every randomized run logs the seed that replays it.
 */
import test, { type ExecutionContext } from 'ava';
import type { CoreOptions } from '../protocols/consensus/index.js';
import { pbft, PbftCore, primaryOf, type PbftMessage } from '../protocols/pbft/index.js';
import { BYZANTINE_MODES, regionTopology, Simulation, sweep, type SimulationOptions, type Submission } from '../protocols/sim/index.js';
import { testSeed } from './helpers/seed.js';
import { slicesChangeNothing } from './helpers/slices.js';

type Sim = Simulation<PbftMessage>;

function cluster(seed: number, options: Partial<SimulationOptions<PbftMessage>> = {}): Sim {
  return new Simulation<PbftMessage>({ protocol: pbft(), n: 4, seed, ...options });
}

function submitAll(sim: Sim, count: number): Submission[] {
  return Array.from({ length: count }, () => sim.submit());
}

function agreeOnPrefixes(t: ExecutionContext, sim: Sim, replicas: readonly number[]): void {
  const logs = replicas.map((i) => sim.committed(i).map((c) => `${c.client}/${c.timestamp}`));
  const longest = logs.reduce((a, b) => (b.length > a.length ? b : a), []);
  for (const [k, log] of logs.entries()) t.deepEqual(log, longest.slice(0, log.length), `replica ${replicas[k]} diverges`);
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

test('test_pbft_safety_no_double_commit', (t) => {
  const seed = testSeed(t);
  for (const n of [4, 7]) {
    const summary = sweep({ protocol: 'pbft', n, seeds: n === 4 ? 40 : 12, seedStart: seed, faults: ['crash', 'partition', 'byzantine', 'network', 'delay'], stopOnViolation: true });
    t.log(`n=${n}: ${summary.seeds} seeds, ${summary.commits} commits in ${summary.wall_ms} ms`);
    t.is(summary.violations, 0, JSON.stringify(summary.first_violation));
    t.is(summary.liveness_failures, 0, `first liveness failure at seed ${summary.first_liveness_failure}`);
    t.is(summary.commits, summary.seeds * 30, 'every command of every seed committed');
  }
});

test('test_pbft_liveness_under_byzantine', (t) => {
  const seed = testSeed(t);
  for (const mode of BYZANTINE_MODES) {
    for (const liar of [0, 2]) {
      const sim = cluster(seed + liar);
      sim.byzantine(liar, mode);
      submitAll(sim, 20);
      t.true(sim.runUntilCommitted({ maxMs: 60_000 }), `${mode} replica ${liar}${liar === 0 ? ' (the primary)' : ''}`);
      agreeOnPrefixes(t, sim, [0, 1, 2, 3].filter((i) => i !== liar));
      if (mode === 'forge') t.true(sim.stats().rejected.forged > 0, 'forged signatures were refused before reaching a core');
    }
  }
  const big = new Simulation<PbftMessage>({ protocol: pbft(), n: 7, seed });
  big.byzantine(0, 'equivocate');
  big.byzantine(4, 'silent');
  submitAll(big, 20);
  t.true(big.runUntilCommitted({ maxMs: 60_000 }), 'n = 7 with f = 2 Byzantine replicas, one of them the primary');
});

test('test_pbft_view_change_on_leader_failure', (t) => {
  const sim = cluster(testSeed(t));
  submitAll(sim, 5);
  t.true(sim.runUntilCommitted({ maxMs: 5_000 }));
  t.is(sim.status(1).leader, 0);
  sim.crash(0);
  const after = submitAll(sim, 10);
  t.true(sim.runUntilCommitted({ maxMs: 30_000 }));
  // Clients are answered by f+1 replicas; the third may still be executing the last position.
  t.true(sim.runUntil(() => [2, 3].every((i) => sim.status(i).commitIndex === sim.status(1).commitIndex), { maxMs: 5_000 }));
  for (const i of [1, 2, 3]) {
    const status = sim.status(i);
    t.true(status.view >= 1, `replica ${i} moved past view 0`);
    t.not(status.leader, 0);
    t.is(status.leader, primaryOf(status.view, 4));
    t.is(status.commitIndex, sim.status(1).commitIndex);
  }
  t.true(after.every((s) => s.done));
  // The old primary rejoins in the new view and catches up.
  sim.restart(0);
  submitAll(sim, 12);
  t.true(sim.runUntilCommitted({ maxMs: 30_000 }));
  t.true(sim.runUntil(() => sim.status(0).view === sim.status(1).view && sim.executed(0) === sim.executed(1), { maxMs: 30_000 }));
  agreeOnPrefixes(t, sim, [0, 1, 2, 3]);
});

test('test_byzantine_leader_equivocation', (t) => {
  const seed = testSeed(t);
  // Different proposals to different backups: safety holds and every command commits.
  const split = cluster(seed);
  split.byzantine(0, 'equivocate');
  submitAll(split, 20);
  t.true(split.runUntilCommitted({ maxMs: 60_000 }));
  agreeOnPrefixes(t, split, [1, 2, 3]);
  // Both proposals to everyone: each backup holds two signed pre-prepares for one slot, the proof.
  const loud = cluster(seed);
  loud.byzantine(0, 'double-vote');
  submitAll(loud, 10);
  t.true(loud.runUntilCommitted({ maxMs: 60_000 }));
  const evidence = loud.evidence(1).filter((e) => e.kind === 'equivocation');
  t.true(evidence.length > 0, 'a backup reports the equivocation');
  const [a, b] = evidence[0]?.messages as unknown as { from: number; body: { view: number; sequence: number; digest: Uint8Array } }[];
  t.is(evidence[0]?.node, 0);
  t.is(a?.from, 0);
  t.is(b?.from, 0);
  t.is(a?.body.view, b?.body.view);
  t.is(a?.body.sequence, b?.body.sequence);
  t.notDeepEqual(a?.body.digest, b?.body.digest);
  t.true(loud.stats().evidence > 0);
});

test('a replica that falls behind a stable checkpoint catches up by state transfer', (t) => {
  const sim = new Simulation<PbftMessage>({ protocol: pbft({ checkpointInterval: 4 }), n: 4, seed: testSeed(t), clients: 8 });
  sim.disconnect(3);
  submitAll(sim, 60);
  t.true(sim.runUntilCommitted({ maxMs: 30_000 }));
  t.is(sim.executed(3), 0);
  sim.connect(3);
  submitAll(sim, 16);
  t.true(sim.runUntilCommitted({ maxMs: 30_000 }));
  t.true(sim.runUntil(() => sim.executed(3) >= sim.executed(0) - 4, { maxMs: 30_000 }), `replica 3 at ${sim.executed(3)}, others at ${sim.executed(0)}`);
  t.true(sim.stats().byType.state !== undefined, 'the catch-up used state transfer');
  agreeOnPrefixes(t, sim, [0, 1, 2, 3]);
});

test('a replica that returns to an idle cluster catches up past the last stable checkpoint', (t) => {
  const sim = new Simulation<PbftMessage>({ protocol: pbft({ checkpointInterval: 4 }), n: 4, seed: testSeed(t), clients: 1 });
  sim.crash(3);
  // Commands one at a time until the others stop between two checkpoints: nothing after that
  // point will ever be covered by a stable checkpoint while the cluster is idle.
  do {
    sim.submit();
    t.true(sim.runUntilCommitted({ maxMs: 30_000 }));
  } while (sim.executed(0) < 9 || sim.executed(0) % 4 === 0);
  const target = sim.executed(0);
  sim.restart(3);
  t.true(sim.runUntil(() => sim.executed(3) === target, { maxMs: 30_000 }), `replica 3 at ${sim.executed(3)}, others at ${target}`);
  t.true(sim.stats().byType.committed !== undefined, 'the tail came as retransmitted commit certificates');
  agreeOnPrefixes(t, sim, [0, 1, 2, 3]);
});

test('a replica cut off while the others went on catches up after the heal, though the cluster is idle by then', (t) => {
  const sim = cluster(testSeed(t));
  sim.partition([[3], [0, 1, 2]]);
  for (let k = 0; k < 30; k++) sim.at(50 * k, () => sim.submit());
  sim.run({ ms: 50 * 30 });
  t.true(sim.runUntilCommitted({ maxMs: 30_000 }));
  sim.run({ ms: 10_000 });
  const target = sim.executed(0);
  t.true(target > 20, `the others executed ${target}`);
  t.is(sim.executed(3), 0);
  // Replica 3 timed out alone and asks for a view change nobody joins; no client sends anything.
  t.is(sim.status(3).role, 'view-change');
  sim.heal();
  t.true(sim.runUntil(() => sim.executed(3) === target, { maxMs: 30_000 }), `replica 3 at ${sim.executed(3)}, others at ${target}`);
  agreeOnPrefixes(t, sim, [0, 1, 2, 3]);
});

/**
 * Seed budget: 9 replicas with hybrid ML-DSA-65+Ed25519 costs as measured on this machine with
 * native ML-DSA (sign 1 118 µs, verify 353 µs; cost.ts), client beside the primary.
 */
function latencies(t: ExecutionContext, network: SimulationOptions<PbftMessage>['network'], n: number): number[] {
  const seed = testSeed(t);
  const all: number[] = [];
  for (let run = 0; run < 3; run++) {
    const sim = new Simulation<PbftMessage>({ protocol: pbft({ requestTimeoutMs: 2_000 }), n, seed: seed + run, clients: 1, crypto: 'hybrid-native', ...(network === undefined ? {} : { network }) });
    const subs = submitAll(sim, 30);
    t.true(sim.runUntilCommitted({ maxMs: 60_000 }));
    all.push(...subs.map((s) => s.latencyMs as number));
  }
  t.log(`virtual commit latency over ${all.length} commands: p50 ${percentile(all, 0.5).toFixed(1)} ms, p95 ${percentile(all, 0.95).toFixed(1)} ms, max ${Math.max(...all).toFixed(1)} ms`);
  return all;
}

test('test_pbft_latency_single_region', (t) => {
  const all = latencies(t, { regions: regionTopology(1, 9, [1, 5], [1, 5]) }, 9);
  t.true(percentile(all, 0.95) <= 50, `p95 ${percentile(all, 0.95)} ms > 50 ms`);
});

test('test_pbft_latency_multi_region', (t) => {
  const all = latencies(t, { regions: regionTopology(3, 3, [1, 5], [100, 200]) }, 9);
  t.true(percentile(all, 0.95) <= 300, `p95 ${percentile(all, 0.95)} ms > 300 ms`);
  t.true(percentile(all, 0.5) >= 100, 'the quorum must cross regions: faster would mean a broken network model');
});

/** PBFT counting 2f prepares and 2f commits where 2f+1 are needed (a test-only variant). */
class TwoFPbft extends PbftCore {
  constructor(options: CoreOptions) {
    super(options);
  }
  protected override prepareQuorum(): number {
    return this.config.quorumSize - 2;
  }
  protected override commitQuorum(): number {
    return this.config.quorumSize - 1;
  }
}

test('the safety checker catches PBFT counting 2f votes instead of 2f+1 within a bounded number of seeds', (t) => {
  const seed = testSeed(t);
  // Most start seeds find it within 50 seeds; KNHK_SEED=2117804047 needs 232 (200 was once too few, in stop 30's CI).
  const summary = sweep({ protocol: 'pbft', definition: { ...pbft(), create: (o) => new TwoFPbft(o) }, n: 4, seeds: 1000, seedStart: seed, faults: ['byzantine', 'partition'] });
  t.log(`violation after ${summary.seeds} seed(s): ${summary.first_violation?.detail}`);
  t.is(summary.violations, 1);
  t.regex(summary.first_violation?.detail ?? '', /different commands|state hash|invariant/);
  // The same seeds with the real quorums are safe.
  const sound = sweep({ protocol: 'pbft', n: 4, seeds: summary.seeds, seedStart: seed, faults: ['byzantine', 'partition'] });
  t.is(sound.violations, 0);
});

test('a primary with a one-command pipeline keeps proposing as it executes, without needless view changes', (t) => {
  const sim = new Simulation<PbftMessage>({ protocol: pbft({ pipeline: 1, batchSize: 1 }), n: 4, seed: testSeed(t), clients: 50 });
  submitAll(sim, 100);
  t.true(sim.runUntilCommitted({ maxMs: 30_000 }));
  // Clients are answered by f+1 replicas; the primary may execute the last command a moment later.
  t.true(sim.runUntil(() => sim.executed(0) === 100, { maxMs: 1_000 }));
  t.is(sim.status(0).view, 0);
});

test('execution in slices changes nothing the simulator can see: same commits, same messages', (t) => {
  const seed = testSeed(t);
  slicesChangeNothing(t, (slice) => {
    const sim = new Simulation<PbftMessage>({ protocol: pbft(slice === undefined ? {} : { executionSlice: slice }), n: 4, seed });
    submitAll(sim, 80);
    return sim;
  }, [1, 3]);
});
