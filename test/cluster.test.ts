/**
 * Clusters on real worker threads: replicas, signers and a verifier, each in its own thread,
 * over LMDB stores; crashes are thread terminations.
 */
import test from 'ava';
import { ActorSystem } from '../actors/system.js';
import { kvResponse } from '../protocols/consensus/index.js';

test('a PBFT cluster of four commits commands, survives a crashed replica, and converges after its restart', async (t) => {
  t.timeout(180_000);
  const system = await ActorSystem.start({ cryptoThreads: 2 });
  t.teardown(() => system.stop());
  const cluster = await system.spawnCluster({ protocol: 'pbft', n: 4, policy: 'classical', kdfLog2N: 10, timeoutMs: 1000 });
  for (let k = 0; k < 10; k++) {
    const result = await cluster.submit({ type: 'put', key: `k${k}`, value: `v${k}` });
    t.true(kvResponse(result.response).ok);
  }
  await cluster.crash(2);
  for (let k = 10; k < 20; k++) await cluster.submit({ type: 'put', key: `k${k}`, value: `v${k}` });
  await cluster.restart(2);
  const last = await cluster.submit({ type: 'get', key: 'k5' });
  t.is(kvResponse(last.response).value, 'v5');
  await Promise.all([0, 1, 2, 3].map((i) => cluster.executedUpTo(i, last.position)));
  const status = await cluster.status();
  t.log(status);
  t.is(new Set(status.map((s) => s.stateHash)).size, 1);
  t.is(status[2]?.restarts, 1);
  await cluster.stop();
});
