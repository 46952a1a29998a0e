/**
 * The crypto benchmark: keygen, sign and verify for every scheme on every backend that runs it
 * here (median and p99, in µs and in ticks of 125 µs), next to the seed's budgets; the hybrid's
 * overhead over its two components; pool verification throughput with one thread versus all; and
 * the native/noble ratio for ML-DSA-65 verification where node:crypto has ML-DSA (Node 24).
 */
import { availableParallelism } from 'node:os';
import { verifyBatch, type VerifyJob } from '../actors/crypto-pool.js';
import { SCHEME_NAMES, SchemeRegistry, type SchemeName, type SignatureScheme } from '../protocols/crypto/index.js';
import { ActorSystem, TICK_MS } from '../runtime/index.js';
import type { BenchResult, Metric } from './report.js';
import { percentile, sample } from './stats.js';

/** Metric-key spelling of each scheme. */
const KEY: Record<SchemeName, string> = {
  Ed25519: 'ed25519',
  'ML-DSA-44': 'mldsa44',
  'ML-DSA-65': 'mldsa65',
  'ML-DSA-87': 'mldsa87',
  'Falcon-512': 'falcon512',
  'SLH-DSA-SHA2-128f': 'slhdsa128f',
  'ML-DSA-65+Ed25519': 'hybrid65',
  'ML-DSA-44+Ed25519': 'hybrid44',
};

/** The seed's budgets for the default hybrid, in µs. */
const BUDGET_US = { keygen: 200, sign: 250, verify: 400 } as const;

type Op = keyof typeof BUDGET_US;

interface Composed {
  readonly sign: () => unknown;
  readonly verify: () => unknown;
}

interface Measured {
  readonly p50: number;
  readonly p99: number;
}

function measure(scheme: SignatureScheme, budgetMs: number): Record<Op, Measured> {
  const message = new TextEncoder().encode('a vote-sized message: view 7, sequence 42, digest …'.padEnd(120, '.'));
  const context = scheme.contextSupported ? new TextEncoder().encode('knhk/bench') : undefined;
  const keys = scheme.keygen();
  const signature = scheme.sign(keys.secretKey, message, context);
  const stats = (xs: number[]): Measured => ({ p50: percentile(xs, 50) * 1000, p99: percentile(xs, 99) * 1000 });
  return {
    keygen: stats(sample(() => scheme.keygen(), { budgetMs })),
    sign: stats(sample(() => scheme.sign(keys.secretKey, message, context), { budgetMs })),
    verify: stats(sample(() => scheme.verify(keys.publicKey, message, signature, context), { budgetMs })),
  };
}

// Verifications per pool task. Small tasks measure the pool in its steady state: with a few large
// ones, the last task of a run leaves the other threads idle for its whole length (with 8 tasks of
// 25 on 2 threads, up to an eighth of the run), which a single thread never pays.
const JOBS_PER_TASK = 4;

/** Verifications per second through `system`'s pool, one run over `jobs`. */
async function poolRate(system: ActorSystem, jobs: readonly VerifyJob[]): Promise<number> {
  const t0 = performance.now();
  await verifyBatch(system, jobs, Math.ceil(jobs.length / JOBS_PER_TASK));
  return (jobs.length * 1000) / (performance.now() - t0);
}

/**
 * Pool throughput with one thread and with `threads`, two pools measured in turn so that the
 * shared machine's changes of pace hit both alike (each ratio compares neighbouring runs);
 * medians of `runs` each.
 */
async function poolScaling(threads: number, jobs: readonly VerifyJob[], runs: number): Promise<{ one: number; all: number; scaling: number }> {
  const one = await ActorSystem.start({ cryptoThreads: 1 });
  const all = await ActorSystem.start({ cryptoThreads: threads });
  try {
    // Warm-up: the whole run once, so that every pool thread has built its registry, run its
    // backend probe and had its verification code optimized before anything is timed (one thread
    // otherwise warms up on twice the work of each of two, which flatters the single thread).
    await poolRate(one, jobs);
    await poolRate(all, jobs);
    const rates = { one: [] as number[], all: [] as number[], ratio: [] as number[] };
    for (let run = 0; run < runs; run++) {
      const r1 = await poolRate(one, jobs);
      const rAll = await poolRate(all, jobs);
      rates.one.push(r1);
      rates.all.push(rAll);
      rates.ratio.push(rAll / r1);
    }
    return { one: percentile(rates.one, 50), all: percentile(rates.all, 50), scaling: percentile(rates.ratio, 50) };
  } finally {
    await Promise.all([one.stop(), all.stop()]);
  }
}

