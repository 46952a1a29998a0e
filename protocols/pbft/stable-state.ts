/**
 * The state at the stable checkpoint (Castro & Liskov §4.3): held in memory as a frozen view, to
 * serve state transfer, and on disk as one snapshot followed by the changes of each stable
 * checkpoint after it. A replica stores a checkpoint's changes, not the whole state, while the
 * changes since the snapshot add up to less than the snapshot itself, and number at most
 * {@link MAX_CHANGE_RECORDS}; then it stores the whole state again and drops the changes. What a checkpoint costs on disk is thus proportional to what the
 * commands since the last one wrote, plus at most as much again for the periodic snapshots, where
 * storing the whole state every time cost a pass over a million keys every K sequence numbers.
 */
import { sameBytes } from '../consensus/codec.js';
import type { Outputs } from '../consensus/core.js';
import { ConsensusError, invariant } from '../consensus/errors.js';
import type { ReplicatedState, ReplicatedView } from '../consensus/state-machine.js';
import { DURABLE_KEYS, stateChangesKey, type StateChangesRecord } from './durable.js';
import type { StableCheckpoint } from './messages.js';

/** Change records after one snapshot at most: recovery applies and checks each. */
export const MAX_CHANGE_RECORDS = 256;

/** What is on disk: the view it describes, and the sizes that decide when a snapshot is due. */
interface Stored {
  view: ReplicatedView;
  sequence: number;
  readonly snapshotBytes: number;
  changeBytes: number;
  readonly changes: number[];
}

/** The state at the stable checkpoint, in memory and on disk. */
export class StableState {
  readonly #out: Outputs<unknown>;
  #view: ReplicatedView | undefined;
  /** The view's snapshot, once a peer asked for it. */
  #served: Uint8Array | undefined;
  #stored: Stored | undefined;

  constructor(out: Outputs<unknown>) {
    this.#out = out;
  }

  /** The state at the stable checkpoint, if this replica holds it (after a new view it may only know the digest). */
  get view(): ReplicatedView | undefined {
    return this.#view;
  }

  /** The snapshot a lagging peer is sent, if this replica holds the state. */
  snapshot(): Uint8Array | undefined {
    if (this.#view === undefined) return undefined;
    return (this.#served ??= this.#view.snapshot());
  }

  /** The stable checkpoint moved without this replica holding its state: there is none to serve. */
  forget(): void {
    this.#view = undefined;
    this.#served = undefined;
  }

  /** `view` is the state at stable checkpoint `cp`: hold it, and store it in the same step as the proof. */
  hold(cp: StableCheckpoint, view: ReplicatedView): void {
    invariant(sameBytes(view.digest, cp.stateDigest), `state at checkpoint ${cp.sequence} differs from the quorum's`, 'DOUBLE_COMMIT');
    this.#view = view;
    this.#served = undefined;
    const stored = this.#stored;
    if (stored !== undefined) invariant(cp.sequence > stored.sequence, `stable state stored at ${stored.sequence} before ${cp.sequence}`);
    const due = stored === undefined || stored.changeBytes >= stored.snapshotBytes || stored.changes.length >= MAX_CHANGE_RECORDS;
    const changes = due ? undefined : view.changesSince(stored.view);
    if (stored !== undefined && changes !== undefined && stored.changeBytes + changes.length <= stored.snapshotBytes) {
      this.#out.persist(stateChangesKey(cp.sequence), { sequence: cp.sequence, stateDigest: cp.stateDigest, changes });
      stored.view = view;
      stored.sequence = cp.sequence;
      stored.changeBytes += changes.length;
      stored.changes.push(cp.sequence);
      return;
    }
    const snapshot = view.snapshot();
    this.#out.persist(DURABLE_KEYS.snapshot, { sequence: cp.sequence, stateDigest: cp.stateDigest, snapshot });
    for (const sequence of stored?.changes ?? []) this.#out.erase(stateChangesKey(sequence));
    this.#stored = { view, sequence: cp.sequence, snapshotBytes: snapshot.length, changeBytes: 0, changes: [] };
  }

  /**
   * Restores `state` from the records read back: the snapshot, then each stable checkpoint's
   * changes in order, each checked against the digest stored with it, and holds it if it is the
   * state at `stable`. Returns the sequence the state is at, with its view.
   * @throws {ConsensusError} `CORRUPT_STATE` when a record does not restore, or restores to
   * another digest than its own: storage is never silently trusted.
   */
  recover(
    stable: StableCheckpoint,
    state: ReplicatedState,
    snapshot: { readonly sequence: number; readonly stateDigest: Uint8Array; readonly snapshot: Uint8Array },
    changes: readonly StateChangesRecord[],
  ): { readonly sequence: number; readonly view: ReplicatedView } {
    let view = state.adopt(snapshot.snapshot, snapshot.stateDigest);
    if (view === undefined) throw new ConsensusError('CORRUPT_STATE', `the snapshot at sequence ${snapshot.sequence} does not restore to its digest`);
    const stored: Stored = { view, sequence: snapshot.sequence, snapshotBytes: snapshot.snapshot.length, changeBytes: 0, changes: [] };
    for (const record of changes) {
      state.applyChanges(record.changes);
      view = state.freeze();
      if (!sameBytes(view.digest, record.stateDigest)) throw new ConsensusError('CORRUPT_STATE', `the state changes at sequence ${record.sequence} do not restore to their digest`);
      stored.view = view;
      stored.sequence = record.sequence;
      stored.changeBytes += record.changes.length;
      stored.changes.push(record.sequence);
    }
    this.#stored = stored;
    if (stored.sequence === stable.sequence) {
      invariant(sameBytes(view.digest, stable.stateDigest), `stored state at ${stable.sequence} differs from the stable checkpoint's`);
      this.#view = view;
    }
    return { sequence: stored.sequence, view };
  }
}
