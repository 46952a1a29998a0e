/**
 * Handler times in ticks of 125 µs, kept as counts in log-linear buckets (the layout of
 * HdrHistogram, reduced to what the tick budget needs): a quarter tick wide up to 64 ticks (8 ms),
 * then 16 buckets per doubling up to 2^20 ticks (about 2 minutes). A percentile is therefore exact
 * to a quarter tick around the budget of 8 ticks, and within 1/16 of the truth for the long pieces
 * that decide a p99 on a loaded machine, in constant memory and constant time per record.
 */

const LINEAR_TICKS = 64;
const QUARTERS = 4;
const LINEAR_BUCKETS = LINEAR_TICKS * QUARTERS + 1;
const SUB_BUCKETS = 16;
const DOUBLINGS = 14;
const BUCKETS = LINEAR_BUCKETS + DOUBLINGS * SUB_BUCKETS;

/** The longest time told apart, in ticks; longer ones count as this. */
export const TICK_HISTOGRAM_MAX = LINEAR_TICKS * 2 ** DOUBLINGS;

/** The bucket of `ticks`: the smallest whose upper bound is at least `ticks`. */
function bucketOf(ticks: number): number {
  if (!(ticks > 0)) return 0;
  if (ticks <= LINEAR_TICKS) return Math.ceil(ticks * QUARTERS);
  if (ticks >= TICK_HISTOGRAM_MAX) return BUCKETS - 1;
  // ticks lies in (64·2^e, 64·2^(e+1)]; the clamps absorb log2's rounding at exact powers of two.
  const e = Math.min(DOUBLINGS - 1, Math.max(0, Math.ceil(Math.log2(ticks / LINEAR_TICKS)) - 1));
  const base = LINEAR_TICKS * 2 ** e;
  const sub = Math.min(SUB_BUCKETS, Math.max(1, Math.ceil((ticks / base - 1) * SUB_BUCKETS)));
  return LINEAR_BUCKETS + e * SUB_BUCKETS + (sub - 1);
}

/** The largest time, in ticks, that falls in `bucket`. */
function upperBound(bucket: number): number {
  if (bucket < LINEAR_BUCKETS) return bucket / QUARTERS;
  const offset = bucket - LINEAR_BUCKETS;
  const e = Math.floor(offset / SUB_BUCKETS);
  const sub = (offset % SUB_BUCKETS) + 1;
  return LINEAR_TICKS * 2 ** e * (1 + sub / SUB_BUCKETS);
}

/** A histogram of handler times in ticks (see the file comment for its precision). */
export class TickHistogram {
  readonly #counts = new Uint32Array(BUCKETS);
  #count = 0;
  #max = 0;

  /** Times recorded. */
  get count(): number {
    return this.#count;
  }

  /** The longest time recorded, in ticks (0 when empty). */
  get max(): number {
    return this.#max;
  }

  /** Records one time, in ticks. */
  record(ticks: number): void {
    this.#counts[bucketOf(ticks)]! += 1;
    this.#count++;
    if (ticks > this.#max) this.#max = ticks;
  }

  /**
   * The `p`-th percentile (0 < p ≤ 100), as the upper bound of its bucket or the longest time
   * recorded, whichever is less: at least the true value, and above it by at most a quarter tick
   * up to 64 ticks and 1/16 beyond. 0 when empty.
   */
  percentile(p: number): number {
    const rank = Math.ceil((this.#count * p) / 100);
    if (rank === 0) return 0;
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.#counts[bucket] as number;
      if (seen >= rank) return Math.min(upperBound(bucket), this.#max);
    }
    return Math.min(TICK_HISTOGRAM_MAX, this.#max);
  }
}
