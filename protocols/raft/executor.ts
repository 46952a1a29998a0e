/**
 * Execution of committed entries (§5.3: "apply log[lastApplied] to state machine"): the
 * replicated state with its client table (thesis §6.3) and its snapshots (§7, stored by
 * consensus/state-archive.ts), the applied and reply outputs the host records, and the answer to
 * a client retrying a command already executed.
 */
import type { Digest } from '../consensus/codec.js';
import type { Command } from '../consensus/command.js';
import type { Outputs } from '../consensus/core.js';
import { ConsensusError, invariant, type ConsensusErrorCode } from '../consensus/errors.js';
import { StateArchive, type ArchiveRecords } from '../consensus/state-archive.js';
import { ExecutionRun, ReplicatedState, type ConsensusState } from '../consensus/state-machine.js';
import { SNAPSHOT_KEY } from './durable.js';
import type { RaftEntry, RaftMessage, SnapshotMeta } from './messages.js';

/** An entry executed part-way: the rest of its commands run when it is applied again. */
interface Running {
  readonly index: number;
  readonly run: ExecutionRun;
  readonly answer: boolean;
}

/** Applies committed entries in index order and reports each execution. */
export class Executor {
  readonly #state: ReplicatedState;
  /** The state as of the latest snapshot, on disk and sent to followers behind it. */
  readonly #archive: StateArchive;
  readonly #out: Outputs<RaftMessage>;
  #hash: Digest;
  #lastApplied = 0;
  #running: Running | undefined;

  /**
   * Starts from the empty state, or from the state stored at `snapshot`'s index (reported as a
   * jump to it); `archive` holds the state's records (durable.ts checked that they lead to that
   * index, and to none without a snapshot).
   * @throws {ConsensusError} `CORRUPT_STATE` when the stored state does not restore to its digests.
   */
  constructor(machine: ConsensusState, out: Outputs<RaftMessage>, snapshot: SnapshotMeta | undefined, archive: ArchiveRecords) {
    this.#state = new ReplicatedState(machine);
    this.#archive = new StateArchive(out);
    this.#out = out;
    this.#archive.recover(this.#state, archive);
    this.#hash = this.#state.hash();
    if (snapshot !== undefined) this.#jumpTo(snapshot);
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
    const running = (this.#running ??= { index, run: new ExecutionRun(this.#state, commands, index, entry.timestamp, this.#hash), answer });
    invariant(running.index === index, `entry ${running.index} paused part-way, entry ${index} applied`);
    const ran = running.run.advance(budget);
    if (!running.run.done) return ran;
    this.#running = undefined;
    const { executions, stateHashBefore, failed } = running.run;
    executions.forEach(({ response, fresh }, i) => {
      const command = commands[i] as Command;
      // A repeat or an outdated command is not its client's answer (as in PBFT and HotStuff).
      if (fresh && running.answer) this.#out.reply({ client: command.client, timestamp: command.timestamp, position: index, view: entry.term, response });
    });
    if (commands.length > 0) this.#hash = this.#state.hash();
    this.#lastApplied = index;
    this.#out.applied({ kind: 'entry', position: index, view: entry.term, commands, responses: executions.map((e) => e.response), failed, stateHashBefore, stateHash: this.#hash, timestamp: entry.timestamp });
    return ran;
  }

  /**
   * Replaces the state with `snapshot`'s (§7) and reports the jump.
   * @throws {ConsensusError} `code` when the state machine cannot restore the snapshot's bytes;
   * the state machine may then be half restored, so the server must not go on.
   */
  install(snapshot: SnapshotMeta, data: Uint8Array, code: ConsensusErrorCode): void {
    invariant(this.#running === undefined, `a snapshot installed while entry ${this.#running?.index} is executed part-way`);
    try {
      this.#state.restore(data);
    } catch (cause) {
      throw new ConsensusError(code, `raft snapshot at ${snapshot.index} cannot be restored: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    this.#hash = this.#state.hash();
    this.#jumpTo(snapshot);
  }

  #jumpTo(snapshot: SnapshotMeta): void {
    this.#lastApplied = snapshot.index;
    this.#out.applied({ kind: 'snapshot', position: snapshot.index, stateHash: this.#hash });
  }

  /**
   * Stores the state as it is, the state at `snapshot.index`, with `snapshot` as the record that
   * says what it covers (`data`: its bytes, when installed from a leader). `snapshot` is stored as
   * it is: it must hold nothing else.
   */
  store(snapshot: SnapshotMeta, data?: Uint8Array): void {
    invariant(this.#running === undefined, `a snapshot taken while entry ${this.#running?.index} is executed part-way`);
    invariant(snapshot.index === this.#lastApplied, `a snapshot at ${snapshot.index} of the state at ${this.#lastApplied}`);
    this.#archive.store(snapshot.index, this.#state.freeze(), { key: SNAPSHOT_KEY, value: snapshot }, data);
  }

  /**
   * The bytes of the state last stored, encoded when first asked for: what a follower behind the
   * snapshot is sent; undefined when they are more than a follower takes.
   */
  storedState(): Uint8Array | undefined {
    invariant(this.#archive.view !== undefined, 'a snapshot sent before any was stored');
    return this.#archive.snapshot();
  }

  /**
   * Answers a retry of its client's last executed command from the client table, with where it
   * executed and the server's current `term`, and returns true; false when `command` has not been
   * executed.
   */
  answer(command: Command, term: number): boolean {
    const recorded = this.#state.cached(command);
    if (recorded === undefined) return false;
    this.#out.reply({ client: command.client, timestamp: command.timestamp, view: term, ...recorded });
    return true;
  }

  /** True when `command` was executed or superseded by a newer one of its client. */
  executed(command: Command): boolean {
    return this.#state.executed(command);
  }
}
