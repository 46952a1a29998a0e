/**
 * The sequential specification of `KvStateMachine` (../consensus/kv.ts), one key at a time.
 *
 * kv.ts answers every valid operation with `{ ok: true }` plus the key's value *before* the
 * operation when there was one: a `get` returns the current value, a `put` the value it
 * replaced, a `delete` the value it removed. Every operation touches exactly one key and keys
 * never interact, so the model is per key (its state is that key's value, `undefined` when
 * absent) and the checker splits a history by key.
 */
import type { KvOperation, KvResponse } from '../consensus/kv.js';
import type { Operation } from './history.js';
import type { Model, StepResult } from './model.js';

/** The state of one key: its value, or `undefined` when it is absent. */
export type KvKeyState = string | undefined;

function response(before: KvKeyState): KvResponse {
  return before === undefined ? { ok: true } : { ok: true, value: before };
}

const quote = (value: string | undefined): string => (value === undefined ? 'absent' : JSON.stringify(value));

/** The key-value machine's specification, per key. */
export const kvModel: Model<KvKeyState, KvOperation, KvResponse> = {
  name: 'kv',
  init: () => undefined,
  step(state: KvKeyState, input: KvOperation): StepResult<KvKeyState, KvResponse> {
    switch (input.type) {
      case 'get':
        return { output: response(state), state };
      case 'put':
        return { output: response(state), state: input.value };
      case 'delete':
        return { output: response(state), state: undefined };
    }
  },
  equalOutputs(observed: KvResponse, expected: KvResponse): boolean {
    // A JSON round trip may turn an absent field into null; treat both as absent.
    return observed.ok === expected.ok && (observed.value ?? undefined) === (expected.value ?? undefined) && (observed.error ?? undefined) === (expected.error ?? undefined);
  },
  stateKey: (state: KvKeyState): string => (state === undefined ? '-' : `+${state}`),
  partition: (input: KvOperation): string => input.key,
  readOnly: (input: KvOperation): boolean => input.type === 'get',
  unobserved(history: readonly Operation<KvOperation, KvResponse>[]): ReadonlySet<number> {
    // A lost put or delete can be left out when no completed operation that returned at or after
    // its call returned the value it writes (absent, for a delete). In any linearization that
    // includes it, the operation right after it returns that value and cannot have returned
    // before its call, so it and every operation up to the next put or delete are indeterminate
    // (unchecked), and that put or delete sets the key whatever was there before.
    const lastSeen = new Map<string | undefined, number>();
    for (const op of history) {
      if (op.outcome !== 'ok') continue;
      const value = op.output.value ?? undefined;
      lastSeen.set(value, Math.max(lastSeen.get(value) ?? -Infinity, op.return));
    }
    const out = new Set<number>();
    for (const op of history) {
      if (op.outcome !== 'indeterminate' || op.input.type === 'get') continue;
      const written = op.input.type === 'put' ? op.input.value : undefined;
      if (!((lastSeen.get(written) ?? -Infinity) >= op.call)) out.add(op.id);
    }
    return out;
  },
  describeInput(input: KvOperation): string {
    return input.type === 'put' ? `put ${JSON.stringify(input.key)} = ${JSON.stringify(input.value)}` : `${input.type} ${JSON.stringify(input.key)}`;
  },
  describeOutput(output: KvResponse, input: KvOperation): string {
    if (!output.ok) return `error ${JSON.stringify(output.error ?? '')}`;
    const value = output.value ?? undefined;
    return input.type === 'get' ? quote(value) : `was ${quote(value)}`;
  },
  describeState: quote,
};
