/**
 * Renders operations and histories for people: one line per operation, ordered by call time.
 */
import type { KvOperation, KvResponse } from '../consensus/kv.js';
import type { Operation } from './history.js';
import { kvModel } from './kv-model.js';
import type { NotLinearizable } from './linearizability.js';
import type { Model } from './model.js';

/** The parts of a {@link Model} that render operations. */
export type Describer<I, O> = Pick<Model<unknown, I, O>, 'describeInput' | 'describeOutput'>;

/** A time with at most three decimals. */
export function formatTime(time: number | undefined): string {
  if (time === undefined) return '?';
  if (time === Infinity) return '∞';
  return String(Math.round(time * 1000) / 1000);
}

function parts<I, O>(op: Operation<I, O>, describe: Describer<I, O>): [string, string, string, string] {
  const input = describe.describeInput?.(op.input) ?? JSON.stringify(op.input);
  let output: string;
  let interval: string;
  if (op.outcome === 'ok') {
    output = describe.describeOutput?.(op.output, op.input) ?? JSON.stringify(op.output);
    interval = `[${formatTime(op.call)}, ${formatTime(op.return)}]`;
  } else if (op.outcome === 'failed') {
    output = 'failed';
    interval = `[${formatTime(op.call)}, ${formatTime(op.return)}]`;
  } else {
    output = '? (indeterminate)';
    interval = `[${formatTime(op.call)}, ∞)` + (op.return === undefined ? '' : ` gave up at ${formatTime(op.return)}`);
  }
  return [`#${op.id} ${String(op.client)}`, input, output, interval];
}

/** One operation on one line: `#id client  input → output  [call, return]`. */
export function formatOperation(op: Operation<KvOperation, KvResponse>): string;
/** One operation on one line, rendered through `describe` (a {@link Model}). */
export function formatOperation<I, O>(op: Operation<I, O>, describe: Describer<I, O>): string;
export function formatOperation<I, O>(op: Operation<I, O>, describe?: Describer<I, O>): string {
  const [who, input, output, interval] = parts(op, describe ?? (kvModel as unknown as Describer<I, O>));
  return `${who} ${input} → ${output} ${interval}`;
}

/**
 * A sub-history, one line per operation in call order (ties by id), columns aligned:
 * client, operation, output (`?` for indeterminate, `failed`), and `[call, return]`
 * (`[call, ∞)` for indeterminate operations).
 */
export function formatHistory(ops: readonly Operation<KvOperation, KvResponse>[]): string;
/** A sub-history rendered through `describe` (a {@link Model}). */
export function formatHistory<I, O>(ops: readonly Operation<I, O>[], describe: Describer<I, O>): string;
export function formatHistory<I, O>(ops: readonly Operation<I, O>[], describe?: Describer<I, O>): string {
  const d = describe ?? (kvModel as unknown as Describer<I, O>);
  const rows = [...ops].sort((a, b) => a.call - b.call || a.id - b.id).map((op) => parts(op, d));
  const width = [0, 1, 2].map((i) => Math.max(0, ...rows.map((row) => (row[i] as string).length)));
  return rows.map(([who, input, output, interval]) => `${who.padEnd(width[0] as number)}  ${input.padEnd(width[1] as number)} → ${output.padEnd(width[2] as number)}  ${interval}`).join('\n');
}

/** Options of {@link formatViolation}. */
export interface FormatViolationOptions {
  /** How many of the last linearized operations to show (default 10). */
  readonly tail?: number;
}

/**
 * A violation for a report: the explanation, the end of the longest partial linearization found
 * (in linearization order) and the operations it left unplaced (the one that could not be placed
 * and those concurrent with it), rather than the whole window, which can be long.
 */
export function formatViolation(result: NotLinearizable<KvOperation, KvResponse>, options?: FormatViolationOptions): string;
/** A violation for a report, rendered through `describe` (a {@link Model}). */
export function formatViolation<I, O>(result: NotLinearizable<I, O>, options: FormatViolationOptions | undefined, describe: Describer<I, O>): string;
export function formatViolation<I, O>(result: NotLinearizable<I, O>, options: FormatViolationOptions = {}, describe?: Describer<I, O>): string {
  const d = describe ?? (kvModel as unknown as Describer<I, O>);
  const tail = Math.max(0, options.tail ?? 10);
  const placed = new Set(result.linearization);
  const shown = tail === 0 ? [] : result.linearization.slice(-tail);
  const unplaced = result.operations.filter((op) => !placed.has(op));
  const indent = (text: string): string => text.split('\n').map((line) => `  ${line}`).join('\n');
  const lines = [result.explanation];
  const omitted = result.linearization.length - shown.length;
  lines.push(`longest linearization found${omitted > 0 ? ` (last ${shown.length} of ${result.linearization.length})` : ''}, in order:`);
  lines.push(shown.length === 0 ? '  (none)' : shown.map((op) => `  ${formatOperation(op, d)}`).join('\n'));
  lines.push(`left unplaced (${unplaced.length}):`);
  lines.push(indent(formatHistory(unplaced, d)));
  return lines.join('\n');
}
