/**
 * Behaviors: what an actor is. A behavior is defined once, in a module, and can then be spawned
 * in the calling thread or in its own worker thread; the worker finds it again by module URL
 * and export name, which is why {@link defineBehavior} asks for both.
 */
import type { ActorRef } from './actor-ref.js';
import type { Clock } from './clock.js';
import type { Schema } from '../schema/schema.js';
import type { Task } from './task.js';

/** Why an actor incarnation ended. */
export type ExitReason =
  | { readonly kind: 'normal' }
  | { readonly kind: 'shutdown' }
  | { readonly kind: 'crash'; readonly error: SerializedError };

/** An error reduced to what can cross a thread boundary. */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  readonly stack?: string;
}

/** Out-of-band notifications delivered on the urgent lane through {@link ActorHandlers.signal}. */
export type Signal =
  | { readonly type: 'terminated'; readonly ref: ActorRef; readonly reason: ExitReason | { readonly kind: 'noproc' } }
  | { readonly type: 'undeliverable'; readonly to: ActorRef; readonly code: string; readonly message: string };

/** The sender of the message being handled; `reply` answers an `ask`. */
export interface Sender<Reply> {
  /** The sending actor, if the message came from an actor (not from plain code). */
  readonly ref: ActorRef | undefined;
  /** True if the sender awaits a reply. */
  readonly expectsReply: boolean;
  /** Answers an `ask` (ignored for a `tell`; a second reply is a programming error and throws). */
  reply(value: Reply): void;
}

/** Per-actor timers, cancelled when the actor stops or restarts. Timer messages use the urgent lane. */
export interface ActorTimers<Msg> {
  /** Delivers `msg` to self after `ms` (every `ms` with `repeat`); replaces a timer with the same key. */
  start(key: string, ms: number, msg: Msg, opts?: { readonly repeat?: boolean }): void;
  /** Cancels the timer with this key, if any. */
  cancel(key: string): void;
  /** True if a timer with this key is pending. */
  has(key: string): boolean;
}

/** What an actor can do besides handling messages. */
export interface ActorContext<Msg, Reply = unknown> {
  /** A reference to this incarnation. */
  readonly self: ActorRef<Msg, Reply>;
  /** The clock driving this actor's timers. */
  readonly clock: Clock;
  /** Timers owned by this actor. */
  readonly timers: ActorTimers<Msg>;
  /** Resolves the current incarnation of a named actor, or `undefined` if none runs. */
  lookup<M = unknown, R = unknown>(name: string): Promise<ActorRef<M, R> | undefined>;
  /** Delivers a `terminated` signal when `ref`'s incarnation ends (at once if it already has); watching it again while it runs changes nothing (one signal). */
  watch(ref: ActorRef): void;
  /** Runs a CPU-heavy task on the system's worker pool. */
  runTask<In, Out>(task: Task<In, Out>, input: In): Promise<Out>;
  /** Stops this actor normally (a transient child is then not restarted). */
  stop(): void;
  /**
   * Runs `work` at once and counts its synchronous time in this actor's handler-time histogram,
   * as one more piece of handling. For work an actor does on behalf of its messages outside its
   * handlers (a promise continuation that processes what several messages brought, say), which
   * the tick budget covers as much as a handler. Called inside a handler or another measured
   * piece, it adds nothing: that time is already counted.
   */
  readonly measure: Measure;
}

/** Runs a piece of synchronous work and accounts for its time (see `ActorContext.measure`). */
export type Measure = <T>(work: () => T) => T;

/**
 * Resolves after the event loop has had a turn (`setImmediate`): long work split into measured
 * stretches awaits it between them, so that I/O and messages that arrived meanwhile go first.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The handlers of a running actor, returned by {@link BehaviorDefinition.start}. */
export interface ActorHandlers<Msg, Reply = unknown> {
  /** Handles one message. A returned promise holds the mailbox until it settles. Throwing crashes the actor. */
  receive(msg: Msg, from: Sender<Reply>): void | Promise<void>;
  /** Handles a signal (death watch, undeliverable notices). */
  signal?(signal: Signal): void | Promise<void>;
  /** Called once when the actor stops normally or is shut down (not after a crash). */
  stop?(): void | Promise<void>;
  /** A serializable view of the actor's state, for the control plane. */
  inspect?(): unknown;
}

/** What {@link defineBehavior} takes. */
export interface BehaviorDefinition<Msg, Args, Reply> {
  /** `import.meta.url` of the module that exports this behavior. */
  readonly module: string;
  /** The name under which the module exports it. */
  readonly export: string;
  /** Schema every incoming message is validated against. */
  readonly messages: Schema<Msg>;
  /** Schema replies are validated against before they leave the actor. */
  readonly replies?: Schema<Reply>;
  /** Schema of the start arguments (validated in the thread that starts the actor). */
  readonly args?: Schema<Args>;
  /** Creates the actor's state and handlers. Throwing (or rejecting) fails the spawn. */
  start(ctx: ActorContext<Msg, Reply>, args: Args): ActorHandlers<Msg, Reply> | Promise<ActorHandlers<Msg, Reply>>;
}

const BEHAVIOR = Symbol.for('knhk.behavior');

/** A defined behavior; spawn it with `system.spawn` or a supervisor. */
export interface Behavior<Msg, Args = void, Reply = unknown> extends BehaviorDefinition<Msg, Args, Reply> {
  readonly [BEHAVIOR]: true;
}

/**
 * Defines a behavior. Export the result under `definition.export` from `definition.module`
 * so that a worker thread can load it:
 *
 * ```ts
 * export const Counter = defineBehavior({
 *   module: import.meta.url, export: 'Counter',
 *   messages: t.variants({ add: { n: t.int() }, get: {} }),
 *   replies: t.int(),
 *   start(ctx, args: { from: number }) {
 *     let n = args.from;
 *     return { receive(msg, from) { if (msg.type === 'add') n += msg.n; else from.reply(n); } };
 *   },
 * });
 * ```
 */
export function defineBehavior<Msg, Args = void, Reply = unknown>(definition: BehaviorDefinition<Msg, Args, Reply>): Behavior<Msg, Args, Reply> {
  return Object.freeze({ ...definition, [BEHAVIOR]: true as const });
}

/** True if `value` was made by {@link defineBehavior}. */
export function isBehavior(value: unknown): value is Behavior<unknown, unknown, unknown> {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BEHAVIOR] === true;
}

/** Reduces any thrown value to a {@link SerializedError}. */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      message: error.message,
      ...(typeof code === 'string' ? { code } : {}),
      ...(error.stack === undefined ? {} : { stack: error.stack }),
    };
  }
  return { name: 'Error', message: String(error) };
}
