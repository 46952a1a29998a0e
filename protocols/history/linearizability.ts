/**
 * Linearizability checking (Herlihy & Wing, "Linearizability: A Correctness Condition for
 * Concurrent Objects", 1990): is there a total order of the operations that respects real time
 * (an operation that returned before another was called comes first) and is legal for the
 * sequential specification?
 *
 * The search is Wing & Gong's ("Testing and verifying concurrent objects", 1993) with Lowe's
 * memoization ("Testing for linearizability", 2017), as Porcupine (Athalye) organizes it:
 *
 * - Each operation becomes a call entry and a return entry in one doubly linked list sorted by
 *   time. At equal times calls come before returns, so an operation that returned at the instant
 *   another was called counts as concurrent with it: a coarse clock cannot order the two, and the
 *   checker never reports a violation that depends on such an order.
 * - The search walks the list from the front. At a call entry it tries to linearize that
 *   operation now: if the model's output matches and the configuration (set of linearized
 *   operations, model state) has not been seen before, it lifts the operation's two
 *   entries out of the list, pushes it and restarts from the front; otherwise it moves on to the
 *   next entry. Reaching a return entry means that operation should have been linearized
 *   already: the search backtracks (pops the last operation, puts its entries back, tries the
 *   entry after its call). An empty stack there means no linearization exists.
 * - Lowe's cache of seen configurations makes each (set, state) pair explored once. Lowe keys it
 *   on a bitset of all operations; here the set is encoded as its highest operation and the
 *   unlinearized candidates below it, a few bytes rather than n/8 per configuration.
 * - Read-only operations go first: after each linearization, a first pass over the candidates
 *   linearizes every read-only operation whose output matches the current state before anything
 *   else is tried. This is safe: all operations that must precede such a read are already
 *   linearized (the scan met no return before its call), and it changes nothing, so if any
 *   continuation succeeds, one that starts with it does. Hence a read is never passed over, and
 *   when backtracking undoes one (or finds the configuration with it already explored), the
 *   configuration before it has failed as well. Without this, a write tried before a concurrent
 *   read of the old value sends the search deep before it fails, and every subset of concurrent
 *   reads of one value becomes a distinct configuration.
 * - Indeterminate operations return at +∞ with any output. Since every finite return sorts
 *   before them, reaching one of their return entries means only indeterminate operations are
 *   left, and they may be left out (never taking effect): the history is linearizable.
 *   Indeterminate read-only operations constrain nothing and are dropped before the search, and
 *   so are those the model proves unobserved ({@link Model.unobserved}).
 *
 * With a partitioned model (the key-value store: every operation touches one key) each key's
 * sub-history is checked on its own, since linearizability is local (Herlihy & Wing §3.3).
 *
 * The problem is NP-complete (Gibbons & Korach 1997); the search is exponential in the number of
 * mutually concurrent operations in the worst case, and each pending indeterminate write stays
 * concurrent with everything after it. `maxSteps` bounds the work per key.
 */
import { HistoryError, type History, type Operation } from './history.js';
import { formatOperation, formatTime, type Describer } from './format.js';
import type { Model } from './model.js';

/** Default {@link CheckOptions.maxSteps}. */
export const DEFAULT_MAX_STEPS = 10_000_000;

/** Options of {@link checkLinearizable}. */
export interface CheckOptions {
  /**
   * Search steps (list entries visited) allowed per key sub-history; past it that key's verdict
   * is unknown. Default {@link DEFAULT_MAX_STEPS} (seconds of work, not minutes).
   */
  readonly maxSteps?: number;
}

/** Every key's sub-history has a linearization. */
export interface Linearizable {
  readonly linearizable: true;
  /** Number of sub-histories checked (keys; 1 for a model without partitions). */
  readonly keys: number;
  /** Number of operations checked (all but the failed ones). */
  readonly operations: number;
  /** Search steps taken over all keys. */
  readonly steps: number;
}

/** Some key's sub-history has no linearization. */
export interface NotLinearizable<I, O> {
  readonly linearizable: false;
  /** The offending key (`undefined` for a model without partitions). */
  readonly key: string | undefined;
  /**
   * The part of the key's sub-history that is already not linearizable: every operation invoked
   * no later than {@link NotLinearizable.unplaced} returned, in call order (less the
   * indeterminate ones dropped as irrelevant: reads, and writes nobody observed). It holds the
   * longest partial linearization the search found and the operation it could not extend it with.
   */
  readonly operations: readonly Operation<I, O>[];
  /** The operation that could not be placed: it returned, and no legal order had linearized it. */
  readonly unplaced: Operation<I, O>;
  /** The longest partial linearization found (in linearization order) before the search got stuck on `unplaced`. */
  readonly linearization: readonly Operation<I, O>[];
  /** One paragraph for people. */
  readonly explanation: string;
  /** Search steps taken over all keys. */
  readonly steps: number;
}

