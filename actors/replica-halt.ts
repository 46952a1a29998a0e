/**
 * A halted replica (replica.ts): which errors halt a replica rather than crash it, and what a
 * halted replica still answers. A restart would meet such an error again, since the replica
 * replays its log to the same point or reads the same damaged bytes: restarting it would only
 * loop, and with its peers looping alike, exceed the cluster's restart intensity and take every
 * replica down. So it stays up with role `halted`, takes no input, answers its status with the
 * error, and tells the cluster agent, which counts it out of the quorum (cluster.ts).
 *
 * A halted replica no longer reads its store, which may be what halted it: asked for receipts or
 * receipt bodies, it says it has none, and its peers and the cluster ask another replica.
 */
import { encode, ConsensusError } from '../protocols/consensus/index.js';
import type { Sender } from '../runtime/index.js';
import { HALTING_CODES, type HaltingCode } from './cluster-agent.js';
import type { ReplicaMessage, ReplicaReply, ReplicaReport } from './replica.js';
import { StorageError } from './replica-store.js';

/** The code of `error` if it halts a replica (one of {@link HALTING_CODES}), else undefined: it crashes, to be restarted. */
export const haltingCode = (error: unknown): HaltingCode | undefined =>
  error instanceof ConsensusError || error instanceof StorageError ? HALTING_CODES.find((code) => code === error.code) : undefined;

/** Answers `msg` as a halted replica whose status is `status()`; it drops what is not a question. */
export function answerHalted(msg: ReplicaMessage, from: Sender<ReplicaReply>, status: () => ReplicaReport): void {
  switch (msg.type) {
    case 'status':
      return from.reply({ type: 'status', ...status() });
    case 'locate':
      return from.reply({ type: 'located' });
    case 'receipt':
    case 'receipts-at':
      return from.reply({ type: 'receipt' });
    case 'receipt-fill':
      return from.reply({ type: 'bodies', bytes: encode([]) });
  }
}

/** The status of replica `node`, halted as it started (`reason`): it has opened nothing, executed nothing. */
export function haltedAtStart(node: number, reason: string): ReplicaReport {
  return {
    node,
    role: 'halted',
    view: 0,
    commitIndex: 0,
    stateHash: new Uint8Array(0),
    steps: 0,
    malformed: 0,
    forged: 0,
    nonMember: 0,
    unverified: 0,
    unsent: 0,
    storeOpens: 0,
    receiptLog: 0,
    receiptLogComplete: false,
    halted: reason,
  };
}
