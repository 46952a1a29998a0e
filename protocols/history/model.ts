/**
 * A sequential specification, as the linearizability checker needs it: an initial state, a pure
 * transition function, equality of outputs and a canonical key for states (for memoization).
 */
import type { Operation } from './history.js';

/** What {@link Model.step} returns: the operation's output and the state after it. */
export interface StepResult<S, O> {
  readonly output: O;
  readonly state: S;
}

/**
 * The sequential specification of an object. `S` is its state, `I` an operation, `O` a response.
 * Every function must be pure: `step` must not mutate the state it is given (the checker
 * backtracks to earlier states).
 */
export interface Model<S, I, O> {
  /** A short name for reports. */
  readonly name: string;
  /** The initial state (of each partition, when the model has {@link Model.partition}). */
  init(): S;
  /** Applies `input` to `state`. Total: every input has an output in every state. */
  step(state: S, input: I): StepResult<S, O>;
  /** Whether an observed output matches the one the specification gives. */
  equalOutputs(observed: O, expected: O): boolean;
  /**
   * A canonical string for a state: equal states give equal strings, different states different
   * ones. The checker memoizes on it.
   */
  stateKey(state: S): string;
  /**
   * The partition (for a key-value store: the key) an operation touches. Give it only when every
   * operation touches exactly one partition and partitions never interact; the checker then checks
   * each partition's sub-history on its own, from `init()` (linearizability is local: Herlihy &
   * Wing 1990, §3.3).
   */
  partition?(input: I): string;
  /**
   * Whether an operation never changes the state. An indeterminate read-only operation constrains
   * nothing, so the checker drops it before searching.
   */
  readOnly?(input: I): boolean;
  /**
   * Of one partition's sub-history (failed operations already dropped), the ids of indeterminate
   * operations that can be left out without changing the verdict: a model gives this only when
   * it can prove that any linearization including them stays legal without them (for the
   * key-value store: a lost write whose value no operation completed since its call returned). The checker
   * drops them before searching, which is what keeps many lost writes affordable.
   */
  unobserved?(history: readonly Operation<I, O>[]): ReadonlySet<number>;
  /** Renders an operation for reports (default: JSON). */
  describeInput?(input: I): string;
  /** Renders an output for reports (default: JSON). */
  describeOutput?(output: O, input: I): string;
  /** Renders a state for reports (default: JSON). */
  describeState?(state: S): string;
}
