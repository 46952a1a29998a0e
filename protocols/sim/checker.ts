/**
 * The safety checker. It watches what correct replicas execute and answer, and what clients
 * accept, and stops the run at the first violation of state-machine replication's safety
 * property: two correct replicas executing different commands, or reaching different state
 * hashes, at one log position; a replica skipping a position; two leaders claiming one term or
 * view; a correct replica answering a command it has not executed, or naming another position
 * than the one the command executed at (a retry is answered from the client table, which records
 * it), or with another response than another correct replica; a client accepting a response no
 * correct replica gave.
 */
import { digestOf, hex, sameBytes, type Digest } from '../consensus/codec.js';
import type { Command } from '../consensus/command.js';
import type { NodeId } from '../consensus/config.js';
import type { Applied, Reply } from '../consensus/core.js';
import { ConsensusError } from '../consensus/errors.js';

/** A run broke safety. The seed and step replay it exactly. */
export class SafetyViolation extends ConsensusError {
  /** The run's seed. */
  readonly seed: number;
  /** Number of events the simulator had processed. */
  readonly step: number;
  /** What went wrong, in words. */
  readonly detail: string;
  /** The last events before the violation, oldest first. */
  readonly trace: readonly string[];
  constructor(seed: number, step: number, detail: string, trace: readonly string[]) {
    super('SAFETY_VIOLATION', `safety violation (seed ${seed}, step ${step}): ${detail}`);
    this.seed = seed;
    this.step = step;
    this.detail = detail;
    this.trace = trace;
  }
}

interface Decided {
  readonly commands: readonly Command[];
  readonly digest: string;
  /** What receipts record of the position besides its commands: replicas must agree on it too. */
  readonly view: number;
  readonly timestamp: number;
  readonly stateHash: Digest;
  readonly node: NodeId;
}

/** What the checker reports a violation with. */
export type Violate = (detail: string) => never;

/** Tracks correct replicas' executions; calls `violate` at the first inconsistency. */
export class SafetyChecker {
  readonly #violate: Violate;
  readonly #decided = new Map<number, Decided>();
  readonly #snapshotHashes = new Map<number, { hash: Digest; node: NodeId }>();
  readonly #executed = new Map<NodeId, number>();
  readonly #leaders = new Map<number, NodeId>();
  /** The first correct replica's response to each command, by client and timestamp. */
  readonly #answers = new Map<string, { readonly response: string; readonly node: NodeId; readonly position: number }>();
  /** Where each command was first decided, by client and timestamp. */
  readonly #decidedAt = new Map<string, number>();
  /** The position of each correct replica's last installed snapshot in its current incarnation. */
  readonly #snapshots = new Map<NodeId, number>();

  constructor(violate: Violate) {
    this.#violate = violate;
  }

