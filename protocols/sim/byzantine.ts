/**
 * Byzantine behaviours. A Byzantine replica runs the honest core, and an adversary rewrites what
 * it sends. It holds only its own signing key, so everything it sends in its own name carries a
 * valid signature, and everything it sends in another's name does not.
 */
import type { Adversary, NodeId, Outbound, Reply } from '../consensus/index.js';
import type { Prng } from './prng.js';

/** The Byzantine modes the simulator (and the chaos runner) can switch a replica into. */
export type ByzantineMode =
  /** Different proposals and votes to different peers (and false answers to clients, as `forge` and `double-vote`: {@link answerClient}). */
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

/**
 * What a replica in `mode` answers a client instead of `reply`: the modes that lie to peers lie to
 * clients too, with a response the command never produced (and a position past any executed), so
 * that a client's rule of f+1 matching replies is put to the test. A lie is made without drawing
 * from the run's random numbers, so a seed's schedule is the same whether replies lie or not.
 */
export function answerClient(mode: ByzantineMode | null, reply: Reply): Reply {
  if (mode !== 'equivocate' && mode !== 'forge' && mode !== 'double-vote') return reply;
  return { ...reply, position: reply.position + 1_000_000, response: Uint8Array.of(...reply.response, 0x21) };
}

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
