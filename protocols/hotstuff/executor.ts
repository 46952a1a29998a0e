/**
 * The replicated state behind a HotStuff replica: client requests waiting to be proposed,
 * committing a decided chain (Yin et al., Algorithm 3's decide phase, Algorithm 4's onCommit:
 * execute every uncommitted ancestor of the decided block, lowest first), answering clients,
 * periodic snapshots, and installing a snapshot taken from peers.
 *
 * A decided chain may be executed in slices (core.ts, `resume`): the decision is persisted and the
 * forks it rules out are dropped at once, while the blocks' commands run a budget at a time, even
 * part of a block: `committed` is the decided block, `executed` the last one executed whole.
 */
import type { QuorumCert } from '../consensus/certificate.js';
import { sameBytes, type Digest } from '../consensus/codec.js';
import { commandKey, type Command } from '../consensus/command.js';
import type { Outputs } from '../consensus/core.js';
import { invariant } from '../consensus/errors.js';
import { StateArchive } from '../consensus/state-archive.js';
import { ExecutionRun, ReplicatedState, type ConsensusState, type Execution } from '../consensus/state-machine.js';
import type { Block } from './block.js';
import type { BlockTree, TreeNode } from './block-tree.js';
import { DURABLE, blockKey, type CommittedRecord, type StoredState } from './durable.js';
import type { HotStuffMessage } from './messages.js';

/** How an executor is tuned (the core's options of the same names). */
export interface ExecutorOptions {
  readonly batchSize: number;
  readonly snapshotInterval: number;
  readonly maxPending: number;
}

/** A decided block whose chain is not yet executed to its end, with the QC that decided it. */
interface Decision {
  readonly node: TreeNode;
  readonly certificate: QuorumCert | undefined;
}

/** Pending requests, the committed block, the replicated state and its snapshots. */
export class Executor {
  readonly #state: ReplicatedState;
  readonly #tree: BlockTree;
  readonly #out: Outputs<HotStuffMessage>;
  readonly #options: ExecutorOptions;
  readonly #pending = new Map<string, Command>();
  #executed: TreeNode;
  /** The state's hash as of the end of `#executed`. */
  #hash: Digest;
  /** The state as of the last snapshot height, on disk and served to peers behind it. */
  readonly #archive: StateArchive;
  /** The block the archived state is at: the tree's root when it was stored. */
  #archivedAt: Block | undefined;
  /** Decisions whose chains are not yet executed to their ends, oldest first. */
  readonly #decisions: Decision[] = [];
  /** The block of the decided chains executed part-way, if any. */
  #running: { readonly node: TreeNode; readonly run: ExecutionRun } | undefined;
  /**
   * Commands that may still be executed in the current step: the core sets it to its execution
   * slice when a step begins and back to no limit when it ends, so that construction and calls
   * outside steps execute everything.
   */
  budget = Number.POSITIVE_INFINITY;

