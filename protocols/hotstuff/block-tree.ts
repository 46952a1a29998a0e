/**
 * The tree of blocks a replica knows, rooted at its last snapshot (or genesis). Every block in it
 * links to a parent in it, so walking a chain never meets a gap; blocks whose parent is missing
 * wait in catch-up (sync.ts) until it arrives.
 */
import { hex, sameBytes, type Digest } from '../consensus/codec.js';
import type { ConsensusConfig } from '../consensus/config.js';
import { invariant } from '../consensus/errors.js';
import type { Block } from './block.js';
import { isValidQC } from './certificates.js';
import { leaderOf } from './pacemaker.js';
import { isThreeChain } from './safety.js';

/** A block in the tree, with what the core derives about its chain. */
export interface TreeNode {
  readonly block: Block;
  readonly hash: Digest;
  /** Hex of the hash: the map key. */
  readonly key: string;
  /** Height of the highest block carrying commands on the chain ending here (0 for none). */
  readonly lastFilled: number;
  /**
   * Height committed by the QCs a replica holding this block has seen on its chain: the best
   * three-chain among its ancestors' justifies. What a leader knows its followers know.
   */
  readonly certifiedCommit: number;
}

/** Why `block` cannot be a child of `parent`, or undefined when it can (chain structure only). */
export function linkError(block: Block, parent: TreeNode): string | undefined {
  const p = parent.block;
  if (block.height !== p.height + 1) return `height ${block.height} after parent height ${p.height}`;
  if (block.view <= p.view) return `view ${block.view} not after parent view ${p.view}`;
  if (!sameBytes(block.justify.valueHash, parent.hash) || block.justify.view !== p.view) return 'justify does not certify the parent';
  if (block.timestamp < p.timestamp) return `timestamp ${block.timestamp} before parent's ${p.timestamp}`;
  return undefined;
}

/**
 * True when `block` may join the tree below `parent`: it links to it ({@link linkError}), was
 * proposed by its view's leader, and its justify is a well-formed QC.
 */
export function validChild(block: Block, parent: TreeNode, config: ConsensusConfig): boolean {
  return linkError(block, parent) === undefined && block.proposer === leaderOf(block.view, config.n, parent.block) && isValidQC(block.justify, config);
}

/** Blocks by hash, from a root up. */
export class BlockTree {
  readonly #nodes = new Map<string, TreeNode>();
  #root: TreeNode;

  /** A tree holding only `root` (genesis, or the block of a snapshot), taken as committed. */
  constructor(root: Block, rootHash: Digest) {
    this.#root = this.#rootNode(root, rootHash);
    this.#nodes.set(this.#root.key, this.#root);
  }

  /** The lowest block kept: everything is at or above it. */
  get root(): TreeNode {
    return this.#root;
  }

  /** The block with hash `hash`, if held. */
  get(hash: Digest): TreeNode | undefined {
    return this.#nodes.get(hex(hash));
  }

  /** How many blocks are held. */
  get size(): number {
    return this.#nodes.size;
  }

  /** The greatest height held. */
  get height(): number {
    let height = 0;
    for (const node of this.#nodes.values()) height = Math.max(height, node.block.height);
    return height;
  }

  /** The parent of `node`, unless `node` is the root. */
  parent(node: TreeNode): TreeNode | undefined {
    return node === this.#root ? undefined : this.#nodes.get(hex(node.block.parent));
  }

  /**
   * Adds `block`, whose parent must be held and which must pass {@link linkError}.
   * @returns the new node (or the one already held).
   */
  add(block: Block, hash: Digest): TreeNode {
    const key = hex(hash);
    const known = this.#nodes.get(key);
    if (known !== undefined) return known;
    const parent = this.#nodes.get(hex(block.parent));
    invariant(parent !== undefined && linkError(block, parent) === undefined, `block ${key.slice(0, 16)} added without a valid parent`);
    const node: TreeNode = {
      block,
      hash,
      key,
      lastFilled: block.commands.length > 0 ? block.height : parent.lastFilled,
      certifiedCommit: Math.max(parent.certifiedCommit, this.committedBy(parent)?.block.height ?? 0),
    };
    this.#nodes.set(key, node);
    return node;
  }

  /** The block a QC on `b2` commits: b in a three-chain b2 ← b1 ← b (safety.ts), if there is one. */
  committedBy(b2: TreeNode): TreeNode | undefined {
    const b1 = this.parent(b2);
    const b0 = b1 === undefined ? undefined : this.parent(b1);
    if (b1 === undefined || b0 === undefined) return undefined;
    return isThreeChain(b2.block, b1.block, b0.block, b1.hash, b0.hash) ? b0 : undefined;
  }

  /** True when `node` is `ancestor` or descends from it. */
  extends(node: TreeNode, ancestor: TreeNode): boolean {
    let at: TreeNode | undefined = node;
    while (at !== undefined && at.block.height > ancestor.block.height) at = this.parent(at);
    return at === ancestor;
  }

  /** The blocks from `top` down to (excluding) height `above`, highest first. */
  chain(top: TreeNode, above: number): TreeNode[] {
    const out: TreeNode[] = [];
    for (let at: TreeNode | undefined = top; at !== undefined && at.block.height > above; at = this.parent(at)) out.push(at);
    return out;
  }

  /**
   * Drops what can never be committed or served: blocks below the root, and blocks at or below
   * `committed` that are not on its chain (abandoned forks).
   * @returns the keys dropped.
   */
  prune(committed: TreeNode): string[] {
    const onChain = new Set(this.chain(committed, this.#root.block.height - 1).map((n) => n.key));
    const dropped: string[] = [];
    for (const [key, node] of this.#nodes) {
      const h = node.block.height;
      if (h < this.#root.block.height || (h <= committed.block.height && !onChain.has(key))) dropped.push(key);
    }
    for (const key of dropped) this.#nodes.delete(key);
    return dropped;
  }

  /**
   * Makes `node` (committed, and held) the new root; {@link prune} then drops what is below it.
   */
  reroot(node: TreeNode): void {
    invariant(this.#nodes.get(node.key) === node, 'a new root must be held');
    this.#root = node;
  }

  /**
   * Replaces the root by a block not held (a snapshot installed from peers), keeping only the held
   * blocks that descend from it.
   * @returns the keys dropped.
   */
  replaceRoot(block: Block, hash: Digest): string[] {
    const root = this.#rootNode(block, hash);
    const kept = new Map<string, TreeNode>([[root.key, root]]);
    const above = [...this.#nodes.values()].filter((n) => n.block.height > block.height).sort((a, b) => a.block.height - b.block.height);
    for (const node of above) if (kept.has(hex(node.block.parent))) kept.set(node.key, node);
    const dropped = [...this.#nodes.keys()].filter((key) => !kept.has(key));
    this.#nodes.clear();
    for (const [key, node] of kept) this.#nodes.set(key, node);
    this.#root = root;
    return dropped;
  }

  #rootNode(block: Block, hash: Digest): TreeNode {
    return { block, hash, key: hex(hash), lastFilled: 0, certifiedCommit: block.height };
  }
}
