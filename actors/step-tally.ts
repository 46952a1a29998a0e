/**
 * Replicas' reports of the signature policy steps their configurations took, counted the way the
 * verifier and the cluster both take a step: once enough replicas that one is correct report the
 * same step from the policy in force. Each replica holds one report per starting policy, its
 * latest, so a faulty one cannot crowd out the others' with made-up steps, nor count twice; and a
 * report of a later step waits for the policy to get there, since replicas report each step once.
 */
import { encode, hashBytes, hex } from '../protocols/consensus/index.js';
import type { SignaturePolicy } from '../protocols/crypto/index.js';

/** A policy step as a replica reports it: from, to, the position that took it, and every member's rotation certificate. */
export interface ReportedStep {
  readonly from: SignaturePolicy;
  readonly to: SignaturePolicy;
  readonly sequence: number;
  readonly certificates: readonly Uint8Array[];
}

/** The reports of policy steps by replica, one per replica and starting policy. */
export class StepTally {
  /** The step each replica last reported, by `reporter/from`, as its id. */
  readonly #slots = new Map<string, string>();
  /** The steps reported, by id: at most one per slot. */
  readonly #steps = new Map<string, ReportedStep>();

  /** Replica `reporter` reports `step`, replacing what it reported before from the same policy. */
  add(reporter: number, step: ReportedStep): void {
    const id = `${step.from}>${step.to}@${step.sequence}:${hex(hashBytes(encode(step.certificates)))}`;
    const slot = `${reporter}/${step.from}`;
    const before = this.#slots.get(slot);
    this.#slots.set(slot, id);
    this.#steps.set(id, step);
    if (before !== undefined && before !== id && ![...this.#slots.values()].includes(before)) this.#steps.delete(before);
  }

  /** Forgets `step`: it was refused, and is not to be taken again however many report it. */
  discard(step: ReportedStep): void {
    for (const [slot, id] of this.#slots) if (this.#steps.get(id) === step) this.#slots.delete(slot);
    for (const [id, known] of this.#steps) if (known === step) this.#steps.delete(id);
  }

  /** The step from `from` that at least `quorum` replicas reported alike, if there is one. */
  agreed(from: SignaturePolicy, quorum: number): ReportedStep | undefined {
    const counts = new Map<string, number>();
    for (const [slot, id] of this.#slots) {
      if (!slot.endsWith(`/${from}`)) continue;
      const count = (counts.get(id) ?? 0) + 1;
      if (count >= quorum) return this.#steps.get(id);
      counts.set(id, count);
    }
    return undefined;
  }
}
