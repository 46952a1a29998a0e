/**
 * Client histories and their linearizability checker: the format a chaos run records
 * ({@link HistoryRecorder}), the key-value machine's sequential specification ({@link kvModel}),
 * the checker ({@link checkLinearizable}: Wing & Gong's search with Lowe's memoization, per key)
 * and readable renderings of histories and violations for reports ({@link formatHistory},
 * {@link formatViolation}).
 * @packageDocumentation
 */
export {
  HistoryError,
  HistoryRecorder,
  type ClientId,
  type FailedOperation,
  type History,
  type HistoryErrorCode,
  type IndeterminateOperation,
  type OkOperation,
  type Operation,
  type OperationBase,
  type OperationHandle,
  type Outcome,
} from './history.js';
export type { Model, StepResult } from './model.js';
export { kvModel, type KvKeyState } from './kv-model.js';
export {
  DEFAULT_MAX_STEPS,
  checkLinearizable,
  type CheckOptions,
  type CheckResult,
  type Linearizable,
  type LinearizabilityUnknown,
  type NotLinearizable,
} from './linearizability.js';
export { formatHistory, formatOperation, formatTime, formatViolation, type Describer, type FormatViolationOptions } from './format.js';
