/**
 * `npm run bench -- telemetry`: what knhk's instrumentation costs when no OpenTelemetry SDK is
 * registered. The same PBFT cluster and closed-loop workload run with the instrumentation
 * compiled out (`KNHK_TELEMETRY=off` in the environment the cluster's threads start with) and in
 * (no SDK: every span and instrument is the API's no-op), alternating, so that drift of the
 * machine falls on both; the medians are compared.
 */
import { ActorSystem } from '../actors/system.js';
import { closedLoop } from '../actors/workload.js';
import type { BenchResult } from './report.js';
import { percentile } from './stats.js';

/** Commands per second of one cluster run, with the instrumentation on or compiled out. */
async function throughput(instrumented: boolean, commands: number): Promise<number> {
  // Worker and pool threads copy the environment when they start, and read the switch then.
  if (instrumented) delete process.env['KNHK_TELEMETRY'];
  else process.env['KNHK_TELEMETRY'] = 'off';
  const system = await ActorSystem.start({ cryptoThreads: 2 });
  try {
    const cluster = await system.spawnCluster({ protocol: 'pbft', n: 4, policy: 'classical', batch: 256, kdfLog2N: 10 });
    const load = (count: number, prefix: string) =>
      closedLoop(cluster, { commands: count, concurrency: 1024, timeoutMs: 300_000, operation: (k) => ({ type: 'put', key: `${prefix}${k % 1000}`, value: 'x' }) });
    await load(300, 'warm');
    const { seconds } = await load(commands, 'k');
    await cluster.stop();
    return commands / seconds;
  } finally {
    await system.stop();
    delete process.env['KNHK_TELEMETRY'];
  }
}

/** The telemetry overhead benchmark. */
export async function telemetryBench(options: { quick?: boolean }): Promise<BenchResult> {
  const rounds = options.quick === true ? 2 : 4;
  const commands = options.quick === true ? 1500 : 4000;
  const off: number[] = [];
  const on: number[] = [];
  for (let round = 0; round < rounds; round++) {
    // Alternate which goes first, so that neither always runs on a warmer machine.
    for (const instrumented of round % 2 === 0 ? [false, true] : [true, false]) {
      const rate = await throughput(instrumented, commands);
      (instrumented ? on : off).push(rate);
      process.stderr.write(`round ${round + 1}: instrumentation ${instrumented ? 'in, no SDK' : 'compiled out'}: ${rate.toFixed(0)} commands/s\n`);
    }
  }
  const base = percentile(off, 50);
  const instrumented = percentile(on, 50);
  return {
    bench: 'telemetry',
    metrics: {
      pbft_n4_classical_uninstrumented_cmds_per_s: { value: base, unit: 'commands/s' },
      pbft_n4_classical_instrumented_no_sdk_cmds_per_s: { value: instrumented, unit: 'commands/s' },
      instrumentation_overhead_no_sdk_percent: { value: ((base - instrumented) / base) * 100, unit: '%', target: { op: '<=', value: 3 } },
    },
  };
}
