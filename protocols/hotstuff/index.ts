/**
 * Chained HotStuff (Yin, Malkhi, Reiter, Gueta, Abraham, PODC'19) as a sans-IO consensus core,
 * with a LibraBFT/DiemBFT-style pacemaker (timeouts and timeout certificates).
 */
import type { ProtocolDefinition } from '../consensus/core.js';
import { hotStuffAdversary } from './adversary.js';
import { HotStuffCore, type HotStuffOptions } from './core.js';
import { hotStuffMessageSchema, nestedSignatures, type HotStuffMessage } from './messages.js';

export { HotStuffCore, type HotStuffOptions, type HotStuffStats } from './core.js';
export { hotStuffMessageSchema, nestedSignatures, proposalBody, type HotStuffMessage, type MessageOf } from './messages.js';
export { GENESIS, GENESIS_HASH, GENESIS_QC, blockHash, blockSchema, makeBlock, type Block, type BlockFields } from './block.js';
export {
  checkQC,
  checkTC,
  signedTimeouts,
  signedVotes,
  timeoutBody,
  timeoutCertSchema,
  voteBody,
  type TimeoutBody,
  type TimeoutCert,
  type VoteBody,
} from './certificates.js';
export { Pacemaker, leaderOf } from './pacemaker.js';
export { isThreeChain, nextLock, safeNode } from './safety.js';
export { hotStuffAdversary, NO_OP_CLIENT } from './adversary.js';

/** The HotStuff protocol for a host: schema, nested signatures, core factory and Byzantine hooks. */
export function hotstuff(options: HotStuffOptions = {}): ProtocolDefinition<HotStuffMessage> {
  return {
    algorithm: 'hotstuff',
    message: hotStuffMessageSchema,
    nested: nestedSignatures,
    create: (core) => new HotStuffCore(core, options),
    adversary: hotStuffAdversary,
  };
}
