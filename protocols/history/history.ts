/**
 * The history format a chaos run records: one entry per client operation, with its invocation
 * and completion times and its outcome, and the recorder that builds it. Times come from a clock
 * the caller injects (`performance.now` in a real run, virtual time in a simulation), so this
 * module stays pure.
 */
import { KnhkError } from '../../schema/errors.js';
import type { KvOperation, KvResponse } from '../consensus/kv.js';

/** Stable machine-readable codes of {@link HistoryError}. */
export type HistoryErrorCode =
  /** A history handed to the checker is malformed (duplicate ids, a return before its call, a time that is not a number). */
  | 'INVALID_HISTORY'
  /** A recorder was handed a handle it did not issue. */
  | 'UNKNOWN_HANDLE'
  /** A recorder was told twice how one operation ended. */
  | 'ALREADY_COMPLETED'
  /** The recorder's clock went backwards or returned something that is not a finite number. */
  | 'CLOCK_WENT_BACKWARDS'
  /** The checker was given an invalid option (a negative or NaN `maxSteps`). */
  | 'INVALID_OPTIONS';

/** A malformed history or checker option, or a recorder used the wrong way. */
export class HistoryError extends KnhkError {
  declare readonly code: HistoryErrorCode;
  constructor(code: HistoryErrorCode, message: string) {
    super(code, message);
  }
}

/** The client (Jepsen's "process") that issued an operation. */
export type ClientId = string | number;

/**
 * How an operation ended:
 * - `ok`: it completed with an output, and took effect exactly once, somewhere between its call
 *   and its return;
 * - `failed`: it definitely did not take effect (for example it was rejected before it was
 *   submitted); the checker drops it;
 * - `indeterminate`: it timed out or its client crashed; it may or may not have taken effect, at
 *   any point after its call (Jepsen's `info`): the checker treats its return as +∞ and its
 *   output as unknown.
 */
export type Outcome = 'ok' | 'failed' | 'indeterminate';

/** What every recorded operation carries. */
export interface OperationBase<I> {
  /** Unique within the history. */
  readonly id: number;
  /** The client that issued it. */
  readonly client: ClientId;
  /** The operation as submitted (for the key-value machine, a {@link KvOperation}). */
  readonly input: I;
  /** When it was invoked, on the recorder's monotonic clock. */
  readonly call: number;
}

/** An operation that completed with an output. */
export interface OkOperation<I, O> extends OperationBase<I> {
  readonly outcome: 'ok';
  /** When its output arrived (≥ `call`). */
  readonly return: number;
  /** The state machine's response (for the key-value machine, a {@link KvResponse}). */
  readonly output: O;
}

/** An operation that definitely did not take effect. */
export interface FailedOperation<I> extends OperationBase<I> {
  readonly outcome: 'failed';
  /** When it was known to have failed (for reports only). */
  readonly return?: number;
}

/** An operation that may or may not have taken effect. */
export interface IndeterminateOperation<I> extends OperationBase<I> {
  readonly outcome: 'indeterminate';
  /** When the client gave up on it, if it did (for reports only: the checker uses +∞). */
  readonly return?: number;
}

/** One operation of a history; by default an operation on the key-value machine. */
export type Operation<I = KvOperation, O = KvResponse> = OkOperation<I, O> | FailedOperation<I> | IndeterminateOperation<I>;

/** A history: operations in any order (the checker orders them by time). */
export type History<I = KvOperation, O = KvResponse> = readonly Operation<I, O>[];

/** Names an operation between {@link HistoryRecorder.invoke} and its completion. */
export interface OperationHandle {
  /** The operation's id in the history. */
  readonly id: number;
  /** The client that issued it. */
  readonly client: ClientId;
}

interface Pending<I> {
  readonly client: ClientId;
  readonly input: I;
  readonly call: number;
}

/**
 * Records a history as a run goes: `invoke` before an operation is sent, then exactly one of
 * `ok`, `fail` or `unknown` when it ends. The clock is injected (`() => performance.now()` in a
 * real run) and must not go backwards. Inputs and outputs are kept by reference: do not mutate
 * them afterwards.
 */
export class HistoryRecorder<I = KvOperation, O = KvResponse> {
  readonly #now: () => number;
  #last = -Infinity;
  readonly #pending = new Map<OperationHandle, Pending<I>>();
  readonly #operations: (Operation<I, O> | OperationHandle)[] = [];

  /** @param now the monotonic clock, read once per invocation and once per completion. */
  constructor(now: () => number) {
    this.#now = now;
  }

  /** Records the invocation of `input` by `client`; the handle completes it later. */
  invoke(client: ClientId, input: I): OperationHandle {
    const call = this.#read();
    const handle: OperationHandle = Object.freeze({ id: this.#operations.length, client });
    this.#pending.set(handle, { client, input, call });
    this.#operations.push(handle);
    return handle;
  }

  /** Records that the operation completed with `output`. */
  ok(handle: OperationHandle, output: O): OkOperation<I, O> {
    const p = this.#take(handle);
    return this.#store(handle, { id: handle.id, client: p.client, input: p.input, call: p.call, outcome: 'ok', return: this.#read(), output });
  }

  /** Records that the operation definitely did not take effect. */
  fail(handle: OperationHandle): FailedOperation<I> {
    const p = this.#take(handle);
    return this.#store(handle, { id: handle.id, client: p.client, input: p.input, call: p.call, outcome: 'failed', return: this.#read() });
  }

  /** Records that the operation's fate is unknown (timeout, crash): it may or may not have taken effect. */
  unknown(handle: OperationHandle): IndeterminateOperation<I> {
    const p = this.#take(handle);
    return this.#store(handle, { id: handle.id, client: p.client, input: p.input, call: p.call, outcome: 'indeterminate', return: this.#read() });
  }

  /** Number of operations invoked and not yet completed. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * The history so far, in invocation order. Operations still pending appear as indeterminate
   * without a return time (a run that ends with requests in flight cannot know their fate).
   */
  history(): Operation<I, O>[] {
    return this.#operations.map((entry) => {
      if ('outcome' in entry) return entry;
      const p = this.#pending.get(entry) as Pending<I>;
      return { id: entry.id, client: p.client, input: p.input, call: p.call, outcome: 'indeterminate' };
    });
  }

  #read(): number {
    const now = this.#now();
    if (typeof now !== 'number' || !Number.isFinite(now) || now < this.#last) {
      throw new HistoryError('CLOCK_WENT_BACKWARDS', `the recorder's clock read ${String(now)} after ${this.#last}; it must be finite and monotonic`);
    }
    this.#last = now;
    return now;
  }

  #take(handle: OperationHandle): Pending<I> {
    const p = this.#pending.get(handle);
    if (p !== undefined) return p;
    if (this.#operations[handle.id] !== undefined && 'outcome' in (this.#operations[handle.id] as object)) {
      throw new HistoryError('ALREADY_COMPLETED', `operation #${handle.id} already completed`);
    }
    throw new HistoryError('UNKNOWN_HANDLE', `operation handle #${String(handle.id)} was not issued by this recorder`);
  }

  #store<T extends Operation<I, O>>(handle: OperationHandle, op: T): T {
    this.#pending.delete(handle);
    this.#operations[handle.id] = op;
    return op;
  }
}
