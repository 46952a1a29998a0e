/**
 * The chaos runner's fault schedule: an endless sequence of episodes, each a quiet period
 * followed by one or two faults held for a while and then reverted. It is drawn from its own
 * seeded {@link Prng}, so a seed names the same sequence of episodes whatever the cluster does;
 * only the instants at which episodes start depend on the run (an episode starts a quiet
 * period after the previous one was fully reverted, restarts included, so the cluster always
 * gets its quiet time to make progress).
 *
 * Fault budget: crashed, Byzantine and cut-off replicas together never exceed f at once. For
 * Byzantine faults and crashes that is the fault model itself; a replica in the minority side of
 * a partition is counted too because, for liveness, it is as absent as a crashed one (a
 * BFT cluster of 3f+1 with one replica crashed and another cut off cannot form a quorum and
 * would simply stall for the episode, testing nothing). Delays are not counted: they slow
 * links but lose nothing.
 */
import { ConfigError } from '../runtime/index.js';
import { BYZANTINE_MODES, type ByzantineMode } from '../protocols/sim/byzantine.js';
import { Prng } from '../protocols/sim/prng.js';
import type { LinkDelay } from './link-faults.js';

/** The fault kinds the chaos runner injects. */
export type ChaosFaultKind = 'crash' | 'partition' | 'delay' | 'byzantine';

/** All chaos fault kinds, in documentation order. */
export const CHAOS_FAULT_KINDS: readonly ChaosFaultKind[] = ['crash', 'partition', 'delay', 'byzantine'];

/** One fault of an episode. */
export type ChaosFault =
  /** Replica `node`'s thread is killed, and restarted from its store when the episode ends. */
  | { readonly kind: 'crash'; readonly node: number }
  /** The replicas of `minority` can talk only among themselves; `groups` is what `cluster.partition` gets. */
  | { readonly kind: 'partition'; readonly minority: readonly number[]; readonly groups: readonly (readonly number[])[] }
  /** Every message on each of `links` waits `ms` plus up to `jitterMs`. */
  | { readonly kind: 'delay'; readonly links: readonly LinkDelay[] }
  /** Replica `node` runs in `mode`, and is honest again when the episode ends. */
  | { readonly kind: 'byzantine'; readonly node: number; readonly mode: ByzantineMode };

/** A quiet period, then faults held for `holdMs`, then reverted. */
export interface ChaosEpisode {
  /** Index of the episode in the schedule, from 0. */
  readonly index: number;
  /** How long the cluster runs without faults before this episode starts, ms. */
  readonly quietMs: number;
  /** How long the faults stay in force, ms. */
  readonly holdMs: number;
  /** One or two faults of distinct kinds, within the budget of f. */
  readonly faults: readonly ChaosFault[];
}

/** What the schedule needs to know of the cluster. */
export interface ChaosScheduleOptions {
  /** Replicas. */
  readonly n: number;
  /** Faults the cluster tolerates (crashed + Byzantine + cut-off replicas at once), at least 1. */
  readonly f: number;
  /** The kinds to draw from (at least one). */
  readonly kinds: readonly ChaosFaultKind[];
  readonly seed: number;
}

/** Quiet periods and holds, ms. Long enough for a view change or an election to finish (base timeouts are 1–2 s). */
const FIRST_QUIET_MS: readonly [number, number] = [1000, 2000];
const QUIET_MS: readonly [number, number] = [1000, 3000];
const HOLD_MS: readonly [number, number] = [1500, 4000];
/** Chance that an episode combines a second fault kind with the first. */
const COMBINE = 0.3;

/** How many of the f budget a fault uses. */
function cost(fault: ChaosFault): number {
  switch (fault.kind) {
    case 'crash':
    case 'byzantine':
      return 1;
    case 'partition':
      return fault.minority.length;
    case 'delay':
      return 0;
  }
}

/** The seeded sequence of episodes of one chaos run. */
export class ChaosSchedule {
  readonly #rng: Prng;
  readonly #options: ChaosScheduleOptions;
  #index = 0;

