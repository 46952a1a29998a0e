/**
 * Network faults between a cluster's replicas: partitions and per-link delays. The cluster keeps
 * the current faults and hands them to every replica; a replica applies them to what it sends,
 * so a message across a cut is never sent and a delayed one leaves late — what a real network
 * would do, on real threads. Clients are not cut off: a partition is between replicas.
 */
import { ConfigError, t, type Infer } from '../runtime/index.js';

/** A delay on the link `from` → `to`: every message waits `ms` plus up to `jitterMs`, drawn per message. */
export interface LinkDelay {
  readonly from: number;
  readonly to: number;
  readonly ms: number;
  readonly jitterMs?: number;
}

/** The faults in force. */
export const linkFaultsSchema = t.object({
  /** Groups that can talk among themselves only; `undefined` when the network is whole. */
  partition: t.optional(t.array(t.array(t.uint(), { maxLength: 256 }), { maxLength: 256 })),
  delays: t.array(t.object({ from: t.uint(), to: t.uint(), ms: t.uint(), jitterMs: t.optional(t.uint()) }), { maxLength: 65_536 }),
});

/** The faults in force, as a replica receives them. */
export type LinkFaults = Infer<typeof linkFaultsSchema>;

/** No faults. */
export const HEALTHY: LinkFaults = { delays: [] };

/**
 * Checks a partition: every replica of `0 … n−1` in exactly one group.
 * @throws {ConfigError} otherwise.
 */
export function checkPartition(groups: readonly (readonly number[])[], n: number): void {
  const seen = new Set<number>();
  for (const node of groups.flat()) {
    if (!Number.isSafeInteger(node) || node < 0 || node >= n) throw new ConfigError(`a partition names replica ${node}, not one of 0…${n - 1}`);
    if (seen.has(node)) throw new ConfigError(`a partition puts replica ${node} in two groups`);
    seen.add(node);
  }
  if (seen.size !== n) throw new ConfigError(`a partition must place every one of the ${n} replicas`);
}

/**
 * Checks a delay against a cluster of `n` replicas.
 * @throws {ConfigError} for an unknown replica or a negative or non-integer time.
 */
export function checkDelay(delay: LinkDelay, n: number): void {
  for (const node of [delay.from, delay.to]) {
    if (!Number.isSafeInteger(node) || node < 0 || node >= n) throw new ConfigError(`a delay names replica ${node}, not one of 0…${n - 1}`);
  }
  for (const ms of [delay.ms, delay.jitterMs ?? 0]) {
    if (!Number.isSafeInteger(ms) || ms < 0) throw new ConfigError(`a delay must be a non-negative whole number of ms, got ${ms}`);
  }
}

/**
 * How long a message from `from` to `to` waits under `faults`: `undefined` if it cannot get
 * through (they are in different groups of a partition), else its delay in ms (0 for none).
 */
export function linkDelay(faults: LinkFaults, from: number, to: number, random: () => number): number | undefined {
  if (faults.partition !== undefined) {
    const group = faults.partition.find((g) => g.includes(from));
    if (group === undefined || !group.includes(to)) return undefined;
  }
  let ms = 0;
  for (const d of faults.delays) {
    if (d.from === from && d.to === to) ms += d.ms + (d.jitterMs ?? 0) * random();
  }
  return ms;
}
