/**
 * A core's replicated state on disk: one whole snapshot, then the changes of each later state it
 * stores, until those changes add up to the size of the snapshot or number
 * {@link MAX_CHANGE_RECORDS}; then the whole state again, and the changes are dropped. What storing a
 * state costs is thus proportional to what the commands since the last one wrote, plus at most as
 * much again for the periodic snapshots, where encoding the whole state every time cost a pass
 * over a million keys at every checkpoint or snapshot interval.
 *
 * The archive also holds the last state it stored in memory, as a frozen view (StateView), to
 * serve a peer that is behind it: its snapshot is encoded only when a peer asks for it.
 * A state machine without `freeze` gets a view holding its snapshot, and every state is stored
 * whole (state-machine.ts, `freezeState`).
 */
import { t, type Infer } from '../../schema/schema.js';
import { readStored, sameBytes } from './codec.js';
import type { Outputs } from './core.js';
import { ConsensusError, invariant } from './errors.js';
import type { ReplicatedState, ReplicatedView } from './state-machine.js';

/** Change records after one snapshot at most: recovery applies and checks each. */
export const MAX_CHANGE_RECORDS = 256;

/** The state at `position` whole; `digest` is its {@link ReplicatedView.digest}. */
export const archivedSnapshotSchema = t.object({ position: t.uint(), digest: t.bytes({ length: 32 }), snapshot: t.bytes() });
/** What turns the state stored before `position` into the state at `position` (digest `digest`). */
export const archivedChangesSchema = t.object({ position: t.uint(), digest: t.bytes({ length: 32 }), changes: t.bytes() });

/** A whole snapshot, as stored. */
export type ArchivedSnapshot = Infer<typeof archivedSnapshotSchema>;
/** One state's changes, as stored. */
export type ArchivedChanges = Infer<typeof archivedChangesSchema>;

/** An archive's records as read back: its snapshot and the changes after it, in position order. */
export interface ArchiveRecords {
  readonly snapshot: ArchivedSnapshot | undefined;
  readonly changes: readonly ArchivedChanges[];
}

const SNAPSHOT_KEY = 'snapshot';
const CHANGES_PREFIX = 'state-changes/';

/** The key of the changes stored for `position`, zero-padded so that stores sorting keys keep position order. */
export function archivedChangesKey(position: number): string {
  return `${CHANGES_PREFIX}${position.toString().padStart(16, '0')}`;
}

/**
 * Reads and checks the shape and order of an archive's records in a core's durable records.
 * `latest` is the highest position the core's other records allow the archive to be at.
 * @throws {ConsensusError} `CORRUPT_STATE` for a record that does not parse, changes filed under
 * another position, changes without a snapshot before them, or records past `latest`. Whether they
 * match their digests only restoring them tells ({@link StateArchive.recover}).
 */
export function readArchive(durable: ReadonlyMap<string, unknown>, latest: number, what: string): ArchiveRecords {
  const snapshot = readStored(durable, SNAPSHOT_KEY, archivedSnapshotSchema, what);
  if (snapshot !== undefined && snapshot.position > latest) {
    throw new ConsensusError('CORRUPT_STATE', `the ${what} snapshot at position ${snapshot.position} is ahead of position ${latest}`);
  }
  const changes: ArchivedChanges[] = [];
  for (const key of durable.keys()) {
    if (!key.startsWith(CHANGES_PREFIX)) continue;
    const record = readStored(durable, key, archivedChangesSchema, what) as ArchivedChanges;
    if (key !== archivedChangesKey(record.position)) throw new ConsensusError('CORRUPT_STATE', `durable ${what} record ${key} holds the changes of position ${record.position}`);
    if (snapshot === undefined || record.position <= snapshot.position || record.position > latest) {
      throw new ConsensusError('CORRUPT_STATE', `the ${what} state changes at position ${record.position} lie outside the snapshot and position ${latest} after it`);
    }
    changes.push(record);
  }
  return { snapshot, changes: changes.sort((a, b) => a.position - b.position) };
}

