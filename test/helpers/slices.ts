/**
 * The check every core that executes in slices must pass in the simulator, which resumes a paused
 * core at once: slicing changes nothing a run shows but the resumed steps.
 */
import type { ExecutionContext } from 'ava';
import type { Message, Simulation } from '../../protocols/sim/index.js';

/**
 * Runs `simulate()` (no slices) and `simulate(slice)` for each of `slices` to completion, and
 * asserts that every replica committed the same commands and the traffic was the same, and that
 * slices of one command did pause (a batch of two or more was split).
 */
export function slicesChangeNothing<M extends Message>(t: ExecutionContext, simulate: (executionSlice?: number) => Simulation<M>, slices: readonly number[]): void {
  const observe = (slice?: number): { committed: string[][]; stats: object; resumes: number } => {
    const sim = simulate(slice);
    t.true(sim.runUntilCommitted({ maxMs: 60_000 }), `executionSlice ${slice ?? 'none'}: every command committed`);
    const { resumes, ...stats } = sim.stats();
    return { committed: Array.from({ length: sim.n }, (_, i) => sim.committed(i).map((c) => `${c.client}/${c.timestamp}`)), stats, resumes };
  };
  const { resumes: none, ...whole } = observe();
  t.is(none, 0);
  for (const slice of slices) {
    const { resumes, ...same } = observe(slice);
    t.deepEqual(same, whole, `executionSlice ${slice}`);
    if (slice === 1) t.true(resumes > 0, 'batches of more than one command paused and were resumed');
  }
}
