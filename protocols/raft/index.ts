/**
 * Raft (Ongaro & Ousterhout; Ongaro's thesis) as a knhk protocol: crash-fault-tolerant
 * replication with pre-vote, snapshots, ReadIndex reads and single-server membership changes.
 */
import type { PositionReader, PositionSighting, ProtocolDefinition } from '../consensus/core.js';
import { RaftCore } from './core.js';
import { raftMessageSchema, type RaftMessage } from './messages.js';
import type { RaftOptions } from './options.js';

export { RaftCore } from './core.js';
export { entryBytes, raftEntrySchema, raftMessageSchema, type RaftEntry, type RaftMessage, type RaftMessageOf, type SnapshotMeta, type SnapshotRecord } from './messages.js';
export type { RaftOptions, ResolvedRaftOptions } from './options.js';

/**
 * What Raft bodies show about log indexes: AppendEntries carries entries its sender holds — its
 * own proposals when they are of its current term, one leader per term (§5.2) — and a successful
 * reply says the follower's log matches the leader's up to `matchIndex` (§5.3). An entry
 * outlives its term until a leader overwrites it.
 */
export const raftPositions: PositionReader<RaftMessage> = {
  viewBound: false,
  sightings(body): PositionSighting[] {
    switch (body.type) {
      case 'append-entries':
        return body.entries.map((entry, k) => ({
          sequence: body.prevLogIndex + 1 + k,
          view: entry.term,
          phase: 'append',
          value: entry.term === body.term ? 'proposed' : 'relayed',
          commands: entry.type === 'commands' ? entry.commands : [],
        }));
      case 'append-entries-reply':
        return body.success && body.matchIndex > 0 ? [{ sequence: body.matchIndex, phase: 'append', prefix: true }] : [];
      default:
        return [];
    }
  },
};

/**
 * The Raft protocol definition. Every server of a cluster must get the same `options`.
 * Raft has no certificates, so `nested` is empty; it tolerates crashes, not Byzantine servers, so
 * its adversary offers no conflicting variants (the simulator refuses Byzantine modes for it).
 */
export function raft(options: RaftOptions = {}): ProtocolDefinition<RaftMessage> {
  return {
    algorithm: 'raft',
    uniqueLeader: true,
    message: raftMessageSchema,
    nested: () => [],
    create: (core) => new RaftCore(core, options),
    adversary: {
      isProposal: (body) => body.type === 'append-entries' && body.entries.length > 0,
      conflicting: () => undefined,
    },
    positions: raftPositions,
  };
}
