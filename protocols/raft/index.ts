/**
 * Raft (Ongaro & Ousterhout; Ongaro's thesis) as a knhk protocol: crash-fault-tolerant
 * replication with pre-vote, snapshots, ReadIndex reads and single-server membership changes.
 */
import type { ProtocolDefinition } from '../consensus/core.js';
import { RaftCore } from './core.js';
import { raftMessageSchema, type RaftMessage } from './messages.js';
import type { RaftOptions } from './options.js';

export { RaftCore } from './core.js';
export { entryBytes, raftEntrySchema, raftMessageSchema, type RaftEntry, type RaftMessage, type RaftMessageOf, type SnapshotRecord } from './messages.js';
export type { RaftOptions, ResolvedRaftOptions } from './options.js';

/**
 * The Raft protocol definition. Every server of a cluster must get the same `options`.
 * Raft has no certificates, so `nested` is empty; it tolerates crashes, not Byzantine servers, so
 * its adversary offers no conflicting variants (the simulator refuses Byzantine modes for it).
 */
export function raft(options: RaftOptions = {}): ProtocolDefinition<RaftMessage> {
  return {
    algorithm: 'raft',
    message: raftMessageSchema,
    nested: () => [],
    create: (core) => new RaftCore(core, options),
    adversary: {
      isProposal: (body) => body.type === 'append-entries' && body.entries.length > 0,
      conflicting: () => undefined,
    },
  };
}
