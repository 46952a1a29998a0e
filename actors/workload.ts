/**
 * A closed-loop workload against a cluster: `concurrency` clients, each submitting its next
 * operation as soon as the previous one is answered, until `commands` operations are done. The
 * demo, the consensus benchmark and the throughput test all drive clusters this way.
 */
import type { KvOperation } from '../protocols/consensus/index.js';
import type { Cluster, Submitted } from './cluster.js';

/** What {@link closedLoop} runs. */
export interface ClosedLoopOptions {
  readonly commands: number;
  readonly concurrency: number;
  /** The k-th operation, 0 ≤ k < commands. */
  readonly operation: (k: number) => KvOperation;
  /** Per-command timeout, ms (default the cluster's). */
  readonly timeoutMs?: number;
  /** Called after each answer with how many are done; the client waits for it before its next command. */
  readonly onCommitted?: (result: Submitted, done: number) => void | Promise<void>;
}

/** What {@link closedLoop} measured. */
export interface ClosedLoopResult {
  readonly seconds: number;
  /** Client latency of each command, ms, in completion order. */
  readonly latencies: number[];
  readonly results: Submitted[];
}

/** Runs a closed-loop workload; rejects with the first command that fails (an `AskTimeout`, say). */
export async function closedLoop(cluster: Pick<Cluster, 'submit'>, options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const latencies: number[] = [];
  const results: Submitted[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (next < options.commands) {
        const k = next++;
        const sent = performance.now();
        const result = await cluster.submit(options.operation(k), options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs });
        latencies.push(performance.now() - sent);
        results.push(result);
        await options.onCommitted?.(result, results.length);
      }
    }),
  );
  return { seconds: (performance.now() - started) / 1000, latencies, results };
}