/** The search ran out of its budget on some key, and found no violation on the others. */
export interface LinearizabilityUnknown<I, O> {
  readonly linearizable: 'unknown';
  readonly timedOut: true;
  /** The first key whose search ran out (`undefined` for a model without partitions). */
  readonly key: string | undefined;
  /** Every key whose search ran out. */
  readonly undecided: readonly (string | undefined)[];
  /** The first such key's sub-history, in call order. */
  readonly operations: readonly Operation<I, O>[];
  /** One sentence for people. */
  readonly explanation: string;
  /** Search steps taken over all keys. */
  readonly steps: number;
}

/** The verdict of {@link checkLinearizable}. */
export type CheckResult<I, O> = Linearizable | NotLinearizable<I, O> | LinearizabilityUnknown<I, O>;

interface Entry {
  /** Index of the operation in the sub-history; -1 for the head. */
  readonly op: number;
  readonly isCall: boolean;
  /** Position in time order. */
  readonly order: number;
  /** A call's return entry. */
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

type Checkable<I, O> = Exclude<Operation<I, O>, { outcome: 'failed' }>;

type SearchResult =
  | { readonly kind: 'linearizable'; readonly steps: number }
  | { readonly kind: 'budget'; readonly steps: number }
  | { readonly kind: 'violation'; readonly steps: number; readonly stuck: number; readonly linearization: readonly number[]; readonly state: unknown };

/**
 * One character for a positive integer: itself when below 0xff (so keys stay one-byte strings),
 * else 0xff, its base-36 digits and a `;`.
 */
function code(n: number): string {
  return n < 0xff ? String.fromCharCode(n) : `\u00ff${n.toString(36)};`;
}

function search<S, I, O>(ops: readonly Checkable<I, O>[], model: Model<S, I, O>, maxSteps: number): SearchResult {
  // The list: calls before returns at equal times (see the module comment), then by operation.
  const raw: { time: number; isCall: boolean; op: number }[] = [];
  ops.forEach((op, i) => {
    raw.push({ time: op.call, isCall: true, op: i });
    raw.push({ time: op.outcome === 'ok' ? op.return : Infinity, isCall: false, op: i });
  });
  raw.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.isCall !== b.isCall ? (a.isCall ? -1 : 1) : a.op - b.op));
  const head: Entry = { op: -1, isCall: false, order: -1, match: undefined, prev: undefined, next: undefined };
  const calls: Entry[] = [];
  let last = head;
  raw.forEach((r, order) => {
    const entry: Entry = { op: r.op, isCall: r.isCall, order, match: undefined, prev: last, next: undefined };
    last.next = entry;
    last = entry;
    if (r.isCall) calls[r.op] = entry;
    else (calls[r.op] as Entry).match = entry;
  });

  const lift = (e: Entry): void => {
    (e.prev as Entry).next = e.next;
    (e.next as Entry).prev = e.prev; // a call is always followed by at least its return
    const m = e.match as Entry;
    (m.prev as Entry).next = m.next;
    if (m.next !== undefined) m.next.prev = m.prev;
  };
  const unlift = (e: Entry): void => {
    const m = e.match as Entry;
    (m.prev as Entry).next = m;
    if (m.next !== undefined) m.next.prev = m;
    (e.prev as Entry).next = e;
    (e.next as Entry).prev = e;
  };

  const stateIds = new Map<string, number>();
  const stateId = (s: S): number => {
    const key = model.stateKey(s);
    let id = stateIds.get(key);
    if (id === undefined) {
      id = stateIds.size;
      stateIds.set(key, id);
    }
    return id;
  };
  // Lowe's cache. A configuration's set of linearized operations is encoded as its highest
  // operation m and the operations below m not linearized: those all are among the current
  // candidates (an operation below m was called before m, and m was a candidate when it was
  // linearized), which keeps keys short however long the history is.
  const seen = new Set<string>();
  const configKey = (adding: number, nextState: S): string => {
    const m = Math.max(top === undefined ? -1 : top.max, adding);
    let key = `${stateId(nextState)}:${m}:`;
    let previous = -1;
    for (let e = head.next; e !== undefined && e.isCall; e = e.next) {
      if (e.op < m && e.op !== adding) {
        key += code(e.op - previous);
        previous = e.op;
      }
    }
    return key;
  };
  /** Records the configuration reached by linearizing `adding` now; false if it was seen before. */
  const visit = (adding: number, nextState: S): boolean => {
    const key = configKey(adding, nextState);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  };
  // Read-only operations are linearized greedily (see the module comment).
  const readOnly = ops.map((op) => op.outcome === 'ok' && (model.readOnly?.(op.input) ?? false));
  // The stack of linearized operations, as a persistent list so that a snapshot of it costs O(1).
  interface Frame {
    readonly entry: Entry;
    readonly state: S;
    readonly depth: number;
    /** The highest operation linearized so far. */
    readonly max: number;
    readonly below: Frame | undefined;
  }
  let top: Frame | undefined;
  let state = model.init();
  let best: { order: number; top: Frame | undefined; state: S; stuck: number } | undefined;
  let steps = 0;
  let entry = head.next;

  /** Undoes linearizations until one can be replaced by a later candidate; undefined when none can. */
  const backtrack = (): Entry | undefined => {
    for (;;) {
      const frame = top;
      if (frame === undefined) return undefined;
      top = frame.below;
      state = frame.state;
      unlift(frame.entry);
      // Without a read-only operation that was legal here, no continuation can succeed either.
      if (!readOnly[frame.entry.op]) return frame.entry.next;
    }
  };

  // After each linearization, a first pass over the candidates (the calls before the first return)
  // linearizes the read-only operations that are legal now; the second pass tries the others.
  let readPass = true;
  while (entry !== undefined) {
    if (++steps > maxSteps) return { kind: 'budget', steps: steps - 1 };
    const op = ops[entry.op] as Checkable<I, O>;
    if (readPass) {
      if (!entry.isCall) {
        readPass = false;
        entry = head.next;
        continue;
      }
      if (readOnly[entry.op]) {
        const next = model.step(state, op.input);
        if (op.outcome === 'ok' && model.equalOutputs(op.output, next.output)) {
          if (visit(entry.op, next.state)) {
            top = { entry, state, depth: (top?.depth ?? 0) + 1, max: Math.max(top?.max ?? -1, entry.op), below: top };
            state = next.state; // the same state, for a model whose readOnly is right
            lift(entry);
            // The candidates before it were checked against this same state already. (Its own
            // return, just lifted out, may be the entry after it.)
            entry = entry.next === entry.match ? (entry.match as Entry).next : entry.next;
            continue;
          }
          // The configuration with it was explored and failed, so this one fails too.
          readPass = false;
          entry = backtrack();
          continue;
        }
      }
      entry = entry.next;
    } else if (entry.isCall) {
      if (readOnly[entry.op]) {
        // Not legal here, or it would have been linearized in the first pass.
        entry = entry.next;
        continue;
      }
      const next = model.step(state, op.input);
      if (op.outcome === 'indeterminate' || model.equalOutputs(op.output, next.output)) {
        if (visit(entry.op, next.state)) {
          top = { entry, state, depth: (top?.depth ?? 0) + 1, max: Math.max(top?.max ?? -1, entry.op), below: top };
          state = next.state;
          lift(entry);
          entry = head.next;
          readPass = true;
          continue;
        }
      }
      entry = entry.next;
    } else {
      // Every finite return sorts before +∞: only indeterminate operations are left, and they may never have happened.
      if (op.outcome === 'indeterminate') return { kind: 'linearizable', steps };
      if (best === undefined || entry.order > best.order || (entry.order === best.order && (top?.depth ?? 0) > (best.top?.depth ?? 0))) {
        best = { order: entry.order, top, state, stuck: entry.op };
      }
      entry = backtrack();
    }
  }
  if (head.next === undefined) return { kind: 'linearizable', steps }; // every operation was linearized
  // The stack emptied: no linearization. (A stuck return was met before any backtracking, so `best` is set.)
  const b = best as NonNullable<typeof best>;
  const linearization: number[] = [];
  for (let f = b.top; f !== undefined; f = f.below) linearization.push(f.entry.op);
  return { kind: 'violation', steps, stuck: b.stuck, linearization: linearization.reverse(), state: b.state };
}

