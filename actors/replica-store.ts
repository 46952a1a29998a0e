/**
 * A replica's durable store: one LMDB environment per replica directory (DESIGN.md
 * "Durability"), holding the records its consensus core asks to persist.
 *
 * - Atomic: each `apply` is one LMDB write transaction, committed and synced to disk before it
 *   resolves, so the host sends a step's messages only after that step's records are durable,
 *   and a replica killed mid-write restarts with each step's records entirely there or entirely
 *   absent. The writes of one step are issued in one event turn, which lmdb-js commits as one
 *   transaction on its native writer. LMDB alone does not give the second half: a thread
 *   terminated between two of them leaves the writer the ones issued so far, and lmdb-js commits
 *   what it has (it never rolls a transaction back, kriszyp/lmdb-js#115). So a step of several
 *   records first writes all of them as one redo record, then the records, then removes the redo
 *   record; a torn step leaves the redo record behind, and the next `open` finishes the step.
 * - No callback inside a write transaction: lmdb-js runs `transaction(callback)` on the
 *   JavaScript thread while its native writer, which serves every environment of the process,
 *   waits for it. A thread killed before its callback ran could leave that writer, and every
 *   replica of the process, waiting for ever (lmdb-js#336 reports that hang for `process.exit`
 *   inside a callback; one CI chaos run stalled on a crash that never completed, not reproduced
 *   since). Plain puts and removes are carried out by the writer alone.
 * - Checked: each record is stored as SHA-256(payload) ‖ payload and verified when loaded; the
 *   environment carries the identity of its replica (cluster, node, protocol, size, state
 *   machine) and the format it was written in, and opening it for another replica or with a
 *   build of another format is refused. Storage that is corrupted, foreign or of another format
 *   is a {@link StorageError}, never silently used.
 * - Checked before it is mapped: LMDB has no page checksums and trusts its file, so a truncated
 *   or damaged `data.mdb` could fault the whole process (every replica of every cluster in it)
 *   instead of raising an error. `open` first reads the file's meta pages and the pages of its
 *   B-trees with plain reads (lmdb-file.ts), and an error LMDB itself raises on a damaged file
 *   (`MDB_PAGE_NOTFOUND`, `MDB_CORRUPTED`, `MDB_INVALID`, `MDB_VERSION_MISMATCH`) while opening or
 *   reading is `STORAGE_CORRUPT` too, with LMDB's error as its cause. What those reads cannot see
 *   can still crash the process: damage to the bytes of keys (values are checksummed), to the
 *   free-page lists, or to the file while it is mapped. If a replica's start kills the process
 *   with SIGBUS or SIGSEGV, its store is what to move aside (README, "Replica").
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import { decode, encode, hashBytes, sameBytes, type ConsensusAlgorithm, type PersistOp } from '../protocols/consensus/index.js';
import { KnhkError } from '../runtime/errors.js';
import { KeyValue } from './state-machine-definition.js';
import { lmdbFileDamage } from './lmdb-file.js';

/** Why a replica's storage cannot be used. */
export type StorageErrorCode =
  /** A record's bytes do not match their checksum, or do not decode. */
  | 'STORAGE_CORRUPT'
  /** The directory holds another replica's (or another cluster's) state. */
  | 'STORAGE_MISMATCH'
  /** The directory was written in a store format this build does not read ({@link STORE_FORMAT}). */
  | 'STORAGE_FORMAT';

/** A replica's storage is corrupted or is not its own. */
export class StorageError extends KnhkError {
  declare readonly code: StorageErrorCode;
  /** The replica directory. */
  readonly path: string;
  constructor(code: StorageErrorCode, path: string, message: string, options?: { cause?: unknown }) {
    super(code, `${path}: ${message}`, options);
    this.path = path;
  }
}

/** Whose state a replica directory holds. */
export interface ReplicaIdentity {
  readonly clusterId: string;
  readonly nodeId: number;
  readonly protocol: ConsensusAlgorithm;
  readonly n: number;
  /**
   * The name of the replicated state machine (state-machine-definition.ts). Identities written
   * before clusters took other machines have none: theirs was the key-value machine.
   */
  readonly stateMachine: string;
}

/**
 * The format of everything a replica directory holds: this file's records and the cores' records
 * inside them, digests included. Raised whenever a build would misread what an earlier one wrote
 * (a new definition of PBFT's checkpoint digest, for one), so that such a store is refused
 * by name when it is opened rather than found to contradict itself during recovery. Stores
 * written before format records existed have none, and are refused alike.
 */
export const STORE_FORMAT = 4;

const FORMAT_KEY = 'meta:format';
const IDENTITY_KEY = 'meta:identity';
const OPENS_KEY = 'meta:opens';
/** The step being written, present on disk only when that step was torn (see the file comment). */
const REDO_KEY = 'meta:redo';
const RECORD_PREFIX = 'core:';
const CHECKSUM_BYTES = 32;
const RECEIPT_PREFIX = 'receipt:';
/** Zero-padded, so that the keys' byte order is the positions' order. */
const receiptKey = (position: number): string => `${RECEIPT_PREFIX}${String(position).padStart(16, '0')}`;

