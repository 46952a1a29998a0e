/**
 * Clusters on worker threads whose replicated state is larger than one byte field of a message
 * takes by default (16 MiB): a replica left behind catches up on it from its peers (PBFT's state
 * transfer, HotStuff's snapshot, Raft's InstallSnapshot, each in parts over the peer links), and a
 * replica restarts from it in its own store. A state larger than MAX_STATE_BYTES halts each
 * replica that would store it whole, which says why in the cluster's status; once too many have
 * halted for a quorum, submissions fail with the error.
 */
import test from 'ava';
import { ActorSystem } from '../actors/system.js';
import { statusLine, type Cluster } from '../actors/cluster.js';
import { ConsensusError, MAX_STATE_BYTES, quorumSize, type ConsensusAlgorithm } from '../protocols/consensus/index.js';
import { Ballast, ballastPayload } from './fixtures/state-machines.js';

const LARGE = 20 << 20;

/** Resolves once every replica has executed `position`, and returns their state hashes. */
async function converged(cluster: Cluster, position: number): Promise<Set<string>> {
  await Promise.all(Array.from({ length: cluster.n }, (_, i) => cluster.executedUpTo(i, position)));
  return new Set((await cluster.status()).map((replica) => replica.stateHash));
}

for (const protocol of ['pbft', 'hotstuff', 'raft'] as const satisfies readonly ConsensusAlgorithm[]) {
  test.serial(`${protocol}: a state of ${LARGE >> 20} MiB reaches a replica that fell behind and comes back from a replica's store; one over MAX_STATE_BYTES halts the replicas that would store it with STATE_TOO_LARGE`, async (t) => {
    t.timeout(240_000);
    const system = await ActorSystem.start({ cryptoThreads: 1 });
    t.teardown(() => system.stop());
    const cluster = await system.spawnCluster({ protocol, n: 4, policy: 'classical', stateMachine: Ballast, snapshotInterval: 4, kdfLog2N: 10 });
    const submit = (bytes: number): Promise<number> => cluster.submit(ballastPayload(bytes)).then((result) => result.position);

    await submit(LARGE);
    await cluster.crash(3);
    // Past several snapshots or checkpoints: what replica 3 lacks is no longer in any log.
    let last = 0;
    for (let i = 0; i < 8; i++) last = await submit(LARGE);
    await cluster.restart(3);
    t.is((await converged(cluster, last)).size, 1, 'replica 3 caught up');
    const jumps = Array.from({ length: last }, (_, k) => cluster.executed(3, k + 1)).filter((position) => position?.type === 'snapshot');
    t.true(jumps.length > 0, 'replica 3 took the state from its peers');

    await cluster.crash(0);
    await cluster.restart(0);
    last = await submit(LARGE);
    t.is((await converged(cluster, last)).size, 1, 'replica 0 came back from its store');
    t.log((await cluster.status()).map(statusLine).join('\n'));

    // Commands go on until the state reaches a position where the replicas store it (HotStuff's
    // chain stands still without them); the one waiting when too many have halted fails.
    const restarts = (await cluster.status()).map((replica) => replica.restarts);
    const tooLarge = new RegExp(`ConsensusError STATE_TOO_LARGE: the state at position \\d+ is \\d+ bytes whole, more than the ${MAX_STATE_BYTES}`);
    const unavailable = await t.throwsAsync(async () => {
      // A submission that times out (a leader halted first, the others short of commands) is followed by another.
      for (;;) await submit(MAX_STATE_BYTES).catch((error: unknown) => {
        if (error instanceof ConsensusError) throw error;
      });
    }, { instanceOf: ConsensusError });
    t.is(unavailable?.code, 'STATE_TOO_LARGE');
    t.regex(unavailable?.message ?? '', /^replicas \d+(, \d+)+ halted, more than the cluster can commit without: /);
    t.regex(unavailable?.message ?? '', tooLarge);
    await t.throwsAsync(submit(1), { instanceOf: ConsensusError, message: /halted/ }, 'and so does the next, at once, unsent');
    const status = await cluster.status();
    const halted = status.filter((replica) => replica.halted !== null);
    t.true(halted.length > cluster.n - quorumSize(protocol, cluster.n, cluster.f), `${halted.length} halted`);
    for (const replica of halted) {
      t.regex(replica.halted ?? '', tooLarge);
      t.is(replica.role, 'halted');
      t.regex(statusLine(replica), tooLarge, 'the status line says why');
      t.is(replica.unsent, 0);
    }
    t.deepEqual(status.map((replica) => replica.restarts), restarts, 'halted, not restarted into the same error again');
  });
}