  /** The highest position any correct replica executed. */
  get height(): number {
    let h = 0;
    for (const p of this.#executed.values()) h = Math.max(h, p);
    return h;
  }

  /** Highest position `node` executed in its current incarnation. */
  executed(node: NodeId): number {
    return this.#executed.get(node) ?? 0;
  }

  /** The commands decided at positions 1 … `upTo`, where known. */
  commands(upTo: number): Command[] {
    const out: Command[] = [];
    for (let p = 1; p <= upTo; p++) out.push(...(this.#decided.get(p)?.commands ?? []));
    return out;
  }

  /** A replica lost its volatile state: it must start again from position 1 or a snapshot. */
  restarted(node: NodeId): void {
    this.#executed.set(node, 0);
    this.#snapshots.delete(node);
  }

  /** Checks one execution step of a correct replica. */
  applied(node: NodeId, step: Applied): void {
    const last = this.executed(node);
    if (step.kind === 'snapshot') {
      this.#checkHash(node, step.position, step.stateHash);
      if (step.position < last) this.#violate(`node ${node} installed a snapshot at ${step.position} after executing up to ${last}`);
      this.#executed.set(node, step.position);
      this.#snapshots.set(node, step.position);
      return;
    }
    if (step.position !== last + 1) this.#violate(`node ${node} executed position ${step.position} after ${last}`);
    const digest = hex(digestOf(step.commands));
    const earlier = this.#decided.get(step.position);
    if (earlier === undefined) {
      this.#decided.set(step.position, { commands: step.commands, digest, view: step.view, timestamp: step.timestamp, stateHash: step.stateHash, node });
      for (const c of step.commands) {
        const command = `${c.client}/${c.timestamp}`;
        if (!this.#decidedAt.has(command)) this.#decidedAt.set(command, step.position);
      }
      // A snapshot installed at the position before anyone's execution of it was recorded.
      const snapshot = this.#snapshotHashes.get(step.position);
      if (snapshot !== undefined && !sameBytes(snapshot.hash, step.stateHash)) {
        this.#violate(`node ${node} has state hash ${hex(step.stateHash).slice(0, 16)} at position ${step.position}, node ${snapshot.node}'s snapshot ${hex(snapshot.hash).slice(0, 16)}`);
      }
    } else if (earlier.digest !== digest) {
      this.#violate(`nodes ${earlier.node} and ${node} executed different commands at position ${step.position} (${earlier.digest.slice(0, 16)} ≠ ${digest.slice(0, 16)})`);
    } else if (earlier.view !== step.view || earlier.timestamp !== step.timestamp) {
      // A receipt names the position's view and agreed time: replicas that disagree sign receipt logs that fork.
      this.#violate(`nodes ${earlier.node} and ${node} executed position ${step.position} in view ${earlier.view} at ${earlier.timestamp} and in view ${step.view} at ${step.timestamp}`);
    }
    this.#checkHash(node, step.position, step.stateHash);
    this.#executed.set(node, step.position);
  }

  /**
   * Checks a correct replica's answer to a command: the position it names is the one where correct
   * replicas executed the command (or, when none was seen executing it, one at or below the
   * snapshot the replica took it in), a position it reached, and it answers as other correct
   * replicas did.
   */
  replied(node: NodeId, reply: Reply): void {
    const command = `${reply.client}/${reply.timestamp}`;
    if (reply.position > this.executed(node)) this.#violate(`node ${node} answered ${command} at position ${reply.position}, having executed up to ${this.executed(node)}`);
    const at = this.#decidedAt.get(command);
    const snapshot = this.#snapshots.get(node);
    const where = at === undefined ? snapshot !== undefined && reply.position <= snapshot : reply.position === at;
    if (!where) this.#violate(`node ${node} answered ${command} at position ${reply.position}, ${at === undefined ? 'which no correct replica executed' : `executed at ${at}`}`);
    const response = hex(reply.response);
    const first = this.#answers.get(command);
    if (first === undefined) this.#answers.set(command, { response, node, position: reply.position });
    else if (first.response !== response) {
      this.#violate(`nodes ${first.node} and ${node} answered ${command} with different responses, ${first.response.slice(0, 16) || 'empty'} at position ${first.position} and ${response.slice(0, 16) || 'empty'} at ${reply.position}`);
    }
  }

  /** Checks a result a client accepted against the correct replicas' answers. */
  accepted(reply: Reply): void {
    const command = `${reply.client}/${reply.timestamp}`;
    if (this.#answers.get(command)?.response !== hex(reply.response)) {
      this.#violate(`a client accepted ${command} with response ${hex(reply.response).slice(0, 16)}, which no correct replica answered`);
    }
  }

  /** Checks that at most one correct replica claims leadership of each view or term. */
  leader(node: NodeId, view: number): void {
    const other = this.#leaders.get(view);
    if (other === undefined) this.#leaders.set(view, node);
    else if (other !== node) this.#violate(`nodes ${other} and ${node} both lead view/term ${view}`);
  }

  #checkHash(node: NodeId, position: number, hash: Digest): void {
    const known = this.#decided.get(position)?.stateHash ?? this.#snapshotHashes.get(position)?.hash;
    if (known === undefined) {
      this.#snapshotHashes.set(position, { hash, node });
      return;
    }
    if (!sameBytes(known, hash)) this.#violate(`node ${node} has state hash ${hex(hash).slice(0, 16)} at position ${position}, others ${hex(known).slice(0, 16)}`);
  }
}
