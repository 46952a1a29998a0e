/**
 * Byzantine behaviours. A Byzantine replica runs the honest core, and an adversary rewrites what
 * it sends. It holds only its own signing key, so everything it sends in its own name carries a
 * valid signature, and everything it sends in another's name does not.
 */
import type { Adversary, NodeId, Outbound } from '../consensus/index.js';
import type { Prng } from './prng.js';

/** The Byzantine modes the simulator (and the chaos runner) can switch a replica into. */
export type ByzantineMode =
  /** Different proposals and votes to different peers. */
  | 'equivocate'
  /** Also sends messages in other members' names, with signatures it cannot make. */
  | 'forge'
  /** Also re-sends old valid messages it has seen. */
  | 'replay'
  /** Votes (and proposes) for two different values, to everyone. */
  | 'double-vote'
  /** Sends nothing at all. */
  | 'silent'
  /** As leader, never sends its proposals; otherwise honest. */
  | 'withhold';

/** All modes, in documentation order. */
export const BYZANTINE_MODES: readonly ByzantineMode[] = ['equivocate', 'forge', 'replay', 'double-vote', 'silent', 'withhold'];

/** One message to sign and send as `from` (a forged one names someone else). */
export interface Transmission<M> {
  readonly from: NodeId;
  readonly to: readonly NodeId[];
  readonly body: M;
}

/** Old envelopes a replaying replica re-sends, kept per replica. */
export const REPLAY_MEMORY = 64;

/**
 * What a replica in `mode` sends instead of `out`. `members` are the possible victims of a forgery.
 */
export function corrupt<M>(mode: ByzantineMode, self: NodeId, out: Outbound<M>, adversary: Adversary<M>, members: readonly NodeId[], rng: Prng): Transmission<M>[] {
  const honest: Transmission<M> = { from: self, to: out.to, body: out.body };
  switch (mode) {
    case 'silent':
      return [];
    case 'withhold':
      return adversary.isProposal(out.body) ? [] : [honest];
    case 'replay':
      return [honest];
    case 'equivocate': {
      const other = adversary.conflicting(out.body, rng.u32());
      if (other === undefined) return [honest];
      const peers = rng.shuffle(out.to.filter((id) => id !== self));
      const half = Math.ceil(peers.length / 2);
      return [
        { from: self, to: [...out.to.filter((id) => id === self), ...peers.slice(0, half)], body: out.body },
        { from: self, to: peers.slice(half), body: other },
      ];
    }
    case 'double-vote': {
      const other = adversary.conflicting(out.body, rng.u32());
      return other === undefined ? [honest] : [honest, { from: self, to: out.to, body: other }];
    }
    case 'forge': {
      const victims = members.filter((id) => id !== self);
      if (victims.length === 0) return [honest];
      const body = adversary.conflicting(out.body, rng.u32()) ?? out.body;
      return [honest, { from: rng.pick(victims), to: out.to, body }];
    }
  }
}

/** Remembers an encoded envelope for a replaying replica. */
export function remember(memory: Uint8Array[], envelope: Uint8Array): void {
  memory.push(envelope);
  if (memory.length > REPLAY_MEMORY) memory.shift();
}
