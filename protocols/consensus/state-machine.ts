/**
 * The replicated state machine and the exactly-once layer in front of it.
 */
import { t } from '../../schema/schema.js';
import { decodeStored, encode, type Digest } from './codec.js';
import type { Command } from './command.js';

/**
 * A deterministic state machine replicated by consensus. Every replica applies the same commands
 * in the same order, so `apply` must depend only on the state and the command (no clock, no
 * randomness, no I/O), and `hash` only on the state.
 */
export interface ConsensusState {
  /**
   * Applies one command, executed at log position `position` (the same at every replica), and
   * returns its response.
   */
  apply(command: Command, position: number): Uint8Array;
  /** A 32-byte digest of the whole state. Equal states hash equal on every replica. */
  hash(): Digest;
  /** The whole state as bytes, for checkpoints, snapshots and state transfer. */
  snapshot(): Uint8Array;
  /** Replaces the state with one produced by `snapshot()`. Throws on bytes it did not produce. */
  restore(snapshot: Uint8Array): void;
}

/** What a replica answers a command with. */
export interface Execution {
  readonly response: Uint8Array;
  /** False when the command was a retry of one already executed (its first response is returned). */
  readonly fresh: boolean;
}

const tableSchema = t.object({
  state: t.bytes(),
  clients: t.array(t.object({ client: t.string({ maxLength: 128 }), timestamp: t.uint(), response: t.bytes() })),
});

/**
 * A state machine behind a client table: each client's last timestamp and response
 * (Castro & Liskov §4.1, Raft thesis §6.3). A command whose timestamp is not newer than its
 * client's last is not applied again; an equal timestamp is answered with the recorded response.
 * Snapshots include the table, so a replica restored from one de-duplicates like its peers.
 */
export class ReplicatedState {
  readonly #machine: ConsensusState;
  readonly #clients = new Map<string, { timestamp: number; response: Uint8Array }>();

  constructor(machine: ConsensusState) {
    this.#machine = machine;
  }

  /** Executes a committed command, ordered at log position `position`, at most once per (client, timestamp). */
  execute(cmd: Command, position: number): Execution {
    const last = this.#clients.get(cmd.client);
    if (last !== undefined && cmd.timestamp <= last.timestamp) {
      return { response: cmd.timestamp === last.timestamp ? last.response : new Uint8Array(0), fresh: false };
    }
    const response = this.#machine.apply(cmd, position);
    this.#clients.set(cmd.client, { timestamp: cmd.timestamp, response });
    return { response, fresh: true };
  }

  /**
   * The recorded response when `cmd` is its client's last executed request, so a retry can be
   * answered without ordering it again (Castro & Liskov §4.1).
   */
  cached(cmd: Command): Uint8Array | undefined {
    const last = this.#clients.get(cmd.client);
    return last !== undefined && last.timestamp === cmd.timestamp ? last.response : undefined;
  }

  /** True when (client, timestamp) has been executed, or superseded by a newer request. */
  executed(cmd: Command): boolean {
    const last = this.#clients.get(cmd.client);
    return last !== undefined && cmd.timestamp <= last.timestamp;
  }

  /** The state machine's hash. */
  hash(): Digest {
    return this.#machine.hash();
  }

  /** State machine and client table as one snapshot. */
  snapshot(): Uint8Array {
    const clients = [...this.#clients].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([client, v]) => ({ client, timestamp: v.timestamp, response: v.response }));
    return encode({ state: this.#machine.snapshot(), clients });
  }

  /**
   * Restores state machine and client table from {@link snapshot}'s bytes.
   * @throws {ConsensusError} `CORRUPT_STATE` when the bytes are not such a snapshot.
   */
  restore(bytes: Uint8Array): void {
    const parsed = decodeStored(bytes, tableSchema, 'replicated-state snapshot');
    this.#machine.restore(parsed.state);
    this.#clients.clear();
    for (const c of parsed.clients) this.#clients.set(c.client, { timestamp: c.timestamp, response: c.response });
  }
}

/**
 * One log position's commands executed a few at a time, so that a core can pause between slices
 * of a large batch and let its host's event loop turn (DESIGN.md "Time budgets"; `resume` in
 * core.ts). Nothing else may execute on the state until the run is done.
 */
export class ExecutionRun {
  /** The log position the commands execute at. */
  readonly position: number;
  /** The state's hash before the first command. */
  readonly stateHashBefore: Digest;
  /** What each command executed so far answered, in order. */
  readonly executions: Execution[] = [];
  readonly #state: ReplicatedState;
  readonly #commands: readonly Command[];

  /** `stateHashBefore`: the state's hash, when the caller holds it already (a state machine's hash may cost a pass over the state). */
  constructor(state: ReplicatedState, commands: readonly Command[], position: number, stateHashBefore: Digest = state.hash()) {
    this.#state = state;
    this.#commands = commands;
    this.position = position;
    this.stateHashBefore = stateHashBefore;
  }

  /** True once every command has executed. */
  get done(): boolean {
    return this.executions.length === this.#commands.length;
  }

  /** Executes up to `budget` more commands (any number, or Infinity); returns how many it executed. */
  advance(budget: number): number {
    const end = Math.min(this.#commands.length, this.executions.length + budget);
    const start = this.executions.length;
    for (let i = start; i < end; i++) this.executions.push(this.#state.execute(this.#commands[i] as Command, this.position));
    return end - start;
  }
}
