/**
 * Pool tasks: CPU-heavy functions (signature checks, hashing) run on the system's Piscina pool so
 * that no actor's event loop blocks. Like behaviors, a task is found in the pool's threads by
 * module URL and export name.
 */

const TASK = Symbol.for('knhk.task');

/** A function runnable on the worker pool. Inputs and outputs must be structured-cloneable. */
export interface Task<In, Out> {
  /** `import.meta.url` of the module exporting the task. */
  readonly module: string;
  /** Export name of the task in that module. */
  readonly export: string;
  /** The work itself; runs in a pool thread. */
  run(input: In): Out | Promise<Out>;
  readonly [TASK]: true;
}

/** Defines a task; export the result as `definition.export` from `definition.module`. */
export function defineTask<In, Out>(definition: { readonly module: string; readonly export: string; run(input: In): Out | Promise<Out> }): Task<In, Out> {
  return Object.freeze({ ...definition, [TASK]: true as const });
}

/** True if `value` was made by {@link defineTask}. */
export function isTask(value: unknown): value is Task<unknown, unknown> {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[TASK] === true;
}

// Shared memory handed to every pool thread when the pool starts (see `ActorSystemOptions.poolShared`).
let shared: Readonly<Record<string, SharedArrayBuffer>> = {};

/** @internal Called once by the pool thread's entry with what the system shared. */
export function installPoolShared(buffers: Readonly<Record<string, SharedArrayBuffer>>): void {
  shared = buffers;
}

/**
 * A buffer the system shares with its pool threads, by name; `undefined` outside a pool thread or
 * if the system shared none under that name. For state a task needs on every call that should
 * cross a thread once rather than per call (keys a signing task uses, for example).
 */
export function poolShared(name: string): SharedArrayBuffer | undefined {
  return shared[name];
}