/**
 * The codes of LMDB's errors (lmdb.h) that say its file is not what it wrote: a page it cannot
 * find or that is not what its parent says, no LMDB file, or another LMDB data version. Its other
 * errors (a full map or reader table, say) are about this process, not the file.
 */
const LMDB_DAMAGE = new Set(Object.values({ MDB_PAGE_NOTFOUND: -30797, MDB_CORRUPTED: -30796, MDB_VERSION_MISMATCH: -30794, MDB_INVALID: -30793 }));

/** `error` as `STORAGE_CORRUPT` of the store in `path` if LMDB raised it on a damaged file, else `error` itself. */
function fromLmdb(error: unknown, path: string, doing: string): unknown {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  if (typeof code !== 'number' || !LMDB_DAMAGE.has(code)) return error;
  return new StorageError('STORAGE_CORRUPT', path, `LMDB found its file damaged ${doing}: ${(error as Error).message}`, { cause: error });
}

function seal(value: unknown): Uint8Array {
  const payload = encode(value);
  const out = new Uint8Array(CHECKSUM_BYTES + payload.length);
  out.set(hashBytes(payload), 0);
  out.set(payload, CHECKSUM_BYTES);
  return out;
}

/** One record of a step, as stored: its key and its sealed bytes, or no bytes for a removal. */
type StoredOp = readonly [key: string, sealed?: Uint8Array];

const storedOp = (op: PersistOp): StoredOp => (op.value === undefined ? [RECORD_PREFIX + op.key] : [RECORD_PREFIX + op.key, seal(op.value)]);

function isStoredOps(value: unknown): value is StoredOp[] {
  return Array.isArray(value) && value.every((op) => Array.isArray(op) && typeof op[0] === 'string' && (op.length === 1 || (op.length === 2 && op[1] instanceof Uint8Array)));
}

/** The durable records of one replica. */
export class ReplicaStore {
  readonly path: string;
  readonly #env: RootDatabase;
  readonly #db: Database<Uint8Array, string>;

  private constructor(path: string, env: RootDatabase) {
    this.path = path;
    this.#env = env;
    this.#db = env as unknown as Database<Uint8Array, string>;
  }

