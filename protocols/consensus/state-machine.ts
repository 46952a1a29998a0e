/**
 * The replicated state machine and the exactly-once layer in front of it.
 */
import { t, type Infer } from '../../schema/schema.js';
import { decode, decodeStored, encode, hashBytes, isWellFormed, sameBytes, type Digest } from './codec.js';
import type { Command } from './command.js';
import { ConsensusError } from './errors.js';
import { MerkleMap, type FrozenMap, type MapKind } from './merkle-kv-map.js';

/**
 * The largest replicated state, in bytes: the whole state as a replica stores it and sends it to a
 * peer that is behind (the machine's snapshot with the client table). Every reader of a state, a
 * replica's own store as well as a peer's message, takes states up to this size, and a core
 * whose state outgrows it throws `STATE_TOO_LARGE` when it would store it whole, rather than write
 * a state it could not read back or send one no peer would take (a replica then halts).
 */
export const MAX_STATE_BYTES = 64 << 20;

/**
 * A deterministic state machine replicated by consensus. Every replica applies the same commands
 * in the same order, so `apply` must depend only on the state, the command and what the protocol
 * agreed for it (its log position and time; no clock of its own, no randomness, no I/O), and
 * `hash` only on the state.
 */
export interface ConsensusState {
  /**
   * Applies one command, executed at log position `position` at the time `timestamp` the protocol
   * agreed for that position (ms since the epoch; both the same at every replica), and returns its
   * response. A command it cannot carry out should be answered with a response that says so. One
   * that throws is answered with an empty response and recorded as executed (see
   * {@link ReplicatedState.execute}), with the state as the throw left it: throw before changing
   * anything.
   */
  apply(command: Command, position: number, timestamp: number): Uint8Array;
  /**
   * A 32-byte digest of the whole state. Equal states hash equal on every replica, and different
   * states differently but with negligible probability (a cryptographic hash): receipts and PBFT
   * checkpoints certify it, and a snapshot from a peer is accepted only if it restores to it.
   */
  hash(): Digest;
  /** The whole state as bytes, for checkpoints, snapshots and state transfer (at most {@link MAX_STATE_BYTES} with the client table). */
  snapshot(): Uint8Array;
  /** Replaces the state with one produced by `snapshot()`. Throws on bytes it did not produce. */
  restore(snapshot: Uint8Array): void;
  /**
   * Optional: the state as it is now, unchanged by later `apply`s, in time independent of the
   * state's size. Without it a checkpoint serializes the whole state when it is taken, and every
   * stable checkpoint is stored whole.
   */
  freeze?(): StateView;
  /**
   * Required with `freeze`: applies bytes produced by {@link StateView.changesSince}, turning a
   * state equal to the older view into one equal to the newer. Throws on bytes it did not produce.
   */
  applyChanges?(changes: Uint8Array): void;
}

/** A {@link ConsensusState} at one moment ({@link ConsensusState.freeze}). */
export interface StateView {
  /** What `hash()` returned at that moment. */
  readonly hash: Digest;
  /** What `snapshot()` would have returned at that moment. */
  snapshot(): Uint8Array;
  /**
   * What `applyChanges` needs to turn a state equal to `older` into this one, in time and size
   * proportional to what changed; undefined when this view cannot tell (`older` is not an earlier
   * view of the same state, or the state was restored in between), and the whole snapshot must do.
   */
  changesSince(older: StateView): Uint8Array | undefined;
}

/** `machine`'s {@link StateView}: its own if it can freeze, else one holding its snapshot. */
export function freezeState(machine: ConsensusState): StateView {
  if (machine.freeze !== undefined) return machine.freeze();
  const hash = machine.hash();
  const snapshot = machine.snapshot();
  return { hash, snapshot: () => snapshot, changesSince: () => undefined };
}

/**
 * Applies `changes` to `machine`.
 * @throws {ConsensusError} `CORRUPT_STATE` when the machine cannot apply changes (it has no
 * `applyChanges`, so it made none) or rejects the bytes.
 */
