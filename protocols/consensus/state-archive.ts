/**
 * A core's replicated state on disk: one whole snapshot, then the changes of each later state it
 * stores, until those changes add up to the size of the snapshot or number
 * {@link MAX_CHANGE_RECORDS}; then the whole state again, and the records before it are dropped.
 * What storing a state costs is thus proportional to what the commands since the last one wrote,
 * plus at most as much again for the periodic snapshots, where encoding the whole state every
 * time cost a pass over a million keys at every checkpoint or snapshot interval.
 *
 * Records are filed under their position, and a core names the position its state is at in a
 * record of its own (its anchor: HotStuff's state block, Raft's snapshot metadata; PBFT's stable
 * checkpoint, written earlier in the step, may be ahead of the state it holds). A state is stored as
 * its record, then the anchor, then the erasure of the records it supersedes, so a store holding
 * any prefix of those writes still loads (Raft relies on that): reading back takes the records up
 * to the anchor's position and leaves the others, which are erased at the restart.
 *
 * The archive also holds the last state it stored in memory, as a frozen view (StateView), to
 * serve a peer that is behind it: its snapshot is encoded only when a peer asks for it, and kept
 * until the next store. A frozen view of the key-value machine shares every slot not written since
 * with the live state; the slots written since are held twice.
 * A state machine without `freeze` gets a view holding its snapshot, and every state is stored
 * whole (state-machine.ts, `freezeState`).
 */
import { t, type Infer } from '../../schema/schema.js';
import { readStored, sameBytes } from './codec.js';
import type { Outputs } from './core.js';
import { ConsensusError, invariant } from './errors.js';
import { MAX_STATE_BYTES, type ReplicatedState, type ReplicatedView } from './state-machine.js';

/** Change records after one snapshot at most: recovery applies and checks each. */
export const MAX_CHANGE_RECORDS = 256;

/** The state at `position` whole; `digest` is its {@link ReplicatedView.digest}. */
export const archivedSnapshotSchema = t.object({ position: t.uint(), digest: t.bytes({ length: 32 }), snapshot: t.bytes({ maxLength: MAX_STATE_BYTES }) });
/** What turns the state stored before `position` into the state at `position` (digest `digest`). */
export const archivedChangesSchema = t.object({ position: t.uint(), digest: t.bytes({ length: 32 }), changes: t.bytes({ maxLength: MAX_STATE_BYTES }) });

/** A whole snapshot, as stored. */
export type ArchivedSnapshot = Infer<typeof archivedSnapshotSchema>;
/** One state's changes, as stored. */
export type ArchivedChanges = Infer<typeof archivedChangesSchema>;

/**
 * An archive's records as read back: the snapshot and the changes after it that lead to the
 * anchor's position, in position order, and the keys of the records left over from a store that
 * did not finish or from before the snapshot.
 */
export interface ArchiveRecords {
  readonly snapshot: ArchivedSnapshot | undefined;
  readonly changes: readonly ArchivedChanges[];
  readonly leftovers: readonly string[];
}

const SNAPSHOT_PREFIX = 'snapshot/';
const CHANGES_PREFIX = 'state-changes/';

/** Zero-padded, so that stores sorting keys keep position order. */
const filed = (prefix: string, position: number): string => `${prefix}${position.toString().padStart(16, '0')}`;

/** The key of the whole snapshot stored for `position`. */
export function archivedSnapshotKey(position: number): string {
  return filed(SNAPSHOT_PREFIX, position);
}

/** The key of the changes stored for `position`. */
export function archivedChangesKey(position: number): string {
  return filed(CHANGES_PREFIX, position);
}

/**
 * Reads an archive's records from a core's durable records: the latest snapshot at or below
 * `anchor` (the position the core's own records say its state is at), and the changes after it up
 * to `anchor`. Whether they restore to their digests only restoring them tells
 * ({@link StateArchive.recover}); whether they reach `anchor` exactly, the caller checks.
 * @throws {ConsensusError} `CORRUPT_STATE` for a record that does not parse, a record filed under
 * another position than its own, or changes up to `anchor` without a snapshot before them.
 */
