/**
 * The chaos runner: its schedule and lost-write rule as pure functions, short real runs of each
 * protocol on worker threads (serial: each run uses both cores), and `knhk chaos` end to end.
 * Every run logs its seed; `KNHK_SEED=<seed>` replays its faults and requests.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chaosPassed, ChaosSchedule, lostAcknowledgedWrites, runChaos, type ChaosFault, type ChaosOptions, type ChaosReport } from '../actors/chaos.js';
import type { OkOperation, Operation } from '../protocols/history/index.js';
import type { KvOperation, KvResponse } from '../protocols/consensus/index.js';
import { testSeed } from './helpers/seed.js';
import { formatChaosReport } from '../cli/chaos.js';

const run = promisify(execFile);
const knhk = fileURLToPath(new URL('../cli/knhk.js', import.meta.url));

test('the schedule is a function of the seed and never puts more than f replicas out at once', (t) => {
  for (const [n, f, kinds] of [
    [4, 1, ['crash', 'partition', 'delay', 'byzantine']],
    [5, 2, ['crash', 'partition', 'delay']],
    [7, 2, ['crash', 'partition', 'byzantine']],
  ] as const) {
    for (let seed = 1; seed <= 50; seed++) {
      const a = new ChaosSchedule({ n, f, kinds, seed });
      const b = new ChaosSchedule({ n, f, kinds, seed });
      for (let k = 0; k < 20; k++) {
        const episode = a.next();
        t.deepEqual(b.next(), episode);
        t.true(episode.faults.length >= 1 && episode.faults.length <= 2);
        t.true(episode.quietMs >= 1000 && episode.holdMs >= 1500);
        const out = new Set<number>();
        for (const fault of episode.faults as ChaosFault[]) {
          t.true((kinds as readonly string[]).includes(fault.kind));
          if (fault.kind === 'crash' || fault.kind === 'byzantine') out.add(fault.node);
          if (fault.kind === 'partition') {
            t.true(fault.minority.length < n / 2, 'a partition cuts off a strict minority');
            t.is(fault.groups.flat().length, n);
            for (const node of fault.minority) out.add(node);
          }
          if (fault.kind === 'delay') for (const link of fault.links) t.not(link.from, link.to);
        }
        t.true(out.size <= f, `at most f = ${f} replicas crashed, Byzantine or cut off (seed ${seed})`);
        t.is(new Set(episode.faults.map((x) => x.kind)).size, episode.faults.length);
      }
    }
  }
  t.throws(() => new ChaosSchedule({ n: 4, f: 0, kinds: ['crash'], seed: 1 }));
  t.throws(() => new ChaosSchedule({ n: 4, f: 1, kinds: [], seed: 1 }));
});

test('lostAcknowledgedWrites counts the acknowledged writes a final read proves lost, by real-time order', (t) => {
  // Built by hand: the recorder's clock must be monotonic, and these intervals overlap on purpose.
  const history: Operation<KvOperation, KvResponse>[] = [];
  const done = (client: string, input: KvOperation, output: KvResponse, call: number, ret: number): OkOperation<KvOperation, KvResponse> => {
    const op: OkOperation<KvOperation, KvResponse> = { id: history.length, client, input, call, outcome: 'ok', return: ret, output };
    history.push(op);
    return op;
  };
  // Key a: put 1 [0,1], then put 2 [2,3]; the final read sees 1: put 2 is lost.
  done('c0', { type: 'put', key: 'a', value: '1' }, { ok: true }, 0, 1);
  const lostPut = done('c1', { type: 'put', key: 'a', value: '2' }, { ok: true, value: '1' }, 2, 3);
  // Key b: put 1 [0,5] concurrent with put 2 [1,4]; a final read of 1 is fine (put 1 may come last).
  done('c0', { type: 'put', key: 'b', value: 'b1' }, { ok: true }, 0, 5);
  done('c1', { type: 'put', key: 'b', value: 'b2' }, { ok: true }, 1, 4);
  // Key c: delete [0,1], put [2,3]; an indeterminate delete [2.5, ∞) could explain an absent final read.
  done('c0', { type: 'delete', key: 'c' }, { ok: true }, 0, 1);
  done('c1', { type: 'put', key: 'c', value: 'c1' }, { ok: true }, 2, 3);
  history.push({ id: history.length, client: 'c2', input: { type: 'delete', key: 'c' }, call: 2.5, outcome: 'indeterminate' });
  // Key d: put [2,3] and nothing could remove it; a final read of absent loses it.
  const lostD = done('c1', { type: 'put', key: 'd', value: 'd1' }, { ok: true }, 2, 3);
  const finals = new Map<string, OkOperation<KvOperation, KvResponse>>();
  finals.set('a', done('final', { type: 'get', key: 'a' }, { ok: true, value: '1' }, 10, 11));
  finals.set('b', done('final', { type: 'get', key: 'b' }, { ok: true, value: 'b1' }, 10, 11));
  finals.set('c', done('final', { type: 'get', key: 'c' }, { ok: true }, 10, 11));
  finals.set('d', done('final', { type: 'get', key: 'd' }, { ok: true }, 10, 11));
  const lost = lostAcknowledgedWrites(history, finals);
  t.deepEqual(
    lost.map((l) => l.write),
    [lostPut, lostD],
  );
  // A value nobody wrote: every acknowledged write to the key is lost.
  finals.set('a', done('final', { type: 'get', key: 'a' }, { ok: true, value: 'forged' }, 12, 13));
  t.is(lostAcknowledgedWrites(history, finals).filter((l) => l.key === 'a').length, 2);
});

test('a run in which a replica the schedule left honest was accused, or a replica crashed by itself, fails, and its report says so', (t) => {
  const report: ChaosReport = {
    protocol: 'raft', n: 5, f: 2, policy: 'classical', seed: 1, clients: 8, keys: 20, fault_kinds: ['crash'], duration_s: 1, wall_s: 2,
    ops_ok: 10, ops_failed: 0, ops_indeterminate: 0, throughput_ops_s: 10, faults: 1, faults_by_kind: { crash: 1, partition: 0, delay: 0, byzantine: 0 },
    restarts: 1, evidence: 0, evidence_against_honest: 0, unplanned_crashes: 0, linearizable: true, violation: null, lost_acknowledged: 0, lost_writes: [],
    final_reads_missing: 0, converged: true, convergence_note: '', replicas: [], schedule: [], problems: [], stalled: [], check_s: 0,
  };
  t.true(chaosPassed(report));
  const accused: ChaosReport = { ...report, evidence: 1, evidence_against_honest: 1, problems: ['replica 2, never Byzantine, accused by the cluster of receipt-log-fork: …'] };
  t.false(chaosPassed(accused));
  const text = formatChaosReport(accused);
  t.regex(text, /evidence\s+1 proofs of misbehaviour, 1 against replicas never Byzantine/);
  t.regex(text, /verdict\s+FAIL/);
  t.regex(text, /replica 2, never Byzantine, accused/);
  t.false(chaosPassed({ ...report, restarts: 2, unplanned_crashes: 1, problems: ['1.0s replica 3 crashed: Error: an invariant broke'] }), 'a replica that crashed by itself fails the run');
});

/** A short real run; asserts the acceptance criteria and logs the summary. */
async function shortRun(t: import('ava').ExecutionContext, options: Omit<ChaosOptions, 'seed'>): Promise<ChaosReport> {
  const seed = testSeed(t);
  let phase = '';
  // Settling is bounded tighter than the CLI's default so that a stuck run fails inside the test's timeout.
  const report = await runChaos({ settleTimeoutMs: 15_000, ...options, seed }, (p) => {
    if (p.phase !== phase) t.log(`${(p.elapsedMs / 1000).toFixed(1)} s: ${(phase = p.phase)}`);
  });
  t.log(
    `${report.protocol} n=${report.n}: ok ${report.ops_ok} failed ${report.ops_failed} indeterminate ${report.ops_indeterminate}, faults ${report.faults} ${JSON.stringify(report.faults_by_kind)}, restarts ${report.restarts}, ${report.wall_s} s`,
  );
  t.log(report.schedule.join('; '));
  if (report.violation !== null) t.log(report.violation);
  if (report.problems.length > 0) t.log(report.problems.join('\n'));
  if (report.stalled.length > 0) t.log(report.stalled.join('\n'));
  t.is(report.linearizable, true);
  t.is(report.lost_acknowledged, 0);
  t.is(report.final_reads_missing, 0);
  t.true(report.converged, 'every replica reaches the same commit index and state hash');
  t.deepEqual(report.stalled, [], 'no step of the runner hung');
  t.is(report.evidence_against_honest, 0, 'no replica the schedule left honest was accused');
  t.is(report.unplanned_crashes, 0, 'no replica crashed by itself');
  t.true(report.ops_ok > 0);
  t.true(report.faults > 0);
  return report;
}