/** What is on disk: the state it ends at, and the sizes that decide when a snapshot is due. */
interface Stored {
  view: ReplicatedView;
  position: number;
  readonly snapshotBytes: number;
  changeBytes: number;
  readonly changes: number[];
}

/** A core's replicated state, in memory at the last state stored and on disk. */
export class StateArchive {
  readonly #out: Outputs<unknown>;
  #view: ReplicatedView | undefined;
  /** The view's snapshot, once it was asked for. */
  #served: Uint8Array | undefined;
  #stored: Stored | undefined;

  constructor(out: Outputs<unknown>) {
    this.#out = out;
  }

  /** The last state stored, unless {@link forget} let it go. */
  get view(): ReplicatedView | undefined {
    return this.#view;
  }

  /** The position of the last state stored, if any. */
  get position(): number | undefined {
    return this.#stored?.position;
  }

  /** The snapshot of {@link view}, encoded on the first call after it was stored. */
  snapshot(): Uint8Array | undefined {
    if (this.#view === undefined) return undefined;
    return (this.#served ??= this.#view.snapshot());
  }

  /** Stops serving the last state stored (PBFT: the stable checkpoint moved past it); it stays on disk. */
  forget(): void {
    this.#view = undefined;
    this.#served = undefined;
  }

  /**
   * Stores `view`, the state at `position`, in the current step, and holds it. `snapshot`: its
   * bytes when the caller has them already (a state installed from peers).
   */
  store(position: number, view: ReplicatedView, snapshot?: Uint8Array): void {
    this.#view = view;
    this.#served = snapshot;
    const stored = this.#stored;
    if (stored !== undefined) invariant(position > stored.position, `state stored at position ${stored.position} before position ${position}`);
    const due = stored === undefined || stored.changeBytes >= stored.snapshotBytes || stored.changes.length >= MAX_CHANGE_RECORDS;
    const changes = due ? undefined : view.changesSince(stored.view);
    if (stored !== undefined && changes !== undefined && stored.changeBytes + changes.length <= stored.snapshotBytes) {
      this.#out.persist(archivedChangesKey(position), { position, digest: view.digest, changes });
      stored.view = view;
      stored.position = position;
      stored.changeBytes += changes.length;
      stored.changes.push(position);
      return;
    }
    const whole = this.snapshot() as Uint8Array;
    this.#out.persist(SNAPSHOT_KEY, { position, digest: view.digest, snapshot: whole });
    for (const earlier of stored?.changes ?? []) this.#out.erase(archivedChangesKey(earlier));
    this.#stored = { view, position, snapshotBytes: whole.length, changeBytes: 0, changes: [] };
  }

  /**
   * Restores `state` from `records` (read by {@link readArchive}): the snapshot, then each state's
   * changes in order, each checked against the digest stored with it; holds the state reached.
   * @returns the position the state is at, and its view.
   * @throws {ConsensusError} `CORRUPT_STATE` when a record does not restore, or restores to
   * another digest than its own: storage is never silently trusted.
   */
  recover(state: ReplicatedState, records: ArchiveRecords & { readonly snapshot: ArchivedSnapshot }): { readonly position: number; readonly view: ReplicatedView } {
    invariant(this.#stored === undefined, 'an archive recovers once, before it stores');
    const { snapshot } = records;
    let view = state.adopt(snapshot.snapshot, snapshot.digest);
    if (view === undefined) throw new ConsensusError('CORRUPT_STATE', `the snapshot at position ${snapshot.position} does not restore to its digest`);
    const stored: Stored = { view, position: snapshot.position, snapshotBytes: snapshot.snapshot.length, changeBytes: 0, changes: [] };
    for (const record of records.changes) {
      state.applyChanges(record.changes);
      view = state.freeze();
      if (!sameBytes(view.digest, record.digest)) throw new ConsensusError('CORRUPT_STATE', `the state changes at position ${record.position} do not restore to their digest`);
      stored.view = view;
      stored.position = record.position;
      stored.changeBytes += record.changes.length;
      stored.changes.push(record.position);
    }
    this.#stored = stored;
    this.#view = view;
    this.#served = records.changes.length === 0 ? snapshot.snapshot : undefined;
    return { position: stored.position, view };
  }
}