  /** @throws {ConfigError} for no kinds, an unknown kind, or an f the cluster cannot have (f < 1 or f ≥ n). */
  constructor(options: ChaosScheduleOptions) {
    if (options.kinds.length === 0) throw new ConfigError('a chaos schedule needs at least one fault kind');
    for (const kind of options.kinds) if (!CHAOS_FAULT_KINDS.includes(kind)) throw new ConfigError(`unknown fault kind ${JSON.stringify(kind)}`);
    if (!Number.isSafeInteger(options.n) || !Number.isSafeInteger(options.f) || options.f < 1 || options.f >= options.n) {
      throw new ConfigError(`a chaos schedule needs 1 ≤ f < n, got n = ${options.n}, f = ${options.f}`);
    }
    this.#options = { ...options, kinds: [...new Set(options.kinds)] };
    this.#rng = new Prng(options.seed);
  }

  /** The next episode. Always the same sequence for the same options. */
  next(): ChaosEpisode {
    const rng = this.#rng;
    const index = this.#index++;
    const [qMin, qMax] = index === 0 ? FIRST_QUIET_MS : QUIET_MS;
    const quietMs = Math.round(rng.between(qMin, qMax));
    const holdMs = Math.round(rng.between(HOLD_MS[0], HOLD_MS[1]));
    const kinds = rng.shuffle(this.#options.kinds);
    const faults: ChaosFault[] = [];
    let budget = this.#options.f;
    // A fault's replicas are drawn among those no earlier fault of the episode touched.
    const busy = new Set<number>();
    const wanted = rng.chance(COMBINE) ? 2 : 1;
    for (const kind of kinds) {
      if (faults.length === wanted) break;
      const fault = this.#draw(kind, budget, busy);
      if (fault === undefined) continue;
      faults.push(fault);
      budget -= cost(fault);
    }
    return { index, quietMs, holdMs, faults };
  }

  #draw(kind: ChaosFaultKind, budget: number, busy: Set<number>): ChaosFault | undefined {
    const rng = this.#rng;
    const { n } = this.#options;
    const free = [...Array(n).keys()].filter((i) => !busy.has(i));
    switch (kind) {
      case 'crash':
      case 'byzantine': {
        if (budget < 1 || free.length === 0) return undefined;
        const node = rng.pick(free);
        busy.add(node);
        return kind === 'crash' ? { kind, node } : { kind, node, mode: rng.pick(BYZANTINE_MODES) };
      }
      case 'partition': {
        // A strict minority, so that the rest can still form a quorum.
        const most = Math.min(budget, Math.ceil(n / 2) - 1, free.length);
        if (most < 1) return undefined;
        const minority = rng.shuffle(free).slice(0, 1 + rng.int(most)).sort((a, b) => a - b);
        for (const node of minority) busy.add(node);
        const rest = [...Array(n).keys()].filter((i) => !minority.includes(i));
        return { kind, minority, groups: [minority, rest] };
      }
      case 'delay': {
        const links: LinkDelay[] = [];
        const ms = (): number => Math.round(rng.between(20, 250));
        const jitterMs = (): number => Math.round(rng.between(0, 100));
        if (rng.chance(0.5)) {
          // A slow replica: everything it sends is late.
          const from = rng.int(n);
          for (let to = 0; to < n; to++) if (to !== from) links.push({ from, to, ms: ms(), jitterMs: jitterMs() });
        } else {
          const count = 1 + rng.int(n);
          for (let k = 0; k < count; k++) {
            const from = rng.int(n);
            const to = (from + 1 + rng.int(n - 1)) % n;
            links.push({ from, to, ms: ms(), jitterMs: jitterMs() });
          }
        }
        return { kind, links };
      }
    }
  }
}

/** A fault in a few words, for progress lines and the report's schedule. */
export function describeFault(fault: ChaosFault): string {
  switch (fault.kind) {
    case 'crash':
      return `crash ${fault.node}`;
    case 'byzantine':
      return `byzantine ${fault.node} ${fault.mode}`;
    case 'partition':
      return `partition ${fault.groups.map((g) => `[${g.join(',')}]`).join('|')}`;
    case 'delay':
      return `delay ${fault.links.map((l) => `${l.from}→${l.to} ${l.ms}±${l.jitterMs ?? 0}ms`).join(', ')}`;
  }
}
