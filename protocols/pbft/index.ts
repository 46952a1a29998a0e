/**
 * PBFT (Castro & Liskov, OSDI'99 / TOCS'02) as a sans-IO core, with its messages, view-change
 * rules and the definition hosts run it from.
 */
import type { ProtocolDefinition } from '../consensus/core.js';
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

/** PBFT's protocol definition, with tuning applied to every replica it creates. */
export function pbft(options: PbftOptions = {}): ProtocolDefinition<PbftMessage> {
  return {
    algorithm: 'pbft',
    message: pbftMessageSchema,
    nested: nestedSignatures,
    create: (core) => new PbftCore(core, options),
    adversary: pbftAdversary,
  };
}
