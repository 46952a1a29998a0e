/**
 * Clusters on real worker threads stopped whole and started again from their data directories:
 * each replica rebuilds its state from its LMDB store, past the states it stored (PBFT's stable
 * checkpoints, HotStuff's snapshot heights, Raft's snapshots), and a store of another format
 * stops the cluster from starting.
 */
import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { ActorSystem } from '../actors/system.js';
import type { Cluster, ClusterOptions } from '../actors/cluster.js';
import { STORE_FORMAT } from '../actors/replica-store.js';
import { closedLoop } from '../actors/workload.js';
import { kvResponse } from '../protocols/consensus/index.js';
import { testSeed } from './helpers/seed.js';
import { overwriteRecord, recordKeys, sealed } from './helpers/store.js';
import { tempDir } from './helpers/temp.js';

/**
 * Stops a whole `protocol` cluster after a bulk load and `commands` puts one at a time (a position
 * each: past checkpoints or snapshot heights, whose states the replicas keep in their stores), starts it again
 * from its data directory, and checks that every replica comes back to the state it had and the
 * writes are there; with `archived`, that replica 0 stored a snapshot and changes after it.
 * Returns the data directory and how to run the cluster again.
 */
async function coldRestart(
  t: ExecutionContext,
  protocol: ClusterOptions['protocol'],
  commands: number,
  archived: boolean,
  snapshotInterval?: number,
): Promise<{ dataDir: string; run: <T>(use: (cluster: Cluster) => Promise<T>) => Promise<T> }> {
  const dataDir = await tempDir(t, 'knhk-cold-');
  const options: ClusterOptions = {
    id: 'cold',
    protocol,
    n: 4,
    policy: 'classical',
    dataDir,
    passphrase: 'cold start',
    kdfLog2N: 10,
    seed: testSeed(t),
    ...(snapshotInterval === undefined ? {} : { snapshotInterval }),
  };
  const run = async <T>(use: (cluster: Cluster) => Promise<T>): Promise<T> => {
    const system = await ActorSystem.start({ cryptoThreads: 1 });
    try {
      return await use(await system.spawnCluster(options));
    } finally {
      await system.stop();
    }
  };
  const before = await run(async (cluster) => {
    // A state larger than what the puts after it change, so that later states are stored as changes.
    await closedLoop(cluster, { commands: 300, concurrency: 64, operation: (k) => ({ type: 'put', key: `bulk-${k}`, value: 'x'.repeat(100) }) });
    const { results } = await closedLoop(cluster, { commands, concurrency: 1, operation: (k) => ({ type: 'put', key: `k${k % 7}`, value: `v${k}` }) });
    const last = Math.max(...results.map((r) => r.position));
    await Promise.all([0, 1, 2, 3].map((i) => cluster.executedUpTo(i, last)));
    return { last, status: await cluster.status() };
  });
  if (archived) {
    const keys = await recordKeys(join(dataDir, 'replica-0', 'store'));
    t.true(keys.some((k) => k.startsWith('core:snapshot/')) && keys.some((k) => k.startsWith('core:state-changes/')), `a snapshot and changes after it are stored: ${keys.filter((k) => !k.startsWith('core:block/') && !k.startsWith('receipt:')).join(' ')}`);
  }
  await run(async (cluster) => {
    await Promise.all([0, 1, 2, 3].map((i) => cluster.executedUpTo(i, before.last)));
    const status = await cluster.status();
    t.deepEqual(
      status.map((s) => [s.node, s.stateHash]),
      before.status.map((s) => [s.node, s.stateHash]),
      'every replica rebuilds the state it had from its store',
    );
    t.is(kvResponse((await cluster.submit({ type: 'get', key: `k${(commands - 1) % 7}` })).response).value, `v${commands - 1}`);
  });
  return { dataDir, run };
}

test.serial('a Raft cluster stopped whole starts again from its data directory, past two snapshots', async (t) => {
  await coldRestart(t, 'raft', 60, true, 16);
});

test.serial('a HotStuff cluster stopped whole starts again from its data directory, past two snapshot heights', async (t) => {
  await coldRestart(t, 'hotstuff', 40, true, 16);
});

test.serial('a PBFT cluster stopped whole starts again from its data directory, past stable checkpoints; a replica store of another format stops it from starting', async (t) => {
  const { dataDir, run } = await coldRestart(t, 'pbft', 35, true);
  await overwriteRecord(join(dataDir, 'replica-1', 'store'), 'meta:format', sealed('meta:format', 0));
  const error = await t.throwsAsync(run(() => Promise.resolve()), { name: 'SpawnError' });
  t.regex(error?.message ?? '', new RegExp(`replica-1 failed to start: .*replica-1/store: was written by store format 0; this build reads store format ${STORE_FORMAT} only`));
  t.like(error?.cause, { name: 'StorageError', code: 'STORAGE_FORMAT' });
});