/** Runs the crypto benchmark; `quick` shortens it for smoke tests. */
export async function cryptoBench(options: { quick?: boolean } = {}): Promise<BenchResult> {
  const budgetMs = options.quick ? 20 : 400;
  const registry = SchemeRegistry.create();
  const metrics: Record<string, Metric> = {};
  const results = new Map<string, Record<Op, Measured>>();
  for (const name of SCHEME_NAMES) {
    for (const backend of ['noble', 'node']) {
      const scheme = registry.onBackend(name, backend);
      if (!scheme) continue;
      const measured = measure(scheme, budgetMs);
      results.set(`${name}/${backend}`, measured);
      for (const op of ['keygen', 'sign', 'verify'] as const) {
        const key = `${KEY[name]}_${backend}_${op}`;
        const budget = name === 'ML-DSA-65+Ed25519' ? { op: '<=' as const, value: BUDGET_US[op] } : undefined;
        metrics[`${key}_us_p50`] = { value: measured[op].p50, unit: 'us', ...(budget ? { target: budget } : {}) };
        metrics[`${key}_us_p99`] = { value: measured[op].p99, unit: 'us' };
        metrics[`${key}_ticks_p50`] = { value: measured[op].p50 / 1000 / TICK_MS, unit: '{tick}' };
      }
    }
  }

  // The hybrid against its two components (each on the backend the registry chose for it),
  // measured interleaved, round by round, so that machine noise hits all three alike.
  const [hybrid, mlDsa, ed] = (['ML-DSA-65+Ed25519', 'ML-DSA-65', 'Ed25519'] as const).map((name) => {
    const scheme = registry.get(name);
    const keys = scheme.keygen();
    const message = new TextEncoder().encode('a vote'.padEnd(120, '.'));
    const signature = scheme.sign(keys.secretKey, message);
    return {
      sign: () => scheme.sign(keys.secretKey, message),
      verify: () => scheme.verify(keys.publicKey, message, signature),
    };
  }) as [Composed, Composed, Composed];
  for (const op of ['sign', 'verify'] as const) {
    const rounds = options.quick ? 3 : 40;
    const times: [number[], number[], number[]] = [[], [], []];
    for (let round = 0; round < rounds; round++) {
      [hybrid, mlDsa, ed].forEach((subject, i) => (times[i] as number[]).push(...sample(subject[op], { budgetMs: 0, min: 1, max: 1 })));
    }
    const [h, m, e] = times.map((xs) => percentile(xs, 50)) as [number, number, number];
    metrics[`hybrid65_${op}_overhead_pct`] = { value: ((h - (m + e)) / (m + e)) * 100, unit: '%', target: { op: '<=', value: 5 } };
  }

  const scheme = registry.get('ML-DSA-65+Ed25519');
  const keys = scheme.keygen();
  const jobs: VerifyJob[] = Array.from({ length: options.quick ? 16 : 400 }, (_, i) => {
    const message = new TextEncoder().encode(`vote ${i}`);
    return { scheme: scheme.name, publicKey: keys.publicKey, message, signature: scheme.sign(keys.secretKey, message) };
  });
  const pool = await poolScaling(availableParallelism(), jobs, options.quick ? 1 : 7);
  metrics.pool_verify_one_thread_per_s = { value: pool.one, unit: '{verify}/s' };
  metrics.pool_verify_all_threads_per_s = { value: pool.all, unit: '{verify}/s' };
  metrics.pool_verify_scaling = { value: pool.scaling, unit: 'ratio', target: { op: '>=', value: 1.8 } };

  const native = results.get('ML-DSA-65/node');
  const noble = results.get('ML-DSA-65/noble');
  if (native && noble) metrics.native_vs_noble_mldsa65_verify = { value: noble.verify.p50 / native.verify.p50, unit: 'ratio' };
  return { bench: 'crypto', metrics };
}
