/**
 * The simulated network: per-link delay, loss, duplication and reordering, regions, partitions
 * and disconnected nodes. The client is an endpoint too (id {@link CLIENT}), placed in a region.
 */
import { ConsensusError } from '../consensus/errors.js';
import type { NodeId } from '../consensus/config.js';
import type { Prng } from './prng.js';

/** The endpoint id of the simulated client. */
export const CLIENT = -1;

/** A closed range of milliseconds, drawn uniformly. */
export type Range = readonly [min: number, max: number];

/** Regions of a multi-region topology. */
export interface RegionTopology {
  /** Region of each node, by node id. */
  readonly of: readonly number[];
  /** One-way delay between two endpoints of one region. */
  readonly intraMs: Range;
  /** One-way delay between endpoints of different regions. */
  readonly interMs: Range;
  /** Region of the client (default 0). */
  readonly client?: number;
}

/** How links behave. Every field has a LAN-like default. */
export interface NetworkOptions {
  /** One-way delay of every link when there are no regions (default 1–5 ms). */
  readonly delayMs?: Range;
  /** Regions, overriding `delayMs`. */
  readonly regions?: RegionTopology;
  /** Probability that a message is lost (default 0). */
  readonly loss?: number;
  /** Probability that a message is delivered twice (default 0). */
  readonly duplicate?: number;
  /** Probability that a message is held back by up to `reorderMs` more, overtaking order (default 0). */
  readonly reorder?: number;
  /** Largest extra delay of a reordered message (default 20 ms). */
  readonly reorderMs?: number;
}

/**
 * `regions` regions of `perRegion` nodes each, node i in region ⌊i / perRegion⌋, from round-trip
 * times as deployments quote them: the one-way delay of a message is half a round trip drawn from
 * the range. The seed's topology is `regionTopology(3, 3, [1, 5], [100, 200])`.
 */
export function regionTopology(regions: number, perRegion: number, intraRttMs: Range, interRttMs: Range): RegionTopology {
  return {
    of: Array.from({ length: regions * perRegion }, (_, i) => Math.floor(i / perRegion)),
    intraMs: [intraRttMs[0] / 2, intraRttMs[1] / 2],
    interMs: [interRttMs[0] / 2, interRttMs[1] / 2],
  };
}

/** How one one-way link behaves where it differs from the network-wide settings. */
export interface LinkOptions {
  /** Delay added to the link's base delay, drawn uniformly. */
  readonly extraDelayMs?: Range;
  readonly loss?: number;
  readonly duplicate?: number;
  readonly reorder?: number;
}

interface Impairment {
  readonly loss: number;
  readonly duplicate: number;
  readonly reorder: number;
}

function impairment(options: Pick<NetworkOptions, 'loss' | 'duplicate' | 'reorder'>): Impairment {
  return { loss: checkProbability('loss', options.loss), duplicate: checkProbability('duplicate', options.duplicate), reorder: checkProbability('reorder', options.reorder) };
}

function checkProbability(name: string, p: number | undefined): number {
  const v = p ?? 0;
  if (!(v >= 0 && v <= 1)) throw new ConsensusError('INVALID_CONFIG', `network ${name} must be a probability, got ${p}`);
  return v;
}

function checkRange(name: string, r: Range): Range {
  if (!(r[0] >= 0 && r[1] >= r[0] && Number.isFinite(r[1]))) throw new ConsensusError('INVALID_CONFIG', `network ${name} must be a range [min ≤ max], got [${r.join(', ')}]`);
  return r;
}

/** Link behaviour plus the current partition and disconnections. */
export class Network {
  readonly #n: number;
  readonly #delay: Range;
  readonly #regions: RegionTopology | undefined;
  #impairment: Impairment;
  readonly #reorderMs: number;
  #group: number[] | undefined;
  readonly #disconnected = new Set<NodeId>();
  readonly #links = new Map<string, LinkOptions>();