function validate<I, O>(history: History<I, O>): void {
  const ids = new Set<number>();
  for (const op of history) {
    const where = `operation #${String(op.id)}`;
    if (ids.has(op.id)) throw new HistoryError('INVALID_HISTORY', `${where} appears twice`);
    ids.add(op.id);
    if (typeof op.call !== 'number' || !Number.isFinite(op.call)) throw new HistoryError('INVALID_HISTORY', `${where}: call time ${String(op.call)} is not a finite number`);
    if (op.outcome === 'ok') {
      if (typeof op.return !== 'number' || !Number.isFinite(op.return)) throw new HistoryError('INVALID_HISTORY', `${where}: return time ${String(op.return)} is not a finite number`);
      if (op.return < op.call) throw new HistoryError('INVALID_HISTORY', `${where} returned (${op.return}) before it was called (${op.call})`);
    } else if (op.outcome !== 'failed' && op.outcome !== 'indeterminate') {
      throw new HistoryError('INVALID_HISTORY', `${where}: unknown outcome ${JSON.stringify((op as { outcome: unknown }).outcome)}`);
    }
  }
}

/**
 * Checks that a history is linearizable for `model` (see the module comment for the algorithm).
 * Failed operations are dropped; indeterminate ones may take effect at any point after their
 * call, or never. With a partitioned model each partition (key) is checked on its own and the
 * first violation, in order of the keys' first calls, is reported; a key whose search exceeds
 * `maxSteps` makes the verdict `'unknown'` unless another key is not linearizable.
 *
 * @throws HistoryError `INVALID_HISTORY` on duplicate ids, non-finite times or a return before its
 * call; `INVALID_OPTIONS` on a negative or NaN `maxSteps`.
 */
