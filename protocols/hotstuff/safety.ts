/**
 * HotStuff's safety rules, as pure predicates over blocks (Yin et al.: Algorithm 3, chained
 * HotStuff; Algorithm 4's update(), its event-driven form; safeNode as in Algorithm 1).
 *
 * Blocks here always extend the block their justify certifies. Where the paper pads a chain with
 * dummy nodes so that a direct parent means the previous view, we ask for consecutive views
 * instead (the LibraBFT/DiemBFT formulation of the same "direct parent" condition).
 */
import type { QuorumCert } from '../consensus/certificate.js';
import { sameBytes } from '../consensus/codec.js';
import type { Block } from './block.js';

/**
 * The voting rule, safeNode (Algorithm 1, in its `qc.viewNumber > lockedQC.viewNumber` form): vote
 * for a block iff it extends the locked block (safety), or its justify is newer than the lock
 * (liveness: a replica locked on a block that a quorum has since moved past must follow them).
 */
export function safeNode(justify: QuorumCert, locked: QuorumCert, extendsLocked: boolean): boolean {
  return extendsLocked || justify.view > locked.view;
}

/**
 * True when b'' ← b' ← b is a chain of direct descendants (Algorithm 3's decide phase, Algorithm
 * 4's update(): b''.parent = b' ∧ b'.parent = b): each links to the next, in consecutive views.
 * A QC on `b2` (= b'') then commits `b0` (= b) and its ancestors: a "three-chain".
 */
export function isThreeChain(b2: Block, b1: Block, b0: Block, b1Hash: Uint8Array, b0Hash: Uint8Array): boolean {
  return sameBytes(b2.parent, b1Hash) && sameBytes(b1.parent, b0Hash) && b2.view === b1.view + 1 && b1.view === b0.view + 1;
}

/**
 * The lock a QC on `b2` leads to (Algorithm 4's update(): b_lock ← b' when higher): b2's justify,
 * the QC on b' — a replica locks on the first block of a certified two-chain b'' ← b' — when it is
 * newer than the current lock.
 */
export function nextLock(b2: Block, locked: QuorumCert): QuorumCert {
  return b2.justify.view > locked.view ? b2.justify : locked;
}

