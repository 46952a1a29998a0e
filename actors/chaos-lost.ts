/**
 * Lost acknowledged writes: what the chaos runner's final reads prove about the writes a client
 * was told had committed.
 *
 * After the workload stops and every fault is reverted, the runner reads every key once more
 * through consensus. Those reads are part of the history the linearizability checker sees, so any
 * loss shows up there as a violation; this module counts the losses the simplest way that needs
 * no search, by real-time order alone:
 *
 * Let r be a key's final read (invoked after every other operation on the key returned or was
 * given up on) and v the value it returned. Every put writes a value no other put writes, so v
 * names the one put p that wrote it. An acknowledged write w (a put or delete that completed) to
 * that key is **lost** when
 * - v is a value and p completed before w was invoked (p.return < w.call): p took effect before
 *   w, w replaced v, and nothing writes v again, so the state r saw does not include w; or
 * - v is absent, w is a put, and every delete of the key that may have taken effect completed
 *   before w was invoked (the initial state is absent too, and precedes everything): nothing could
 *   have removed w's value after it; or
 * - v is a value no put of the history wrote: the key holds something no client wrote, so no
 *   acknowledged write to it survived.
 *
 * Failed operations (refused before they were submitted) never took effect and are ignored;
 * indeterminate ones may have taken effect at any time after their call, so they never precede
 * anything. Losses that only a longer argument proves (say, w overwritten by an older write that a
 * read had already seen replaced) are not counted here but are linearizability violations.
 */
import type { KvOperation, KvResponse } from '../protocols/consensus/kv.js';
import type { OkOperation, Operation } from '../protocols/history/index.js';

/** An acknowledged write the final read of its key proves lost. */
export interface LostWrite {
  readonly key: string;
  /** The lost write. */
  readonly write: OkOperation<KvOperation, KvResponse>;
  /** The key's final read, which shows the value the write should have replaced (or none). */
  readonly finalRead: OkOperation<KvOperation, KvResponse>;
}

/**
 * The acknowledged writes that the final reads prove lost (see the module comment).
 * @param history every operation of the run, the final reads included.
 * @param finalReads each key's final read, by key (keys without one are not judged).
 */
export function lostAcknowledgedWrites(
  history: readonly Operation<KvOperation, KvResponse>[],
  finalReads: ReadonlyMap<string, OkOperation<KvOperation, KvResponse>>,
): LostWrite[] {
  const byKey = new Map<string, Operation<KvOperation, KvResponse>[]>();
  for (const op of history) {
    if (!finalReads.has(op.input.key)) continue;
    const list = byKey.get(op.input.key) ?? [];
    list.push(op);
    byKey.set(op.input.key, list);
  }
  const lost: LostWrite[] = [];
  for (const [key, finalRead] of finalReads) {
    const ops = byKey.get(key) ?? [];
    const acknowledged = ops.filter((op): op is OkOperation<KvOperation, KvResponse> => op.outcome === 'ok' && op.input.type !== 'get' && op !== finalRead);
    const value = finalRead.output.value ?? undefined;
    let isLost: (w: OkOperation<KvOperation, KvResponse>) => boolean;
    if (value === undefined) {
      const deletes = ops.filter((op) => op.input.type === 'delete' && op.outcome !== 'failed');
      isLost = (w) => w.input.type === 'put' && deletes.every((d) => d.outcome === 'ok' && d.return < w.call);
    } else {
      const writer = ops.find((op) => op.input.type === 'put' && op.input.value === value);
      if (writer === undefined) isLost = () => true;
      else if (writer.outcome !== 'ok') isLost = () => false;
      else isLost = (w) => w !== writer && writer.return < w.call;
    }
    for (const write of acknowledged) if (isLost(write)) lost.push({ key, write, finalRead });
  }
  return lost;
}