  /**
   * Opens (creating if needed) the store in `dir` for `identity`.
   * @throws {StorageError} `STORAGE_FORMAT` when it was written in another {@link STORE_FORMAT},
   * `STORAGE_MISMATCH` when it belongs to another replica, `STORAGE_CORRUPT` when its LMDB file or
   * its identity or format record is damaged.
   */
  static async open(dir: string, identity: ReplicaIdentity): Promise<ReplicaStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const damage = lmdbFileDamage(join(dir, 'data.mdb'));
    if (damage !== undefined) throw new StorageError('STORAGE_CORRUPT', dir, `data.mdb is damaged: ${damage}`);
    let env: RootDatabase;
    try {
      // overlappingSync off: a transaction's promise resolves only once it is flushed to disk.
      env = openLmdb({ path: dir, encoding: 'binary', compression: false, noSync: false, overlappingSync: false });
    } catch (error) {
      throw fromLmdb(error, dir, 'opening it');
    }
    const store = new ReplicaStore(dir, env);
    try {
      const stored = store.#read(IDENTITY_KEY);
      const format = store.#read(FORMAT_KEY);
      if (stored !== undefined && format !== STORE_FORMAT) {
        const written = format === undefined ? 'a knhk from before store formats were recorded' : `store format ${JSON.stringify(format)}`;
        throw new StorageError('STORAGE_FORMAT', dir, `was written by ${written}; this build reads store format ${STORE_FORMAT} only`);
      }
      const wanted = { clusterId: identity.clusterId, nodeId: identity.nodeId, protocol: identity.protocol, n: identity.n, stateMachine: identity.stateMachine };
      const recorded = typeof stored === 'object' && stored !== null && !('stateMachine' in stored) ? { ...stored, stateMachine: KeyValue.name } : stored;
      if (recorded !== undefined && JSON.stringify(recorded) !== JSON.stringify(wanted)) {
        throw new StorageError('STORAGE_MISMATCH', dir, `holds the state of ${JSON.stringify(recorded)}, not of ${JSON.stringify(wanted)}`);
      }
      // lmdb-js commits on a native thread shared by the process, in order. A replica thread
      // killed mid-write may still have writes queued there; this write commits after them, so
      // what is read from here on includes everything the old incarnation will ever write.
      const opens = Number(store.#read(OPENS_KEY) ?? 0);
      // The format first: should a kill split the two puts, the store reads as new, not as formatless.
      const created = stored === undefined ? [store.#db.put(FORMAT_KEY, seal(STORE_FORMAT)), store.#db.put(IDENTITY_KEY, seal(wanted))] : [];
      await Promise.all([...created, store.#db.put(OPENS_KEY, seal(opens + 1))]);
      await store.#finishTornStep();
    } catch (error) {
      await env.close();
      throw error;
    }
    return store;
  }

  /**
   * Redoes the step a killed thread left half-written, if any. Its redo record goes last, so a
   * thread killed here too leaves it for the next open.
   */
  async #finishTornStep(): Promise<void> {
    const redo = this.#read(REDO_KEY);
    if (redo === undefined) return;
    if (!isStoredOps(redo)) throw new StorageError('STORAGE_CORRUPT', this.path, `record ${JSON.stringify(REDO_KEY)} is not a list of records`);
    await Promise.all([...this.#write(redo), this.#db.remove(REDO_KEY)]);
  }

  /** Queues `ops` for the writer, in order; issued in one turn, they commit in one transaction. */
  #write(ops: readonly StoredOp[]): Promise<boolean>[] {
    return ops.map(([key, sealed]) => (sealed === undefined ? this.#db.remove(key) : this.#db.put(key, sealed)));
  }

  #read(key: string): unknown {
    let bytes: Uint8Array | undefined;
    try {
      bytes = this.#db.get(key);
    } catch (error) {
      throw fromLmdb(error, this.path, `reading ${JSON.stringify(key)}`);
    }
    return bytes === undefined ? undefined : this.#open(key, bytes);
  }

  /** Checks a record's checksum and decodes it. */
  #open(key: string, bytes: Uint8Array): unknown {
    const payload = bytes.subarray(CHECKSUM_BYTES);
    if (bytes.length < CHECKSUM_BYTES || !sameBytes(hashBytes(payload), bytes.subarray(0, CHECKSUM_BYTES))) {
      throw new StorageError('STORAGE_CORRUPT', this.path, `record ${JSON.stringify(key)} does not match its checksum`);
    }
    try {
      return decode(payload);
    } catch (cause) {
      throw new StorageError('STORAGE_CORRUPT', this.path, `record ${JSON.stringify(key)} does not decode`, { cause });
    }
  }

  /**
   * Every record the core persisted, as `CoreOptions.durable` wants them.
   * @throws {StorageError} `STORAGE_CORRUPT` naming the first damaged record, or when LMDB finds its file damaged.
   */
  load(): Map<string, unknown> {
    const records = new Map<string, unknown>();
    // One range read is one read transaction: a consistent snapshot of the records.
    for (const { key, value } of this.#range(RECORD_PREFIX)) records.set(key.slice(RECORD_PREFIX.length), this.#open(key, value));
    return records;
  }

  /** The records whose keys start with `prefix`, in key order. @throws {StorageError} `STORAGE_CORRUPT` when LMDB finds its file damaged. */
  *#range(prefix: string): Generator<{ readonly key: string; readonly value: Uint8Array }> {
    const range = this.#db.getRange({ start: prefix, end: `${prefix}\uffff` })[Symbol.iterator]();
    try {
      for (;;) {
        let next: IteratorResult<{ key: string; value: Uint8Array }>;
        try {
          next = range.next();
        } catch (error) {
          throw fromLmdb(error, this.path, `reading the records from ${JSON.stringify(prefix)} on`);
        }
        if (next.done === true) return;
        yield next.value;
      }
    } finally {
      // A reader that stops early ends the range's read transaction.
      range.return?.();
    }
  }

  /** Writes one step's persist ops in one transaction; resolves once it is committed to disk. */
  async apply(ops: readonly PersistOp[]): Promise<void> {
    if (ops.length === 0) return;
    const stored = ops.map(storedOp);
    // A single put or remove cannot tear, so it needs no redo record.
    if (stored.length === 1) {
      await Promise.all(this.#write(stored));
      return;
    }
    // The redo record's pages, dirty in this transaction, go back to LMDB's free list before the
    // commit writes dirty pages out: it costs a copy in memory, not a write to disk.
    await Promise.all([this.#db.put(REDO_KEY, seal(stored)), ...this.#write(stored), this.#db.remove(REDO_KEY)]);
  }

  /**
   * Writes the receipt-log entries of one executed position (receipt-journal.ts) in one synced
   * transaction. Kept apart from the core's records, which the core alone reads back.
   */
  async putReceipts(position: number, entries: unknown): Promise<void> {
    await this.#db.put(receiptKey(position), seal(entries));
  }

  /** Removes the receipt-log entries of `positions` in one synced transaction. */
  async dropReceipts(positions: readonly number[]): Promise<void> {
    await Promise.all(this.#write(positions.map((position): StoredOp => [receiptKey(position)])));
  }

  /** The receipt-log entries of `position`, if written. @throws {StorageError} `STORAGE_CORRUPT`. */
  receipts(position: number): unknown {
    return this.#read(receiptKey(position));
  }

  /** Every position's receipt-log entries, in position order. @throws {StorageError} `STORAGE_CORRUPT`. */
  *receiptPositions(): Generator<{ readonly position: number; readonly entries: unknown }> {
    for (const { key, value } of this.#range(RECEIPT_PREFIX)) yield { position: Number(key.slice(RECEIPT_PREFIX.length)), entries: this.#open(key, value) };
  }

  /** How many times the store has been opened, this time included (restarts + 1). */
  get opens(): number {
    return Number(this.#read(OPENS_KEY));
  }

  /** Closes the environment. */
  async close(): Promise<void> {
    await this.#env.close();
  }
}