export function readArchive(durable: ReadonlyMap<string, unknown>, anchor: number, what: string): ArchiveRecords {
  const snapshots: ArchivedSnapshot[] = [];
  const changes: ArchivedChanges[] = [];
  for (const key of durable.keys()) {
    const snapshot = key.startsWith(SNAPSHOT_PREFIX);
    if (!snapshot && !key.startsWith(CHANGES_PREFIX)) continue;
    const record = snapshot ? readStored(durable, key, archivedSnapshotSchema, what) : readStored(durable, key, archivedChangesSchema, what);
    if (record === undefined || key !== filed(snapshot ? SNAPSHOT_PREFIX : CHANGES_PREFIX, record.position)) {
      throw new ConsensusError('CORRUPT_STATE', `durable ${what} record ${key} holds the state at position ${record?.position}`);
    }
    if (snapshot) snapshots.push(record as ArchivedSnapshot);
    else changes.push(record as ArchivedChanges);
  }
  let base: ArchivedSnapshot | undefined;
  for (const s of snapshots) if (s.position <= anchor && s.position > (base?.position ?? -1)) base = s;
  const from = base?.position ?? 0;
  const chain = changes.filter((c) => c.position > from && c.position <= anchor).sort((a, b) => a.position - b.position);
  if (base === undefined && chain.length > 0) {
    throw new ConsensusError('CORRUPT_STATE', `the ${what} state changes at position ${chain[0]?.position} have no snapshot before them`);
  }
  const leftovers = [
    ...snapshots.filter((s) => s !== base).map((s) => archivedSnapshotKey(s.position)),
    ...changes.filter((c) => !chain.includes(c)).map((c) => archivedChangesKey(c.position)),
  ];
  return { snapshot: base, changes: chain, leftovers };
}

/** What is on disk: the state it ends at, and the sizes that decide when a snapshot is due. */
interface Stored {
  view: ReplicatedView;
  position: number;
  /** The position of the whole snapshot the changes follow. */
  readonly snapshot: number;
  readonly snapshotBytes: number;
  changeBytes: number;
  readonly changes: number[];
}

/** What is on disk once a whole snapshot of `view`, the state at `position`, is stored. */
function wholeAt(view: ReplicatedView, position: number, snapshotBytes: number): Stored {
  return { view, position, snapshot: position, snapshotBytes, changeBytes: 0, changes: [] };
}

/** `stored` after the changes (of `bytes` bytes) that lead to `view`, the state at `position`. */
function extend(stored: Stored, view: ReplicatedView, position: number, bytes: number): void {
  stored.view = view;
  stored.position = position;
  stored.changeBytes += bytes;
  stored.changes.push(position);
}

/** What a persist op stores of a core's state: a whole snapshot or changes, and their size in bytes. */
export interface StoredStateRecord {
  readonly record: 'snapshot' | 'changes';
  readonly bytes: number;
}

/** The state record `key` and `value` store, if they are one (for a host's telemetry: cores report nothing). */
export function storedStateRecord(key: string, value: unknown): StoredStateRecord | undefined {
  const record = key.startsWith(SNAPSHOT_PREFIX) ? 'snapshot' : key.startsWith(CHANGES_PREFIX) ? 'changes' : undefined;
  if (record === undefined || value === null || typeof value !== 'object') return undefined;
  // A record's bytes are in the field its kind is named after (archivedSnapshotSchema, archivedChangesSchema).
  const bytes = (value as Record<string, unknown>)[record];
  return bytes instanceof Uint8Array ? { record, bytes: bytes.length } : undefined;
}

/** A record a core writes beside a stored state, naming its position. */
export interface Anchor {
  readonly key: string;
  readonly value: unknown;
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

