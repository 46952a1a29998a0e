/**
 * How a Byzantine HotStuff replica conflicts with itself (the simulator's and chaos runner's
 * hooks): a leader proposes, for the same view, parent and justify, a block with another batch; a
 * voter votes, in the same view, for another block.
 */
import { digestOf } from '../consensus/codec.js';
import { command } from '../consensus/command.js';
import type { Adversary } from '../consensus/core.js';
import { makeBlock } from './block.js';
import { voteBody } from './certificates.js';
import { proposalBody, type HotStuffMessage } from './messages.js';

/** The client name of the no-op command a conflicting proposal may add. */
export const NO_OP_CLIENT = 'hotstuff/no-op';

/** The Byzantine hooks of HotStuff. */
export const hotStuffAdversary: Adversary<HotStuffMessage> = {
  isProposal: (body) => body.type === 'proposal',
  conflicting(body, salt) {
    if (body.type === 'vote') return voteBody(body.view, digestOf(['conflicting vote', body.block, salt]));
    if (body.type !== 'proposal') return undefined;
    const { block } = body;
    const commands =
      block.commands.length > 0
        ? block.commands.filter((_, i) => i !== salt % block.commands.length)
        : [command(NO_OP_CLIENT, salt, new Uint8Array(0))];
    return proposalBody(makeBlock({ ...block, commands }), body.tc);
  },
};
