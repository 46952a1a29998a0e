/**
 * `knhk sim` end to end: a sweep's summary, its JSON form, and exit codes.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const knhk = fileURLToPath(new URL('../cli/knhk.js', import.meta.url));

test('knhk sim --json prints one JSON object with the sweep summary for each protocol', async (t) => {
  for (const protocol of ['pbft', 'hotstuff', 'raft']) {
    const { stdout } = await run(process.execPath, [knhk, 'sim', '--protocol', protocol, '--n', '4', '--seeds', '3', '--faults', 'crash,partition,byzantine', '--json'], { timeout: 120_000 });
    const lines = stdout.trim().split('\n');
    t.is(lines.length, 1, 'nothing but the JSON object on stdout');
    const summary = JSON.parse(lines[0] as string) as Record<string, unknown>;
    t.like(summary, { protocol, n: 4, seeds: 3, commits: 90, resumes: 0, violations: 0, liveness_failures: 0 });
    t.true(typeof (summary.slowest_seed as { seed: number }).seed === 'number');
  }
});

test('knhk sim prints a human summary and refuses bad arguments with status 2', async (t) => {
  const { stdout } = await run(process.execPath, [knhk, 'sim', '--seeds', '2', '--faults', 'crash'], { timeout: 120_000 });
  t.regex(stdout, /seeds run\s+2/);
  t.regex(stdout, /violations\s+0/);
  const sliced = await run(process.execPath, [knhk, 'sim', '--protocol', 'hotstuff', '--seeds', '2', '--execution-slice', '1', '--json'], { timeout: 120_000 });
  const slicedSummary = JSON.parse(sliced.stdout) as Record<string, unknown>;
  t.like(slicedSummary, { protocol: 'hotstuff', seeds: 2, commits: 60, violations: 0, liveness_failures: 0 });
  t.true((slicedSummary.resumes as number) > 0, 'replicas executing a command per step were resumed');
  for (const args of [['--protocol', 'paxos'], ['--faults', 'meteor'], ['--seeds', '0'], ['--execution-slice', '0'], ['--snapshot-interval', '0'], ['--snapshot-interval', '1.5'], ['--bogus']]) {
    const error = (await t.throwsAsync(run(process.execPath, [knhk, 'sim', ...args]))) as unknown as { code: number; stderr: string };
    t.is(error.code, 2, args.join(' '));
    t.regex(error.stderr, /usage: knhk sim/);
  }
});

test('knhk sim --snapshot-interval makes every protocol store its state that often, and the sweep still passes', async (t) => {
  for (const protocol of ['pbft', 'hotstuff', 'raft']) {
    const sweep = async (...extra: string[]): Promise<Record<string, unknown>> => {
      const { stdout } = await run(process.execPath, [knhk, 'sim', '--protocol', protocol, '--seeds', '2', '--faults', 'crash,partition', '--json', ...extra], { timeout: 120_000 });
      return JSON.parse(stdout) as Record<string, unknown>;
    };
    const often = await sweep('--snapshot-interval', '2');
    const usual = await sweep();
    t.like(often, { protocol, commits: 60, violations: 0, liveness_failures: 0 });
    // 30 commands a seed: the defaults (PBFT 10 sequences, HotStuff 64 heights, Raft 1 024 entries) store a few states at most.
    t.true((often.stored_states as number) > 4 * (usual.stored_states as number) + 20, `${protocol}: ${String(often.stored_states)} states stored every 2 positions, ${String(usual.stored_states)} by default`);
  }
});

test('knhk sim --state-machine --workload sweeps a machine and commands of the user: the ledger passes; a machine whose replicas disagree is a safety violation; bad modules are refused with status 2', async (t) => {
  const ledger = fileURLToPath(new URL('../examples/ledger/ledger.js', import.meta.url));
  const workload = `${fileURLToPath(new URL('../examples/ledger/workload.js', import.meta.url))}#ledgerWorkload`;
  const fixtures = fileURLToPath(new URL('./fixtures/state-machines.js', import.meta.url));
  const workloads = fileURLToPath(new URL('./fixtures/workloads.js', import.meta.url));
  const sim = (...args: string[]): Promise<{ stdout: string; stderr: string }> => run(process.execPath, [knhk, 'sim', '--seeds', '2', '--faults', 'crash,partition,byzantine', '--snapshot-interval', '2', ...args], { timeout: 120_000 });

  const passed = JSON.parse((await sim('--state-machine', `${ledger}#Ledger`, '--state-machine-args', '{"overdraft":5}', '--workload', workload, '--json')).stdout) as Record<string, unknown>;
  t.like(passed, { state_machine: 'knhk-example/ledger/v1', seeds: 2, commits: 60, violations: 0, liveness_failures: 0 });
  t.true((passed.stored_states as number) > 0, 'the ledger was stored and restored');
  t.regex((await sim('--workload', workload)).stdout, /state machine\s+knhk\/kv/);

  const diverged = (await t.throwsAsync(sim('--state-machine', `${fixtures}#Divergent`, '--workload', workload, '--json'))) as unknown as { code: number; stdout: string; stderr: string };
  t.is(diverged.code, 1);
  t.like(JSON.parse(diverged.stdout) as Record<string, unknown>, { state_machine: 'knhk-test/divergent', violations: 2 });
  t.regex(diverged.stderr, /seed 1: /);

  const refused: Array<[string[], RegExp]> = [
    [['--state-machine', ledger], /takes MODULE#EXPORT/],
    [['--state-machine', `${ledger}#Nothing`], /exports no Nothing/],
    [['--state-machine', `${ledger}#ledgerPayload`], /not made by defineStateMachine/],
    [['--state-machine', `${ledger}#Ledger`], /stateMachineArgs do not fit/],
    [['--state-machine', `${ledger}#Ledger`, '--state-machine-args', '{"overdraft":-1}'], /stateMachineArgs do not fit/],
    [['--state-machine', `${ledger}#Ledger`, '--state-machine-args', '{overdraft'], /is not JSON/],
    [['--state-machine', `${fixtures}#Misplaced`], /does not export the state machine/],
    [['--state-machine', '/nowhere/machine.js#Machine'], /does not load/],
    [['--state-machine-args', '{}'], /needs --state-machine/],
    [['--workload', `${ledger}#Ledger`], /is not a function/],
    [['--workload', `${workloads}#textWorkload`], /made command \d+ of string, not a Uint8Array/],
    [['--workload', `${workloads}#failingWorkload`], /threw on command 2: no third command/],
  ];
  for (const [args, reason] of refused) {
    const error = (await t.throwsAsync(sim(...args))) as unknown as { code: number; stderr: string };
    t.is(error.code, 2, args.join(' '));
    t.regex(error.stderr, reason, args.join(' '));
  }
});