  /**
   * The snapshot of {@link view}, encoded on the first call after it was stored; undefined when
   * there is none, or when it is larger than a peer takes (stored as its changes, the state grew
   * past {@link MAX_STATE_BYTES}: storing it whole will stop the replica).
   */
  snapshot(): Uint8Array | undefined {
    if (this.#view === undefined) return undefined;
    this.#served ??= this.#view.snapshot();
    return this.#served.length > MAX_STATE_BYTES ? undefined : this.#served;
  }

  /** Stops serving the last state stored (PBFT: the stable checkpoint moved past it); it stays on disk. */
  forget(): void {
    this.#view = undefined;
    this.#served = undefined;
  }

  /**
   * Stores `view`, the state at `position`, in the current step, then `anchor` if given, then
   * erases what the state supersedes; holds the state. `snapshot`: its bytes when the caller has
   * them already (a state installed from peers).
   */
  store(position: number, view: ReplicatedView, anchor?: Anchor, snapshot?: Uint8Array): void {
    const stored = this.#stored;
    if (stored !== undefined) invariant(position > stored.position, `state stored at position ${stored.position} before position ${position}`);
    // A state given whole (installed from peers) is stored whole: nothing ties it to the last one stored.
    const due = snapshot !== undefined || stored === undefined || stored.changeBytes >= stored.snapshotBytes || stored.changes.length >= MAX_CHANGE_RECORDS;
    const changes = due ? undefined : view.changesSince(stored.view);
    if (stored !== undefined && changes !== undefined && stored.changeBytes + changes.length <= stored.snapshotBytes) {
      this.#out.persist(archivedChangesKey(position), { position, digest: view.digest, changes });
      if (anchor !== undefined) this.#out.persist(anchor.key, anchor.value);
      extend(stored, view, position, changes.length);
      this.#hold(view, snapshot);
      return;
    }
    // Not kept for serving: a whole state held until the next store would double what a replica holds.
    const whole = snapshot ?? view.snapshot();
    if (whole.length > MAX_STATE_BYTES) {
      // Nothing of this step is stored: the store keeps the last state it could read back, and the
      // log what led here, for a build that takes larger states.
      throw new ConsensusError('STATE_TOO_LARGE', `the state at position ${position} is ${whole.length} bytes whole, more than the ${MAX_STATE_BYTES} a replica stores and sends`);
    }
    this.#hold(view, snapshot);
    this.#out.persist(archivedSnapshotKey(position), { position, digest: view.digest, snapshot: whole });
    if (anchor !== undefined) this.#out.persist(anchor.key, anchor.value);
    if (stored !== undefined) {
      this.#out.erase(archivedSnapshotKey(stored.snapshot));
      for (const earlier of stored.changes) this.#out.erase(archivedChangesKey(earlier));
    }
    this.#stored = wholeAt(view, position, whole.length);
  }

  /** Serves `view` from now on; `snapshot`, its bytes if the caller had them. */
  #hold(view: ReplicatedView, snapshot: Uint8Array | undefined): void {
    this.#view = view;
    this.#served = snapshot;
  }

  /**
   * Restores `state` from `records` (read by {@link readArchive}): the snapshot, then each state's
   * changes in order, each checked against the digest stored with it; holds the state reached.
   * Erases the leftovers in the current step, before any later store could file a record beside them.
   * @returns the position the state is at, and its view; undefined when there is no snapshot.
   * @throws {ConsensusError} `CORRUPT_STATE` when a record does not restore, or restores to
   * another digest than its own: storage is never silently trusted.
   */
  recover(state: ReplicatedState, records: ArchiveRecords): { readonly position: number; readonly view: ReplicatedView } | undefined {
    invariant(this.#stored === undefined, 'an archive recovers once, before it stores');
    for (const key of records.leftovers) this.#out.erase(key);
    const { snapshot } = records;
    if (snapshot === undefined) return undefined;
    let view: ReplicatedView | undefined;
    try {
      view = state.adopt(snapshot.snapshot, snapshot.digest);
    } catch (cause) {
      // adopt throws only when the state machine cannot even return to the empty state it had.
      throw new ConsensusError('CORRUPT_STATE', `the snapshot at position ${snapshot.position} does not restore`, { cause });
    }
    if (view === undefined) throw new ConsensusError('CORRUPT_STATE', `the snapshot at position ${snapshot.position} does not restore to its digest`);
    const stored = wholeAt(view, snapshot.position, snapshot.snapshot.length);
    for (const record of records.changes) {
      try {
        state.applyChanges(record.changes);
      } catch (cause) {
        throw new ConsensusError('CORRUPT_STATE', `the state changes at position ${record.position} do not apply`, { cause });
      }
      view = state.freeze();
      if (!sameBytes(view.digest, record.digest)) throw new ConsensusError('CORRUPT_STATE', `the state changes at position ${record.position} do not restore to their digest`);
      extend(stored, view, record.position, record.changes.length);
    }
    this.#stored = stored;
    this.#view = view;
    return { position: stored.position, view };
  }
}
