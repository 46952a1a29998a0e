/**
 * The state benchmark: what storing a replica's replicated state costs at a checkpoint or snapshot
 * (protocols/consensus/state-archive.ts) as the state grows. For each size, the key-value state is
 * loaded, then each round writes a checkpoint interval's worth of puts on a small working set and
 * measures, on the state as it then is: encoding it whole (what a snapshot stores and a lagging
 * peer is sent), freezing it (what every checkpoint or snapshot height now costs in the replica's
 * step) and listing the changes since the last freeze (what is stored instead of the whole state),
 * with the bytes of each form. The client table holds the 10 000 sessions that loaded the state
 * and the 256 that take turns writing, as a long-lived service's table holds sessions come and
 * gone: a whole snapshot carries them all, changes the sessions that wrote since. Medians of the
 * rounds.
 */
import { command } from '../protocols/consensus/command.js';
import { KvStateMachine, kvPayload } from '../protocols/consensus/kv.js';
import { ReplicatedState, type ReplicatedView } from '../protocols/consensus/state-machine.js';
import type { BenchResult, Metric } from './report.js';
import { percentile } from './stats.js';

/** Puts between two stored states: 64 batches of 512, a HotStuff snapshot interval under load. */
const PUTS_PER_ROUND = 32_768;
/** Keys those puts write, over and over. */
const WORKING_SET = 1_000;
/** Client sessions that loaded the state, idle afterwards. */
const LOAD_SESSIONS = 10_000;
/** Client sessions taking turns in the rounds. */
const SESSIONS = 256;
const ROUNDS = 3;

interface Round {
  readonly snapshotMs: number;
  readonly snapshotBytes: number;
  readonly freezeMs: number;
  readonly changesMs: number;
  readonly changesBytes: number;
}

function timed<T>(op: () => T): [number, T] {
  const started = performance.now();
  const result = op();
  return [performance.now() - started, result];
}

/** The rounds of a state of `keys` keys. */
function measure(keys: number): Round[] {
  const state = new ReplicatedState(new KvStateMachine());
  let timestamp = 0;
  const put = (session: string, key: string, value: string): void => {
    timestamp++;
    state.execute(command(session, timestamp, kvPayload({ type: 'put', key, value })), timestamp, 0);
  };
  for (let k = 0; k < keys; k++) put(`loader-${k % LOAD_SESSIONS}`, `load-${k}`, `value-${k}`);
  let older: ReplicatedView = state.freeze();
  const rounds: Round[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < PUTS_PER_ROUND; k++) put(`session-${k % SESSIONS}`, `hot-${k % WORKING_SET}`, `round-${round}-${k}`);
    // Every executed position hashes the state; a checkpoint comes after that.
    state.hash();
    const [snapshotMs, snapshot] = timed(() => state.snapshot());
    const [freezeMs, view] = timed(() => state.freeze());
    const [changesMs, changes] = timed(() => view.changesSince(older));
    older = view;
    rounds.push({ snapshotMs, snapshotBytes: snapshot.length, freezeMs, changesMs, changesBytes: changes?.length ?? Number.NaN });
  }
  return rounds;
}

/** Runs the state benchmark: 10 000, 100 000 and 1 000 000 keys (`quick`: the first two). */
export async function stateBench(options: { quick?: boolean } = {}): Promise<BenchResult> {
  const metrics: Record<string, Metric> = {};
  for (const keys of options.quick === true ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]) {
    const rounds = measure(keys);
    const median = (pick: (r: Round) => number): number => percentile(rounds.map(pick), 50);
    const name = `state_${keys >= 1_000_000 ? `${keys / 1_000_000}m` : `${keys / 1000}k`}`;
    metrics[`${name}_snapshot_ms_p50`] = { value: median((r) => r.snapshotMs), unit: 'ms' };
    metrics[`${name}_freeze_ms_p50`] = { value: median((r) => r.freezeMs), unit: 'ms' };
    metrics[`${name}_changes_ms_p50`] = { value: median((r) => r.changesMs), unit: 'ms' };
    metrics[`${name}_snapshot_bytes`] = { value: median((r) => r.snapshotBytes), unit: 'bytes' };
    metrics[`${name}_changes_bytes`] = { value: median((r) => r.changesBytes), unit: 'bytes' };
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { bench: 'state', metrics };
}