  /**
   * An executor whose committed block is `tree`'s root; with `stored`, the state restored from
   * disk (reported to the host as an installed snapshot).
   * @throws {ConsensusError} `CORRUPT_STATE` when the stored state does not restore to its digests.
   */
  constructor(machine: ConsensusState, tree: BlockTree, out: Outputs<HotStuffMessage>, options: ExecutorOptions, stored: StoredState | undefined) {
    this.#state = new ReplicatedState(machine);
    this.#tree = tree;
    this.#out = out;
    this.#options = options;
    this.#executed = tree.root;
    this.#archive = new StateArchive(out);
    this.#archivedAt = stored?.block;
    if (stored !== undefined) this.#archive.recover(this.#state, stored.archive);
    this.#hash = this.#state.hash();
    if (stored !== undefined) out.applied({ kind: 'snapshot', position: stored.block.height, stateHash: this.#hash });
  }

  /** The last committed block: decided by a three-chain, perhaps not yet executed. */
  get committed(): TreeNode {
    return this.#decisions.at(-1)?.node ?? this.#executed;
  }

  /** The last committed block executed whole; the state is as of its end, or part-way past it. */
  get executed(): TreeNode {
    return this.#executed;
  }

  /** True while decided blocks wait to be executed: `advance` continues. */
  get paused(): boolean {
    return this.#decisions.length > 0;
  }

  /** The state at the last snapshot height and its block, served to peers behind the pruned history. */
  snapshot(): { readonly block: Block; readonly state: Uint8Array } | undefined {
    const state = this.#archive.snapshot();
    return this.#archivedAt === undefined || state === undefined ? undefined : { block: this.#archivedAt, state };
  }

  /** Requests waiting to be proposed. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * A client request: answered from the client table when it was its client's last executed one
   * (Castro & Liskov §4.1), kept for a proposal when new.
   */
  request(cmd: Command): void {
    const recorded = this.#state.cached(cmd);
    if (recorded !== undefined) {
      this.#out.reply({ client: cmd.client, timestamp: cmd.timestamp, view: this.#executed.block.view, ...recorded });
      return;
    }
    const key = commandKey(cmd);
    if (this.#state.executed(cmd) || this.#pending.has(key) || this.#pending.size >= this.#options.maxPending) return;
    this.#pending.set(key, cmd);
  }

  /** Pending commands not already on the uncommitted chain ending at `parent`, up to a batch. */
  batch(parent: TreeNode): Command[] {
    const onChain = new Set<string>();
    for (const node of this.#tree.chain(parent, this.committed.block.height)) for (const cmd of node.block.commands) onChain.add(commandKey(cmd));
    const batch: Command[] = [];
    for (const [key, cmd] of this.#pending) {
      if (batch.length >= this.#options.batchSize) break;
      if (!onChain.has(key)) batch.push(cmd);
    }
    return batch;
  }

  /** True while there is something to make progress on: a request, or a batch on the chain up to `high` not yet committed. */
  wantsProgress(high: TreeNode | undefined): boolean {
    return this.#pending.size > 0 || (high !== undefined && high.lastFilled > this.committed.block.height);
  }

  /**
   * Commits `decided` and its uncommitted ancestors, lowest first; `certificate` is the QC that
   * decided it (on b'' of its three-chain), reported with every entry it commits: a QC on b''
   * commits b and, b extending them, all of b's ancestors. The decision is persisted at once; its
   * blocks are executed within the step's `budget`, after those of earlier decisions, and the rest
   * by `advance`.
   * @returns false when `decided` was already committed.
   * @throws {ConsensusError} `DOUBLE_COMMIT` when `decided` is not on the committed chain: two
   * three-chains decided conflicting blocks, which Yin et al.'s safety argument rules out (the
   * quorums behind them share a correct replica, locked on the first) unless more than f replicas
   * are faulty or the core is broken.
   */
  commit(decided: TreeNode, certificate: QuorumCert | undefined): boolean {
    const committed = this.committed;
    if (decided.block.height <= committed.block.height) {
      invariant(
        this.#tree.extends(committed, decided),
        `block ${decided.key.slice(0, 16)} decided at height ${decided.block.height} is not on the committed chain (committed height ${committed.block.height})`,
        'DOUBLE_COMMIT',
      );
      return false;
    }
    const chain = this.#tree.chain(decided, committed.block.height);
    invariant(
      chain.length > 0 && sameBytes(chain[chain.length - 1]!.block.parent, committed.hash),
      `block ${decided.key.slice(0, 16)} at height ${decided.block.height} does not extend the committed block at height ${committed.block.height}`,
      'DOUBLE_COMMIT',
    );
    this.#decisions.push({ node: decided, certificate });
    // Decided commands no longer wait to be proposed, executed or not.
    for (const node of chain) for (const cmd of node.block.commands) this.#pending.delete(commandKey(cmd));
    this.#out.persist(DURABLE.committed, committedRecord(decided, certificate));
    this.#prune();
    this.advance();
    return true;
  }

  /** Executes decided blocks, lowest first, until they are done or the step's `budget` is spent. */
  advance(): void {
    for (let decision = this.#decisions[0]; decision !== undefined; decision = this.#decisions[0]) {
      for (const node of this.#tree.chain(decision.node, this.#executed.block.height).reverse()) {
        if (this.budget <= 0) return;
        const running = (this.#running ??= { node, run: new ExecutionRun(this.#state, node.block.commands, node.block.height, node.block.timestamp, this.#hash) });
        invariant(running.node === node, `block at height ${running.node.block.height} paused part-way, block at height ${node.block.height} executed`);
        this.budget -= running.run.advance(this.budget);
        if (!running.run.done) return;
        this.#running = undefined;
        this.#report(node, running.run, decision.certificate);
      }
      this.#decisions.shift();
      if (this.#decisions.length === 0) this.#settle();
    }
  }

  /**
   * Installs a snapshot f+1 peers agreed on: the state jumps to it and its block becomes the
   * root, keeping only the held blocks above it. The snapshot and the committed record are
   * written before the dropped blocks are erased, so a crash between the writes finds the new
   * root with blocks to spare rather than the old root with its chain gone.
   */
  install(block: Block, hash: Digest, state: Uint8Array): void {
    // A step begins by executing what waits (core.ts), and no decision precedes an install in a step.
    invariant(!this.paused, `a snapshot installed while decided blocks up to height ${this.committed.block.height} wait to be executed`);
    this.#state.restore(state);
    this.#hash = this.#state.hash();
    const dropped = this.#tree.replaceRoot(block, hash);
    this.#executed = this.#tree.root;
    this.#store(block, state);
    this.#out.persist(DURABLE.committed, committedRecord(this.#executed, undefined));
    for (const key of dropped) this.#out.erase(blockKey(key));
    this.#out.applied({ kind: 'snapshot', position: block.height, stateHash: this.#hash });
    this.#settle();
  }

  /** Reports a block executed whole, answers its clients and snapshots when due. */
  #report(node: TreeNode, run: ExecutionRun, certificate: QuorumCert | undefined): void {
    const block = node.block;
    block.commands.forEach((cmd, i) => {
      const { response, fresh } = run.executions[i] as Execution;
      // A repeat or an outdated command changes nothing and is not its client's answer: its
      // client was (or will be, on retry) answered from the table, at the position it executed.
      if (fresh) this.#out.reply({ client: cmd.client, timestamp: cmd.timestamp, position: block.height, view: block.view, response });
    });
    this.#out.applied({
      kind: 'entry',
      position: block.height,
      view: block.view,
      commands: block.commands,
      responses: run.executions.map((e) => e.response),
      failed: run.failed,
      stateHashBefore: run.stateHashBefore,
      stateHash: (this.#hash = this.#state.hash()),
      timestamp: block.timestamp,
      ...(certificate === undefined ? {} : { certificate }),
    });
    this.#executed = node;
    if (block.height % this.#options.snapshotInterval === 0) {
      this.#store(block);
      this.#tree.reroot(node);
      this.#prune();
    }
  }

  /** Stores the state as it is, right after `block`, with the block (`snapshot`: its bytes, when known). */
  #store(block: Block, snapshot?: Uint8Array): void {
    this.#archive.store(block.height, this.#state.freeze(), { key: DURABLE.stateBlock, value: { block } }, snapshot);
    this.#archivedAt = block;
  }

  /** Drops forks of the decided chain and what is below the root, in the tree and on disk. */
  #prune(): void {
    for (const key of this.#tree.prune(this.committed)) this.#out.erase(blockKey(key));
  }

  /** Drops the pending requests the committed state has executed (or superseded). */
  #settle(): void {
    for (const [key, cmd] of this.#pending) if (this.#state.executed(cmd)) this.#pending.delete(key);
  }
}

function committedRecord(node: TreeNode, certificate: QuorumCert | undefined): CommittedRecord {
  return certificate === undefined ? { height: node.block.height, hash: node.hash } : { height: node.block.height, hash: node.hash, certificate };
}
