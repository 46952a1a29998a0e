/**
 * Chained HotStuff (Yin, Malkhi, Reiter, Gueta, Abraham, PODC'19) as a sans-IO consensus core,
 * with a LibraBFT/DiemBFT-style pacemaker (timeouts and timeout certificates).
 */
import type { PositionReader, PositionSighting, ProtocolDefinition } from '../consensus/core.js';
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

/**
 * What HotStuff bodies show about block heights: a proposal is its leader's block, and its
 * justify, the QC on the parent, is the parent's first certificate (prepare) and locks the
 * grandparent, the head of a certified two-chain (pre-commit; Algorithm 4's update()). Commits
 * need the chain's views, which a single body does not hold: the host sees them as executions.
 */
export const hotStuffPositions: PositionReader<HotStuffMessage> = {
  viewBound: false,
  sightings(body): PositionSighting[] {
    if (body.type !== 'proposal') return [];
    const { height, view, justify } = body.block;
    const votes = justify.signatures.length;
    const sightings: PositionSighting[] = [{ sequence: height, view, phase: 'pre-prepare', value: 'proposed', commands: body.block.commands }];
    // Height 0 is the genesis block, which no replica proposes or executes.
    if (height > 1) sightings.push({ sequence: height - 1, view: justify.view, phase: 'prepare', votes });
    if (height > 2) sightings.push({ sequence: height - 2, phase: 'pre-commit', votes });
    return sightings;
  },
};

/** The HotStuff protocol for a host: schema, nested signatures, core factory and Byzantine hooks. */
export function hotstuff(options: HotStuffOptions = {}): ProtocolDefinition<HotStuffMessage> {
  return {
    algorithm: 'hotstuff',
    uniqueLeader: false,
    message: hotStuffMessageSchema,
    nested: nestedSignatures,
    create: (core) => new HotStuffCore(core, options),
    adversary: hotStuffAdversary,
    positions: hotStuffPositions,
  };
}
