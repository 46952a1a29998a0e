/**
 * Execution of committed entries (§5.3: "apply log[lastApplied] to state machine"): the
 * replicated state with its client table (thesis §6.3), the applied and reply outputs the host
 * records, and the answer to a client retrying a command already executed.
 */
import type { Digest } from '../consensus/codec.js';
import type { Command } from '../consensus/command.js';
import type { Outputs } from '../consensus/core.js';
import { ConsensusError, invariant, type ConsensusErrorCode } from '../consensus/errors.js';
import { ExecutionRun, ReplicatedState, type ConsensusState } from '../consensus/state-machine.js';
import type { RaftEntry, RaftMessage, SnapshotRecord } from './messages.js';

/** Where a client's last executed command was ordered. */
interface Answer {
  readonly timestamp: number;
  readonly position: number;
  readonly view: number;
}

/** An entry executed part-way: the rest of its commands run when it is applied again. */
interface Running {
  readonly index: number;
  readonly run: ExecutionRun;
  readonly answer: boolean;
}

/** Applies committed entries in index order and reports each execution. */
export class Executor {
  readonly #state: ReplicatedState;
  readonly #out: Outputs<RaftMessage>;
  readonly #answered = new Map<string, Answer>();
  #hash: Digest;
  #lastApplied = 0;
  #running: Running | undefined;
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

  /** True while an entry is executed part-way: the state holds some of its commands' effects, not all. */
  get midEntry(): boolean {
    return this.#running !== undefined;
  }

  /**
   * Executes at most `budget` commands of `entry`, which must be the next index (the one executed
   * part-way, if any); returns how many ran. Once its last command has run, one state hash is
   * taken, the entry is reported and `lastApplied` reaches `index`. Each command's client gets its
   * response when `answer` is set; the core leaves it unset for entries an earlier incarnation may
   * already have answered.
   */
  apply(index: number, entry: RaftEntry, answer: boolean, budget = Number.POSITIVE_INFINITY): number {
    invariant(index === this.#lastApplied + 1, `applying ${index} after ${this.#lastApplied}`);
    const commands = entry.type === 'commands' ? entry.commands : [];
    const running = (this.#running ??= { index, run: new ExecutionRun(this.#state, commands, index, this.#hash), answer });
    invariant(running.index === index, `entry ${running.index} paused part-way, entry ${index} applied`);
    const ran = running.run.advance(budget);
    if (!running.run.done) return ran;
    this.#running = undefined;
    const { executions, stateHashBefore } = running.run;
    executions.forEach(({ response, fresh }, i) => {
      const command = commands[i] as Command;
      if (fresh) this.#answered.set(command.client, { timestamp: command.timestamp, position: index, view: entry.term });
      if (running.answer) this.#out.reply({ client: command.client, timestamp: command.timestamp, position: index, view: entry.term, response });
    });
    if (commands.length > 0) this.#hash = this.#state.hash();
    this.#lastApplied = index;
    this.#out.applied({ kind: 'entry', position: index, view: entry.term, commands, responses: executions.map((e) => e.response), stateHashBefore, stateHash: this.#hash, timestamp: entry.timestamp });
    return ran;
  }

  /**
   * Replaces the state with `snapshot`'s (§7) and reports the jump.
   * @throws {ConsensusError} `code` when the state machine cannot restore the snapshot's bytes;
   * the state machine may then be half restored, so the server must not go on.
   */
  install(snapshot: SnapshotRecord, code: ConsensusErrorCode): void {
    invariant(this.#running === undefined, `a snapshot installed while entry ${this.#running?.index} is executed part-way`);
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
    invariant(this.#running === undefined, `a snapshot taken while entry ${this.#running?.index} is executed part-way`);
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
