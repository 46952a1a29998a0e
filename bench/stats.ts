/**
 * Sampling helpers for the benchmarks: time-boxed repetition and percentiles.
 */

/** Percentile `p` (0..100) of `samples` (nearest rank). */
export function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/**
 * Runs `op` repeatedly and returns each call's duration in ms: at least `min` calls, then until
 * `budgetMs` of wall time or `max` calls, whichever comes first.
 */
export function sample(op: () => unknown, options: { readonly budgetMs: number; readonly min?: number; readonly max?: number }): number[] {
  const min = options.min ?? 3;
  const max = options.max ?? 500;
  const out: number[] = [];
  const started = performance.now();
  while (out.length < min || (out.length < max && performance.now() - started < options.budgetMs)) {
    const t0 = performance.now();
    op();
    out.push(performance.now() - t0);
  }
  return out;
}
