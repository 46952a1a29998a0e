/**
 * Execution of committed entries (§5.3: "apply log[lastApplied] to state machine"): the
 * replicated state with its client table (thesis §6.3), the applied and reply outputs the host
 * records, and the answer to a client retrying a command already executed.
 */
import type { Digest } from '../consensus/codec.js';
import type { Command } from '../consensus/command.js';
import type { Outputs } from '../consensus/core.js';
import { ConsensusError, invariant, type ConsensusErrorCode } from '../consensus/errors.js';
import { ReplicatedState, type ConsensusState } from '../consensus/state-machine.js';
import type { RaftEntry, RaftMessage, SnapshotRecord } from './messages.js';

/** Where a client's last executed command was ordered. */
interface Answer {
  readonly timestamp: number;
  readonly position: number;
  readonly view: number;
}

/** Applies committed entries in index order and reports each execution. */
export class Executor {
  readonly #state: ReplicatedState;
  readonly #out: Outputs<RaftMessage>;
  readonly #answered = new Map<string, Answer>();
  #hash: Digest;
  #lastApplied = 0;
  #base = { position: 0, view: 0 };

  /**
   * Starts from the empty state, or from the durable `snapshot` (reported as a jump to it).
   * @throws {ConsensusError} `CORRUPT_STATE` when the state machine cannot restore `snapshot`.
   */
  constructor(machine: ConsensusState, out: Outputs<RaftMessage>, snapshot?: SnapshotRecord) {
    this.#state = new ReplicatedState(machine);
    this.#out = out;
    this.#hash = this.#state.hash();
    if (snapshot !== undefined) this.install(snapshot, 'CORRUPT_STATE');
  }

  /** The highest index executed. */
  get lastApplied(): number {
    return this.#lastApplied;
  }

  /**
   * Executes `entry`, which must be the next index: its commands in order, then one state hash.
   * Each command's client gets its response when `answer` is set; the core leaves it unset for
   * entries an earlier incarnation may already have answered.
   */
  apply(index: number, entry: RaftEntry, answer: boolean): void {
    invariant(index === this.#lastApplied + 1, `applying ${index} after ${this.#lastApplied}`);
    const before = this.#hash;
    const commands: Command[] = [];
    const responses: Uint8Array[] = [];
    if (entry.type === 'commands') {
      for (const command of entry.commands) {
        const execution = this.#state.execute(command, index);
        if (execution.fresh) this.#answered.set(command.client, { timestamp: command.timestamp, position: index, view: entry.term });
        commands.push(command);
        responses.push(execution.response);
        if (answer) this.#out.reply({ client: command.client, timestamp: command.timestamp, position: index, view: entry.term, response: execution.response });
      }
      this.#hash = this.#state.hash();
    }
    this.#lastApplied = index;
    this.#out.applied({ kind: 'entry', position: index, view: entry.term, commands, responses, stateHashBefore: before, stateHash: this.#hash, timestamp: entry.timestamp });
  }

  /**
   * Replaces the state with `snapshot`'s (§7) and reports the jump.
   * @throws {ConsensusError} `code` when the state machine cannot restore the snapshot's bytes;
   * the state machine may then be half restored, so the server must not go on.
   */
  install(snapshot: SnapshotRecord, code: ConsensusErrorCode): void {
    try {
      this.#state.restore(snapshot.data);
    } catch (cause) {
      throw new ConsensusError(code, `raft snapshot at ${snapshot.index} cannot be restored: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    this.#hash = this.#state.hash();
    this.#lastApplied = snapshot.index;
    this.#answered.clear();
    this.#base = { position: snapshot.index, view: snapshot.term };
    this.#out.applied({ kind: 'snapshot', position: snapshot.index, stateHash: this.#hash });
  }

  /** The state and client table as snapshot bytes. */
  snapshot(): Uint8Array {
    return this.#state.snapshot();
  }

  /**
   * Answers a retry of its client's last executed command from the client table and returns
   * true; false when `command` has not been executed. A command executed before the snapshot this
   * server started from is answered with the snapshot's position, the latest it can vouch for.
   */
  answer(command: Command): boolean {
    const response = this.#state.cached(command);
    if (response === undefined) return false;
    const answer = this.#answered.get(command.client);
    const at = answer !== undefined && answer.timestamp === command.timestamp ? answer : this.#base;
    this.#out.reply({ client: command.client, timestamp: command.timestamp, position: at.position, view: at.view, response });
    return true;
  }

  /** True when `command` was executed or superseded by a newer one of its client. */
  executed(command: Command): boolean {
    return this.#state.executed(command);
  }
}
