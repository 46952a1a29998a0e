/**
 * Single-server membership changes as a leader carries them out (thesis §4.1–§4.2): when a change
 * may start, a new server's catch-up before the configuration that adds it, and servers a
 * configuration removed, which the leader keeps telling until they report that the removal
 * committed (otherwise a removed server never learns it and campaigns forever). The sending is
 * the caller's: these functions change the log and the leader's state only.
 */
import type { NodeId } from '../consensus/config.js';
import type { LeaderState } from './leader.js';
import { CatchUp, withMember } from './membership.js';
import { configEntry } from './messages.js';
import type { RaftServer } from './server.js';

/**
 * One change at a time (§4.1), and only after the leader has committed an entry of its term:
 * otherwise a change from an earlier term that it never saw committed could be overridden,
 * letting two disjoint majorities decide (the fix Ongaro posted to the raft-dev list in 2015).
 */
export function mayChangeMembership(s: RaftServer, lead: LeaderState): boolean {
  return lead.catchUp === undefined && s.current.index <= s.commitIndex && s.commitIndex >= lead.termStart;
}

/** Starts catching `id` up as a non-voting learner (thesis §4.2.1). */
export function startCatchUp(s: RaftServer, lead: LeaderState, id: NodeId): void {
  lead.catchUp = new CatchUp(id, s.log.lastIndex, s.electionTicks, s.options.catchUpRounds);
}

/**
 * `from` now matches the leader up to `match`. Returns true when that completed its catch-up and
 * the configuration adding it was appended. An abandoned catch-up just ends: `proposeAddServer`
 * already returned, so the caller learns of it only by `catchingUp` and `members`.
 */
export function catchUpProgress(s: RaftServer, lead: LeaderState, from: NodeId, match: number): boolean {
  const catchUp = lead.catchUp;
  if (catchUp === undefined || catchUp.server !== from) return false;
  const progress = catchUp.progress(match, s.log.lastIndex);
  if (progress === 'waiting') return false;
  lead.catchUp = undefined;
  if (progress === 'abandoned') return false;
  appendConfiguration(s, lead, withMember(s.current.members, from));
  return true;
}

/**
 * Appends a configuration, in force from now on (§4.1: servers use the latest one in their log),
 * and starts telling the servers it removes.
 */
export function appendConfiguration(s: RaftServer, lead: LeaderState, members: readonly NodeId[]): void {
  const removed = s.current.members.filter((id) => !members.includes(id) && id !== s.self);
  const index = s.appendLocal(configEntry(s.term, s.clock, members));
  for (const id of members) lead.stay(id);
  for (const id of removed) lead.depart(id, index, departureTicks(s));
}

/**
 * A new leader tells the servers its latest configuration removed, whether or not that
 * configuration has committed: it cannot know whether they learnt of it from its predecessor.
 */
export function resumeDepartures(s: RaftServer, lead: LeaderState): void {
  if (s.previous === undefined) return;
  for (const id of s.previous.members) {
    if (id !== s.self && !s.current.members.includes(id)) lead.depart(id, s.current.index, departureTicks(s));
  }
}

/** How long a removed server that does not answer is told: `catchUpRounds` election timeouts. */
function departureTicks(s: RaftServer): number {
  return s.options.catchUpRounds * s.electionTicks;
}
