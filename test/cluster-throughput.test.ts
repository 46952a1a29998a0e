/**
 * The seed's throughput test on real worker threads. It measures, so it runs alone: `npm test`
 * runs it after the other files (ava.performance.config.js), which run two at a time and would
 * take cores from it.
 */
import test from 'ava';
import { ActorSystem } from '../actors/system.js';
import { closedLoop } from '../actors/workload.js';
import { testSeed } from './helpers/seed.js';

test('test_consensus_throughput: a four-replica PBFT cluster with hybrid signatures sustains more than 1000 commands/s', async (t) => {
  t.timeout(240_000);
  const system = await ActorSystem.start({ cryptoThreads: 2 });
  t.teardown(() => system.stop());
  const cluster = await system.spawnCluster({ protocol: 'pbft', n: 4, policy: 'hybrid', batch: 1024, kdfLog2N: 10, seed: testSeed(t) });
  const run = async (commands: number, concurrency: number, prefix: string): Promise<number> => {
    const { seconds } = await closedLoop(cluster, { commands, concurrency, timeoutMs: 120_000, operation: (k) => ({ type: 'put', key: `${prefix}${k}`, value: 'x' }) });
    return commands / seconds;
  };
  // Worker threads load and compile ML-DSA on first use, and V8 optimizes the replicas' paths only
  // after thousands of messages: "sustained" is measured after a warm-up at the same load. Two
  // batches' worth of clients keep every position the primary proposes full (a position's
  // signatures cost the same whatever it carries).
  await run(4096, 2048, 'warm');
  const rate = await run(8192, 2048, 'k');
  t.log(`${rate.toFixed(0)} commands/s sustained (8192 commands, 2048 in flight, hybrid ML-DSA-65+Ed25519 on every vote)`);
  t.true(rate > 1000, `${rate.toFixed(0)} commands/s`);
});