export function applyStateChanges(machine: ConsensusState, changes: Uint8Array, what: string): void {
  if (machine.applyChanges === undefined) throw new ConsensusError('CORRUPT_STATE', `${what}: the state machine applies no changes`);
  try {
    machine.applyChanges(changes);
  } catch (cause) {
    throw cause instanceof ConsensusError ? cause : new ConsensusError('CORRUPT_STATE', `${what} cannot be applied`, { cause });
  }
}

/** What a replica answers a command with. */
export interface Execution {
  readonly response: Uint8Array;
  /** False when the command was a retry of one already executed (its first response is returned). */
  readonly fresh: boolean;
  /** True when the state machine threw on the command, which was answered with an empty response. */
  readonly failed: boolean;
}

/**
 * A client's entry in the client table: its last executed timestamp, the response to it and the
 * log position it executed at, so that a retry is answered with where the command ran, alike at
 * every replica, whatever each has executed since.
 */
type ClientEntry = readonly [timestamp: number, response: Uint8Array, position: number];

/** What the client table recorded of a command: its response and the log position it executed at. */
export interface RecordedExecution {
  readonly response: Uint8Array;
  readonly position: number;
}

/**
 * The client table is a Merkle map like the key-value machine's (merkle-kv-map.ts), so that
 * freezing it, hashing it and listing what changed cost what was written since, not the number
 * of clients: a cluster serving thousands of sessions froze, sorted and hashed them all at every
 * checkpoint, and stored them all with every state's changes.
 */
const CLIENT_TABLE: MapKind<ClientEntry> = {
  domain: 'knhk/client-table/v2',
  name: 'client table',
  isValue: (value): value is ClientEntry =>
    Array.isArray(value) &&
    value.length === 3 &&
    Number.isSafeInteger(value[0]) &&
    (value[0] as number) >= 0 &&
    value[1] instanceof Uint8Array &&
    Number.isSafeInteger(value[2]) &&
    (value[2] as number) >= 1,
  own: ([timestamp, response, position]) => [timestamp, new Uint8Array(response), position],
};

const pairs = t.array(t.array(t.unknown(), { maxLength: 2 }), { maxLength: Number.MAX_SAFE_INTEGER });
const stateBytes = t.bytes({ maxLength: MAX_STATE_BYTES });
const snapshotSchema = t.object({ state: stateBytes, clients: pairs });
const changesSchema = t.object({ state: stateBytes, clients: t.array(t.object({ slot: t.uint(), entries: pairs }), { maxLength: 1 << 16 }) });

/**
 * A state machine behind a client table: each client's last timestamp and response
 * (Castro & Liskov §4.1, Raft thesis §6.3). A command whose timestamp is not newer than its
 * client's last is not applied again; an equal timestamp is answered with the recorded response.
 * Snapshots include the table, so a replica restored from one de-duplicates like its peers.
 */
export class ReplicatedState {
  readonly #machine: ConsensusState;
  readonly #clients = new MerkleMap(CLIENT_TABLE);

  constructor(machine: ConsensusState) {
    this.#machine = machine;
  }