test.serial('runChaos: PBFT n=4 under crash, partition, delay and Byzantine faults stays linearizable and converges', async (t) => {
  t.timeout(90_000);
  // A checkpoint every 2 sequences: restarts and lagging replicas go through stored states and state transfer.
  await shortRun(t, { protocol: 'pbft', n: 4, durationMs: 10_000, faults: ['crash', 'partition', 'delay', 'byzantine'], snapshotInterval: 2 });
});

test.serial('runChaos: HotStuff n=4 under crash, partition, delay and Byzantine faults stays linearizable and converges', async (t) => {
  t.timeout(90_000);
  await shortRun(t, { protocol: 'hotstuff', n: 4, durationMs: 10_000, faults: ['crash', 'partition', 'delay', 'byzantine'], snapshotInterval: 4 });
});

test.serial('runChaos: Raft n=5 under crash, partition and delay faults stays linearizable and converges', async (t) => {
  t.timeout(90_000);
  await shortRun(t, { protocol: 'raft', n: 5, durationMs: 10_000, faults: ['crash', 'partition', 'delay'], snapshotInterval: 8 });
});

test.serial('knhk chaos --json prints one object with the report keys and exits 0 on a passing run', async (t) => {
  t.timeout(90_000);
  const seed = testSeed(t);
  const { stdout } = await run(process.execPath, [knhk, 'chaos', '--protocol', 'raft', '--n', '3', '--duration', '4s', '--seed', String(seed), '--json'], { timeout: 80_000 });
  const lines = stdout.trim().split('\n');
  t.is(lines.length, 1, 'nothing but the JSON object on stdout');
  const report = JSON.parse(lines[0] as string) as Record<string, unknown>;
  for (const key of ['ops_ok', 'ops_failed', 'ops_indeterminate', 'faults', 'restarts', 'linearizable', 'lost_acknowledged', 'converged', 'evidence', 'evidence_against_honest', 'seed', 'protocol', 'n', 'duration_s']) {
    t.true(key in report, key);
  }
  t.like(report, { protocol: 'raft', n: 3, seed, linearizable: true, lost_acknowledged: 0, converged: true, evidence_against_honest: 0 });
});

test('knhk chaos refuses bad arguments with status 2 and says why', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--protocol', 'raft', '--faults', 'crash,byzantine'], /raft tolerates crash faults only/],
    [['--faults', 'crash,meteor'], /unknown fault kind "meteor"/],
    [['--protocol', 'pbft', '--n', '3'], /needs n ≥ 3f\+1 = 4/],
    [['--protocol', 'raft', '--n', '2'], /needs n ≥ 2f\+1 = 3/],
    [['--duration', 'soon'], /bad duration "soon"/],
    [['--duration', '0s'], /bad duration "0s"/],
    [['--protocol', 'paxos'], /--protocol must be one of/],
    [['--snapshot-interval', '0'], /snapshotInterval must be a positive integer/],
    [['--snapshot-interval', 'often'], /--snapshot-interval must be an integer/],
    [['--bogus'], /Unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    const error = (await t.throwsAsync(run(process.execPath, [knhk, 'chaos', ...args], { timeout: 30_000 }))) as unknown as { code: number; stderr: string };
    t.is(error.code, 2, args.join(' '));
    t.regex(error.stderr, message, args.join(' '));
    t.regex(error.stderr, /usage: knhk chaos/);
  }
});
