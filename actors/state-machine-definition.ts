/**
 * The state machine a cluster replicates. Each replica makes its own, in its own thread, and a
 * closure cannot cross into a thread: so a state machine is named the way a behavior is
 * (runtime/behavior.ts), by the module that exports its definition and the name of the export,
 * and made there by the definition's `create` from arguments that cross by structured clone.
 */
import { ConfigError } from '../runtime/errors.js';
import type { Schema } from '../schema/schema.js';
import { KvStateMachine } from '../protocols/consensus/kv.js';
import type { ConsensusState } from '../protocols/consensus/state-machine.js';

const STATE_MACHINE = Symbol.for('knhk.state-machine');

/** What {@link defineStateMachine} takes. */
export interface StateMachineDefinition<Args = undefined> {
  /**
   * What the machine is, recorded in every replica's store: a replica started with a machine of
   * another name refuses its store (`STORAGE_MISMATCH`), where it would misread the snapshots.
   * Give a new name when the machine's snapshots or commands change meaning. The store does not
   * record the arguments: reopen a data directory with the arguments it was written with, since
   * replaying its log with others could answer its commands otherwise than they were answered.
   */
  readonly name: string;
  /** URL of the module that exports the definition (`import.meta.url`). */
  readonly module: string;
  /** The name the definition is exported under. */
  readonly export: string;
  /** Schema of `create`'s arguments, checked as the cluster is spawned. */
  readonly args?: Schema<Args>;
  /**
   * Makes one replica's machine, empty. The machine must be deterministic (see
   * {@link ConsensusState}), and `apply` should answer a command it cannot carry out with a
   * response that says so: one that throws is answered with an empty response, with the state as
   * the throw left it.
   */
  create(args: Args): ConsensusState;
}

/** A defined state machine: give it to `spawnCluster` as `stateMachine`. */
export interface StateMachine<Args = undefined> extends StateMachineDefinition<Args> {
  readonly [STATE_MACHINE]: true;
}

/**
 * Defines a state machine. Export the result under `definition.export` from
 * `definition.module`, so that replicas' threads can load it:
 *
 * ```ts
 * export const Ledger = defineStateMachine({
 *   name: 'example/ledger/v1',
 *   module: import.meta.url,
 *   export: 'Ledger',
 *   args: t.object({ accounts: t.uint() }),
 *   create: ({ accounts }) => new LedgerMachine(accounts),
 * });
 * ```
 */
export function defineStateMachine<Args = undefined>(definition: StateMachineDefinition<Args>): StateMachine<Args> {
  return Object.freeze({ ...definition, [STATE_MACHINE]: true as const });
}

/** True if `value` was made by {@link defineStateMachine}. */
export function isStateMachine(value: unknown): value is StateMachine<unknown> {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[STATE_MACHINE] === true;
}

/** The built-in key-value machine (`KvStateMachine`), which a cluster replicates unless given another. */
export const KeyValue = defineStateMachine({ name: 'knhk/kv', module: import.meta.url, export: 'KeyValue', create: () => new KvStateMachine() });

/** What a replica is told of its state machine. */
export interface StateMachineRef {
  /** The definition's `name`, which the replica's store records. */
  readonly name: string;
  /** URL of the module that exports the definition. */
  readonly module: string;
  /** The name the definition is exported under. */
  readonly export: string;
  /** `create`'s arguments, as the definition's schema checked them. */
  readonly args: unknown;
}

/**
 * Checks a cluster's choice of state machine in the calling thread, before anything of the
 * cluster starts: that it was defined, that its module exports it under its `export` (where the
 * replicas' threads will look for it), and that its arguments fit its schema.
 * @throws {ConfigError} for a value {@link defineStateMachine} did not make, one its module does
 * not export as it says, arguments its schema refuses, or arguments for a machine without one.
 */
export async function stateMachineRef(machine: StateMachine<unknown>, args: unknown): Promise<StateMachineRef> {
  if (!isStateMachine(machine)) throw new ConfigError('stateMachine must be made by defineStateMachine');
  let exported: unknown;
  try {
    exported = ((await import(machine.module)) as Record<string, unknown>)[machine.export];
  } catch (error) {
    throw new ConfigError(`the module of the state machine ${machine.name}, ${machine.module}, does not load`, { cause: error });
  }
  if (exported !== machine) throw new ConfigError(`${machine.module} does not export the state machine ${machine.name} as ${machine.export}`);
  if (machine.args === undefined) {
    if (args !== undefined) throw new ConfigError(`the state machine ${machine.name} takes no stateMachineArgs`);
    return { name: machine.name, module: machine.module, export: machine.export, args };
  }
  try {
    return { name: machine.name, module: machine.module, export: machine.export, args: machine.args.parse(args, 'stateMachineArgs') };
  } catch (error) {
    throw new ConfigError(`stateMachineArgs do not fit ${machine.name}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Makes a replica's state machine in its thread.
 * @throws {ConfigError} when the module does not export, under the name given, a state machine
 * of the name given (its code changed since the cluster checked it).
 */
export async function createStateMachine(ref: StateMachineRef): Promise<ConsensusState> {
  const exported = ((await import(ref.module)) as Record<string, unknown>)[ref.export];
  if (!isStateMachine(exported) || exported.name !== ref.name) {
    throw new ConfigError(`${ref.module} does not export the state machine ${ref.name} as ${ref.export}`);
  }
  return exported.create(ref.args);
}
