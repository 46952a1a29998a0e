/**
 * PBFT (Castro & Liskov, OSDI'99 / TOCS'02) as a sans-IO core, with its messages, view-change
 * rules and the definition hosts run it from.
 */
import type { PositionReader, PositionSighting, ProtocolDefinition } from '../consensus/core.js';
import { pbftAdversary } from './adversary.js';
import { PbftCore, type PbftOptions } from './core.js';
import { nestedSignatures, pbftMessageSchema, type PbftMessage } from './messages.js';

export { PbftCore, type PbftOptions } from './core.js';
export {
  checkpoint,
  commit,
  nestedSignatures,
  pbftMessageSchema,
  prePrepare,
  prepare,
  proposalDigest,
  type Checkpoint,
  type Commit,
  type FetchState,
  type NewView,
  type PbftMessage,
  type PrePrepare,
  type PreparedCert,
  type Prepare,
  type StableCheckpoint,
  type StateTransfer,
  type ViewChange,
} from './messages.js';
export { planNewView, primaryOf, validCheckpoint, validPreparedCert, validViewChange, type NewViewPlan, type Quorums } from './view-change.js';
export { pbftAdversary } from './adversary.js';

/**
 * What PBFT bodies show about sequence numbers (§4.2): a pre-prepare is the primary's proposal; a
 * backup multicasts its prepare once it accepted the pre-prepare, and its commit once prepared; a
 * retransmitted commit certificate (thesis §5.2) proves the sequence committed; a NEW-VIEW
 * re-proposes sequences in the new view (§4.4). A round belongs to its view.
 */
export const pbftPositions: PositionReader<PbftMessage> = {
  viewBound: true,
  sightings(body): PositionSighting[] {
    switch (body.type) {
      case 'pre-prepare':
        return [{ sequence: body.sequence, view: body.view, phase: 'pre-prepare', value: 'proposed', commands: body.batch }];
      case 'prepare':
        return [{ sequence: body.sequence, view: body.view, phase: 'pre-prepare' }];
      case 'commit':
        return [{ sequence: body.sequence, view: body.view, phase: 'prepare' }];
      case 'committed': {
        const { sequence, view, batch } = body.prePrepare.body;
        return [{ sequence, view, phase: 'commit', value: 'relayed', commands: batch, votes: body.certificate.signatures.length }];
      }
      case 'new-view':
        return body.prePrepares.map((pp) => ({ sequence: pp.body.sequence, view: pp.body.view, phase: 'pre-prepare', value: 'proposed', commands: pp.body.batch }));
      default:
        return [];
    }
  },
};

/** PBFT's protocol definition, with tuning applied to every replica it creates. */
export function pbft(options: PbftOptions = {}): ProtocolDefinition<PbftMessage> {
  return {
    algorithm: 'pbft',
    uniqueLeader: true,
    message: pbftMessageSchema,
    nested: nestedSignatures,
    create: (core) => new PbftCore(core, options),
    adversary: pbftAdversary,
    positions: pbftPositions,
  };
}
