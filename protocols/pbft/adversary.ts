/**
 * How a Byzantine PBFT replica lies: a primary proposes two batches for one sequence number, a
 * replica votes for two digests, or vouches for a state it does not have.
 */
import { hashBytes } from '../consensus/codec.js';
import { command } from '../consensus/command.js';
import type { Adversary } from '../consensus/core.js';
import { prePrepare, type PbftMessage } from './messages.js';

function saltDigest(salt: number): Uint8Array {
  return hashBytes(new Uint8Array(new Uint32Array([salt, 0x70626674]).buffer));
}

/** The adversary hooks of PBFT. */
export const pbftAdversary: Adversary<PbftMessage> = {
  isProposal: (body) => body.type === 'pre-prepare' || body.type === 'new-view',
  conflicting(body, salt) {
    switch (body.type) {
      case 'pre-prepare': {
        const batch = body.batch.length > 1 ? body.batch.slice(1) : [command(`byzantine-${salt}`, 1, new Uint8Array(0))];
        return prePrepare(body.view, body.sequence, body.timestamp, batch, body.proposedIn);
      }
      case 'prepare':
      case 'commit':
        return { ...body, digest: saltDigest(salt) };
      case 'checkpoint':
        return { ...body, stateDigest: saltDigest(salt) };
      default:
        return undefined;
    }
  },
};
