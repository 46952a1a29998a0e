/**
 * Catching up: what a replica is missing and what waits for it.
 *
 * A proposal or a certificate can name a block the replica has not seen (it was partitioned away,
 * crashed, or a message was lost). The replica asks peers for the block and its ancestors; the
 * blocks that arrive before their parent, the QCs on blocks not yet held and a proposal waiting
 * for its parent are kept here until the gap closes. A replica that is behind a peer's pruned
 * history receives state snapshots instead, and installs one once f+1 peers offered the same
 * (block, state): at least one of them is correct, so it is a committed state.
 */
import type { QuorumCert, Signed } from '../consensus/certificate.js';
import { hashBytes, hex, type Digest } from '../consensus/codec.js';
import type { NodeId } from '../consensus/config.js';
import type { Block } from './block.js';
import type { MessageOf } from './messages.js';

/** Most blocks kept waiting for a parent; more are dropped (and fetched again when needed). */
export const MAX_ORPHANS = 4096;

/** Rounds of asking every peer for a block before giving up on it (it was pruned everywhere). */
export const MAX_FETCH_ROUNDS = 20;

/** A block named by a message, not yet held. Height 0 means unknown (the block was named by a QC). */
export interface Wanted {
  readonly hash: Digest;
  readonly height: number;
}

/** A block and its hash. */
export interface HashedBlock {
  readonly block: Block;
  readonly hash: Digest;
}

/** What waited for a block that just arrived. */
export interface Arrival {
  readonly children: readonly HashedBlock[];
  readonly qc: QuorumCert | undefined;
  readonly proposal: Signed<MessageOf<'proposal'>> | undefined;
}

/** A snapshot f+1 peers agree on. */
export interface AgreedSnapshot {
  readonly block: Block;
  readonly hash: Digest;
  readonly state: Uint8Array;
}

/** Missing blocks, orphans and snapshot offers. */
export class BlockSync {
  readonly #missing = new Map<string, Wanted & { rounds: number }>();
  readonly #orphans = new Map<string, Map<string, HashedBlock>>();
  #orphanCount = 0;
  readonly #qcs = new Map<string, QuorumCert>();
  readonly #proposals = new Map<string, Signed<MessageOf<'proposal'>>>();
  readonly #offers = new Map<NodeId, { key: string } & AgreedSnapshot>();

  /** Marks `hash` as wanted; true when it was not already. */
  want(hash: Digest, height: number): boolean {
    const key = hex(hash);
    const known = this.#missing.get(key);
    if (known !== undefined && (known.height > 0 || height === 0)) return false;
    this.#missing.set(key, { hash, height, rounds: known?.rounds ?? 0 });
    return known === undefined;
  }

  /** True when `key` is wanted. */
  wanted(key: string): boolean {
    return this.#missing.has(key);
  }

  /** Every wanted block, for one more round of asking; blocks asked for too often are given up. */
  retry(): Wanted[] {
    const out: Wanted[] = [];
    for (const [key, w] of this.#missing) {
      if (++w.rounds > MAX_FETCH_ROUNDS) this.#missing.delete(key);
      else out.push({ hash: w.hash, height: w.height });
    }
    return out;
  }

  /** Keeps `block` until its parent arrives. */
  orphan(block: Block, hash: Digest): void {
    if (this.#orphanCount >= MAX_ORPHANS) return;
    const parent = hex(block.parent);
    const siblings = this.#orphans.get(parent) ?? new Map<string, HashedBlock>();
    const key = hex(hash);
    if (siblings.has(key)) return;
    siblings.set(key, { block, hash });
    this.#orphans.set(parent, siblings);
    this.#orphanCount++;
  }

  /** Keeps a QC on a block not held yet. */
  certificate(qc: QuorumCert): void {
    this.#qcs.set(hex(qc.valueHash), qc);
  }

  /** True when a QC newer than `view` waits for its block. */
  waitingAbove(view: number): boolean {
    for (const qc of this.#qcs.values()) if (qc.view > view) return true;
    return false;
  }

  /** Forgets QCs no newer than `view` (the high QC): their blocks are no longer needed to extend. */
  supersede(view: number): void {
    for (const [key, qc] of this.#qcs) {
      if (qc.view > view) continue;
      this.#qcs.delete(key);
      if (this.#missing.get(key)?.height === 0) this.#missing.delete(key);
    }
  }

  /** Keeps a proposal whose block waits for its parent, to vote once it can be added. */
  awaitBlock(key: string, proposal: Signed<MessageOf<'proposal'>>): void {
    this.#proposals.set(key, proposal);
  }

  /** Block `key` was added to the tree: takes what waited for it. */
  arrived(key: string): Arrival {
    this.#missing.delete(key);
    const children = this.#orphans.get(key);
    this.#orphans.delete(key);
    this.#orphanCount -= children?.size ?? 0;
    const qc = this.#qcs.get(key);
    this.#qcs.delete(key);
    const proposal = this.#proposals.get(key);
    this.#proposals.delete(key);
    return { children: [...(children?.values() ?? [])], qc, proposal };
  }

  /** Forgets everything at or below `height` (committed or superseded), and proposals for views before `view`. */
  forget(height: number, view: number): void {
    for (const [key, w] of this.#missing) if (w.height !== 0 && w.height <= height) this.#missing.delete(key);
    for (const [parent, siblings] of this.#orphans) {
      for (const [key, o] of siblings) {
        if (o.block.height > height) continue;
        siblings.delete(key);
        this.#orphanCount--;
      }
      if (siblings.size === 0) this.#orphans.delete(parent);
    }
    for (const [key, p] of this.#proposals) if (p.body.block.view < view) this.#proposals.delete(key);
  }

  /**
   * Records `from`'s snapshot offer (its latest replaces an earlier one).
   * @returns the snapshot once `needed` peers offered the same block and state.
   */
  offer(from: NodeId, block: Block, hash: Digest, state: Uint8Array, needed: number): AgreedSnapshot | undefined {
    const key = `${hex(hash)}:${hex(hashBytes(state))}`;
    this.#offers.set(from, { key, block, hash, state });
    let agreeing = 0;
    for (const o of this.#offers.values()) if (o.key === key) agreeing++;
    if (agreeing < needed) return undefined;
    this.#offers.clear();
    return { block, hash, state };
  }
}