  /**
   * Executes a committed command, ordered at log position `position` at the agreed time
   * `timestamp`, at most once per (client, client timestamp). A client id that is not well-formed
   * text (a lone surrogate, which no decoder produces) cannot be recorded, so its command is
   * answered empty and not executed, alike at every replica. A command the machine throws on is
   * answered empty and recorded as executed.
   */
  execute(cmd: Command, position: number, timestamp: number): Execution {
    if (!isWellFormed(cmd.client)) return { response: new Uint8Array(0), fresh: false, failed: false };
    const last = this.#clients.get(cmd.client);
    if (last !== undefined && cmd.timestamp <= last[0]) {
      return { response: cmd.timestamp === last[0] ? last[1] : new Uint8Array(0), fresh: false, failed: false };
    }
    const execution = applied(this.#machine, cmd, position, timestamp);
    this.#clients.set(cmd.client, [cmd.timestamp, execution.response, position]);
    return execution;
  }

  /**
   * The recorded response and position when `cmd` is its client's last executed request, so a
   * retry can be answered without ordering it again (Castro & Liskov §4.1).
   */
  cached(cmd: Command): RecordedExecution | undefined {
    const last = this.#clients.get(cmd.client);
    return last !== undefined && last[0] === cmd.timestamp ? { response: last[1], position: last[2] } : undefined;
  }

  /** True when (client, timestamp) has been executed, or superseded by a newer request. */
  executed(cmd: Command): boolean {
    const last = this.#clients.get(cmd.client);
    return last !== undefined && cmd.timestamp <= last[0];
  }

  /** The state machine's hash. */
  hash(): Digest {
    return this.#machine.hash();
  }

  /** State machine and client table as one snapshot. */
  snapshot(): Uint8Array {
    return encode({ state: this.#machine.snapshot(), clients: this.#clients.entries() });
  }

  /** State machine and client table as they are now, unchanged by later executions. */
  freeze(): ReplicatedView {
    return new ReplicatedView(freezeState(this.#machine), this.#clients.freeze());
  }

  /**
   * Applies what {@link ReplicatedView.changesSince} produced, to a state equal to the older view.
   * @throws {ConsensusError} `CORRUPT_STATE` when the bytes are not such changes.
   */
  applyChanges(bytes: Uint8Array): void {
    const parsed = decodeStored(bytes, changesSchema, 'replicated-state changes');
    applyStateChanges(this.#machine, parsed.state, 'replicated-state changes');
    storedTable('replicated-state changes', () => this.#clients.replaceSlots(parsed.clients));
  }

  /**
   * Restores `snapshot` if its state has digest `digest` ({@link ReplicatedView.digest}) and
   * returns the view of it; otherwise, bytes that do not parse included, leaves the state as it
   * was and returns undefined. For a snapshot from a peer, which may lie: bytes that do not parse
   * cost no more than parsing, but any others a restore and, if they lie, a restore of the state
   * as it was, so a caller should take a peer's lie once (PBFT's core then distrusts the peer).
   * Whatever the state machine's `restore` throws counts as a lie: it throws on bytes it did not
   * produce, and a peer must not be able to crash a replica with them.
   */
  adopt(snapshot: Uint8Array, digest: Digest): ReplicatedView | undefined {
    let parsed: Infer<typeof snapshotSchema>;
    try {
      parsed = decodeStored(snapshot, snapshotSchema, 'replicated-state snapshot');
    } catch {
      return undefined;
    }
    const before = this.freeze();
    try {
      this.#install(parsed);
      const after = this.freeze();
      if (sameBytes(after.digest, digest)) return after;
    } catch {
      // Bytes that do not restore are a lie like a wrong digest.
    }
    // Its own bytes, not held to the bound a peer's are: the state may have grown past it since it was stored.
    this.#install(decode(before.snapshot()) as Infer<typeof snapshotSchema>);
    return undefined;
  }

  #install(parsed: Infer<typeof snapshotSchema>): void {
    this.#machine.restore(parsed.state);
    storedTable('replicated-state snapshot', () => this.#clients.restore(parsed.clients));
  }

  /**
   * Restores state machine and client table from {@link snapshot}'s bytes.
   * @throws {ConsensusError} `CORRUPT_STATE` when the bytes are not such a snapshot.
   */
  restore(bytes: Uint8Array): void {
    this.#install(decodeStored(bytes, snapshotSchema, 'replicated-state snapshot'));
  }
}

/**
 * The execution of `cmd` on `machine`: its response, or an empty one when it throws. Every
 * replica executes the command alike, so it throws alike everywhere; let through, the throw would
 * stop every replica, and again at each restart as they replay their logs: one command would end
 * the cluster.
 */
function applied(machine: ConsensusState, cmd: Command, position: number, timestamp: number): Execution {
  try {
    return { response: machine.apply(cmd, position, timestamp), fresh: true, failed: false };
  } catch {
    return { response: new Uint8Array(0), fresh: true, failed: true };
  }
}

/**
 * Runs `write` on the client table with bytes from a snapshot or changes: an entry the table
 * refuses means the bytes are not what a replica stored or sent, `CORRUPT_STATE` like any other.
 */
function storedTable(what: string, write: () => void): void {
  try {
    write();
  } catch (cause) {
    throw cause instanceof ConsensusError && cause.code === 'CORRUPT_STATE' ? cause : new ConsensusError('CORRUPT_STATE', `${what}: the client table cannot be restored`, { cause });
  }
}

const DIGEST_DOMAIN = 'knhk/replicated-state/v2';

/**
 * A {@link ReplicatedState} at one moment: the state machine's view and a copy of the client table.
 */
export class ReplicatedView {
  /** The state machine's hash (what receipts record). */
  readonly stateHash: Digest;
  /**
   * Digest of state machine and client table together: what a checkpoint certifies. Equal for
   * equal states, so a snapshot is checked by restoring it and comparing digests.
   */
  readonly digest: Digest;
  readonly #machine: StateView;
  readonly #clients: FrozenMap<ClientEntry>;

  /** @internal Made by {@link ReplicatedState.freeze}. */
  constructor(machine: StateView, clients: FrozenMap<ClientEntry>) {
    this.#machine = machine;
    this.#clients = clients;
    this.stateHash = machine.hash;
    this.digest = hashBytes(encode([DIGEST_DOMAIN, machine.hash, clients.root]));
  }

  /** What {@link ReplicatedState.snapshot} returned at that moment. */
  snapshot(): Uint8Array {
    return encode({ state: this.#machine.snapshot(), clients: this.#clients.entries() });
  }

  /**
   * What {@link ReplicatedState.applyChanges} needs to turn a state equal to `older` into this
   * one: the state machine's changes and the client table's slots written since. Undefined when
   * either cannot tell ({@link StateView.changesSince}).
   */
  changesSince(older: ReplicatedView): Uint8Array | undefined {
    const state = this.#machine.changesSince(older.#machine);
    const clients = this.#clients.changesSince(older.#clients);
    return state === undefined || clients === undefined ? undefined : encode({ state, clients });
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
  /** The time the protocol agreed for the position, ms since the epoch. */
  readonly timestamp: number;
  /** The state's hash before the first command. */
  readonly stateHashBefore: Digest;
  /** What each command executed so far answered, in order. */
  readonly executions: Execution[] = [];
  readonly #state: ReplicatedState;
  readonly #commands: readonly Command[];

  /** `stateHashBefore`: the state's hash, when the caller holds it already (a state machine's hash may cost a pass over the state). */
  constructor(state: ReplicatedState, commands: readonly Command[], position: number, timestamp: number, stateHashBefore: Digest = state.hash()) {
    this.#state = state;
    this.#commands = commands;
    this.position = position;
    this.timestamp = timestamp;
    this.stateHashBefore = stateHashBefore;
  }

  /** Commands executed so far that the state machine threw on. */
  get failed(): number {
    let failed = 0;
    for (const execution of this.executions) if (execution.failed) failed++;
    return failed;
  }

  /** True once every command has executed. */
  get done(): boolean {
    return this.executions.length === this.#commands.length;
  }

  /** Executes up to `budget` more commands (any number, or Infinity); returns how many it executed. */
  advance(budget: number): number {
    const end = Math.min(this.#commands.length, this.executions.length + budget);
    const start = this.executions.length;
    for (let i = start; i < end; i++) this.executions.push(this.#state.execute(this.#commands[i] as Command, this.position, this.timestamp));
    return end - start;
  }
}