  constructor(n: number, options: NetworkOptions = {}) {
    this.#n = n;
    this.#delay = checkRange('delayMs', options.delayMs ?? [1, 5]);
    this.#regions = options.regions;
    if (this.#regions !== undefined) {
      if (this.#regions.of.length !== n) throw new ConsensusError('INVALID_CONFIG', `region topology places ${this.#regions.of.length} nodes, the simulation has ${n}`);
      checkRange('regions.intraMs', this.#regions.intraMs);
      checkRange('regions.interMs', this.#regions.interMs);
    }
    this.#impairment = impairment(options);
    this.#reorderMs = options.reorderMs ?? 20;
  }

  /** Splits the nodes into groups that cannot reach each other; nodes not listed form one more group. */
  partition(groups: readonly (readonly NodeId[])[]): void {
    const group = new Array<number>(this.#n).fill(groups.length);
    groups.forEach((members, g) => {
      for (const id of members) {
        if (!Number.isInteger(id) || id < 0 || id >= this.#n) throw new ConsensusError('INVALID_CONFIG', `partition names node ${id}, not in 0…${this.#n - 1}`);
        group[id] = g;
      }
    });
    this.#group = group;
  }

  /** Replaces the loss, duplication and reordering probabilities (absent ones become 0). */
  impair(options: Pick<NetworkOptions, 'loss' | 'duplicate' | 'reorder'>): void {
    this.#impairment = impairment(options);
  }

  /** Removes the partition (disconnected nodes stay disconnected). */
  heal(): void {
    this.#group = undefined;
  }

  /** Cuts a node off from every other endpoint, the client included. */
  disconnect(id: NodeId): void {
    this.#disconnected.add(id);
  }

  /** Reconnects a node cut off by {@link disconnect}. */
  connect(id: NodeId): void {
    this.#disconnected.delete(id);
  }

  /** Sets how the one-way link from → to behaves, over the network-wide settings (replacing earlier link settings). */
  link(from: number, to: number, options: LinkOptions): void {
    if (options.extraDelayMs !== undefined) checkRange('extraDelayMs', options.extraDelayMs);
    impairment(options);
    this.#links.set(`${from}>${to}`, options);
  }

  /** Removes every per-link setting. */
  clearLinks(): void {
    this.#links.clear();
  }

  /** True when a partition or disconnection separates the two endpoints. */
  blocked(from: number, to: number): boolean {
    if (from === to) return false;
    if (this.#disconnected.has(from) || this.#disconnected.has(to)) return true;
    if (from === CLIENT || to === CLIENT || this.#group === undefined) return false;
    return this.#group[from] !== this.#group[to];
  }

  /**
   * The delivery delays of one message on from → to: empty when it is lost or blocked, two when
   * duplicated. Loopback is instantaneous and never lost.
   */
  deliveries(from: number, to: number, rng: Prng): number[] {
    if (from === to) return [0];
    const link = this.#links.get(`${from}>${to}`);
    const loss = link?.loss ?? this.#impairment.loss;
    if (this.blocked(from, to) || rng.chance(loss)) return [];
    const reorder = link?.reorder ?? this.#impairment.reorder;
    const one = (): number => {
      let d = rng.between(...this.#linkRange(from, to));
      if (link?.extraDelayMs !== undefined) d += rng.between(...link.extraDelayMs);
      if (rng.chance(reorder)) d += rng.between(0, this.#reorderMs);
      return d;
    };
    const out = [one()];
    if (rng.chance(link?.duplicate ?? this.#impairment.duplicate)) out.push(one());
    return out;
  }

  #linkRange(from: number, to: number): Range {
    const r = this.#regions;
    if (r === undefined) return this.#delay;
    const region = (id: number): number => (id === CLIENT ? r.client ?? 0 : (r.of[id] as number));
    return region(from) === region(to) ? r.intraMs : r.interMs;
  }
}