export function checkLinearizable<S, I, O>(history: History<I, O>, model: Model<S, I, O>, options: CheckOptions = {}): CheckResult<I, O> {
  validate(history);
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  if (!(maxSteps >= 0)) throw new HistoryError('INVALID_OPTIONS', `maxSteps must be a number ≥ 0 (or Infinity), not ${String(maxSteps)}`);
  const ordered = history.filter((op): op is Checkable<I, O> => op.outcome !== 'failed').sort((a, b) => a.call - b.call || a.id - b.id);
  const groups = new Map<string | undefined, Checkable<I, O>[]>();
  for (const op of ordered) {
    const key = model.partition?.(op.input);
    let group = groups.get(key);
    if (group === undefined) {
      group = [];
      groups.set(key, group);
    }
    group.push(op);
  }
  let steps = 0;
  const undecided: [string | undefined, readonly Operation<I, O>[]][] = [];
  for (const [key, group] of groups) {
    let ops = model.readOnly === undefined ? group : group.filter((op) => op.outcome === 'ok' || !model.readOnly?.(op.input));
    const unobserved = model.unobserved?.(ops);
    if (unobserved !== undefined && unobserved.size > 0) ops = ops.filter((op) => op.outcome === 'ok' || !unobserved.has(op.id));
    const result = search(ops, model, maxSteps);
    steps += result.steps;
    if (result.kind === 'budget') undecided.push([key, group]);
    else if (result.kind === 'violation') {
      const unplaced = ops[result.stuck] as Checkable<I, O>;
      const linearization = result.linearization.map((i) => ops[i] as Checkable<I, O>);
      // Every operation called before the unplaced one returned (calls sort first at equal times).
      const operations = ops.filter((op) => op.call <= (unplaced as { return: number }).return);
      return { linearizable: false, key, operations, unplaced, linearization, explanation: explain(model, key, unplaced, linearization, result.state as S, operations.length), steps };
    }
  }
  if (undecided.length > 0) {
    const [key, operations] = undecided[0] as [string | undefined, readonly Operation<I, O>[]];
    const where = key === undefined ? 'the history' : `key ${JSON.stringify(key)}`;
    const explanation = `the search exhausted its budget of ${maxSteps} steps on ${where} (${operations.length} operations)` + (undecided.length > 1 ? ` and on ${undecided.length - 1} other key(s)` : '') + '; raise maxSteps, or record shorter or less concurrent histories';
    return { linearizable: 'unknown', timedOut: true, key, undecided: undecided.map(([k]) => k), operations, explanation, steps };
  }
  return { linearizable: true, keys: groups.size, operations: ordered.length, steps };
}

function explain<S, I, O>(model: Model<S, I, O>, key: string | undefined, unplaced: Checkable<I, O>, linearization: readonly Operation<I, O>[], state: S, window: number): string {
  const describe = model as Describer<I, O>;
  const where = key === undefined ? '' : ` on key ${JSON.stringify(key)}`;
  const returned = unplaced.outcome === 'ok' ? unplaced.return : Infinity;
  const ids = (ops: readonly Operation<I, O>[]): string => ops.map((op) => `#${op.id}`).join(', ');
  const order =
    linearization.length === 0
      ? 'no operation'
      : `${linearization.length} operation(s) (${linearization.length <= 8 ? ids(linearization) : `…, ${ids(linearization.slice(-5))}`})`;
  const stateText = model.describeState?.(state) ?? JSON.stringify(state);
  let text = `not linearizable${where}: ${formatOperation(unplaced, describe)} cannot be placed. No legal order of the ${window} operation(s) invoked by t=${formatTime(returned)} includes it; the longest found places ${order}, leaving the state at ${stateText}`;
  if (unplaced.outcome === 'ok') {
    const expected = model.step(state, unplaced.input).output;
    if (!model.equalOutputs(unplaced.output, expected)) {
      const show = (o: O): string => model.describeOutput?.(o, unplaced.input) ?? JSON.stringify(o);
      text += `, where it would have returned ${show(expected)}, not ${show(unplaced.output)}`;
    }
  }
  return `${text}.`;
}
