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
 * - Checked: each record is stored as SHA-256(msgpack(key) ‖ payload) ‖ payload and verified
 *   when loaded, so a record moved under another key fails too; the environment carries the
 *   identity of its replica (cluster, node, protocol, size, state machine) and the format it was
 *   written in, and opening it for another replica or with a build of another format is refused.
 *   A witness file beside it (store-witness.ts) counts its opens, so a data file lost, emptied or
 *   replaced by an older copy of itself is refused too, where it would have read as a new or a
 *   healthy store. Storage that is corrupted, foreign, stale or of another format is a
 *   {@link StorageError}, never silently used.
 * - A write that cannot be committed (a full disk, say) is `STORAGE_WRITE`, with the cause lmdb-js
 *   reports; the step is not stored. After a failed commit, lmdb-js 3.5.6 also rejects a promise of
 *   its own that no caller holds, and its native teardown at process exit can abort (seen with
 *   a file size limit), so a process whose store failed a write should not be relied on to exit
 *   cleanly.
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
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import { decode, encode, hashBytes, sameBytes, type ConsensusAlgorithm, type PersistOp } from '../protocols/consensus/index.js';
import { lmdbFileDamage } from './lmdb-file.js';
import { StorageError } from './storage-error.js';
import { isCountOfOpens, readWitness, writeWitness, WITNESS_FILE } from './store-witness.js';

export { StorageError, type StorageErrorCode } from './storage-error.js';

/** Whose state a replica directory holds. */
export interface ReplicaIdentity {
  readonly clusterId: string;
  readonly nodeId: number;
  readonly protocol: ConsensusAlgorithm;
  readonly n: number;
  /** The name of the replicated state machine (state-machine-definition.ts). */
  readonly stateMachine: string;
}

/**
 * The format of everything a replica directory holds: this file's records and the cores' records
 * inside them, digests included. Raised whenever a build would misread what an earlier one wrote
 * (a new definition of PBFT's checkpoint digest, for one), so that such a store is refused
 * by name when it is opened rather than found to contradict itself during recovery. Stores
 * written before format records existed have none, and are refused alike.
 */
export const STORE_FORMAT = 5;

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

const lmdbCode = (error: unknown): unknown => (error instanceof Error ? (error as { code?: unknown }).code : undefined);

/** `error` as `STORAGE_CORRUPT` of the store in `path` if LMDB raised it on a damaged file, else `error` itself. */
function fromLmdb(error: unknown, path: string, doing: string): unknown {
  const code = lmdbCode(error);
  if (typeof code !== 'number' || !LMDB_DAMAGE.has(code)) return error;
  return new StorageError('STORAGE_CORRUPT', path, `LMDB found its file damaged ${doing}: ${(error as Error).message}`, { cause: error });
}

/**
 * A failed write of the store in `path` as a {@link StorageError}: `STORAGE_CORRUPT` when LMDB
 * found its file damaged, `STORAGE_WRITE` otherwise (a full disk, say). lmdb-js rejects each write
 * of a failed commit with a bare "Commit failed" whose `commitError`, a promise, carries the cause;
 * nothing else handles that promise (kriszyp/lmdb-js#368), so it is handled here.
 */
async function writeFailure(error: unknown, path: string, doing: string): Promise<StorageError> {
  const pending = error instanceof Error ? (error as { commitError?: unknown }).commitError : undefined;
  const cause = pending instanceof Promise ? await pending.then(() => error, (commitError: unknown) => commitError) : error;
  const damage = fromLmdb(cause, path, doing);
  if (damage instanceof StorageError) return damage;
  const errno = lmdbCode(cause);
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new StorageError('STORAGE_WRITE', path, `could not commit ${doing}${errno === undefined ? '' : ` (error ${String(errno)})`}: ${reason}`, { cause });
}

/**
 * What a record's checksum covers: its key and its payload, so that a record moved under another
 * key fails its check. The format record alone is checked on its payload: it is read first, to
 * refuse a store of another format by name, and every format since the first seals it so.
 */
function checksum(key: string, payload: Uint8Array): Uint8Array {
  return key === FORMAT_KEY ? hashBytes(payload) : createHash('sha256').update(encode(key)).update(payload).digest();
}

function seal(key: string, value: unknown): Uint8Array {
  const payload = encode(value);
  const out = new Uint8Array(CHECKSUM_BYTES + payload.length);
  out.set(checksum(key, payload), 0);
  out.set(payload, CHECKSUM_BYTES);
  return out;
}

/** One record of a step, as stored: its key and its sealed bytes, or no bytes for a removal. */
type StoredOp = readonly [key: string, sealed?: Uint8Array];

function storedOp(op: PersistOp): StoredOp {
  const key = RECORD_PREFIX + op.key;
  return op.value === undefined ? [key] : [key, seal(key, op.value)];
}

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
   * its identity or format record is damaged, or its data file was lost or emptied since the store
   * was created (store-witness.ts), `STORAGE_ROLLBACK` when its data file is an older copy of
   * itself, `STORAGE_WRITE` when the open cannot be recorded.
   */
  static async open(dir: string, identity: ReplicaIdentity): Promise<ReplicaStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const witness = await readWitness(dir);
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
      const wanted = { clusterId: identity.clusterId, nodeId: identity.nodeId, protocol: identity.protocol, n: identity.n, stateMachine: identity.stateMachine };
      const stored = store.#recorded(wanted);
      if (stored === undefined && witness !== undefined) {
        throw new StorageError('STORAGE_CORRUPT', dir, `data.mdb holds no store, but ${WITNESS_FILE} says the store was opened ${witness.opens} times: its data file was lost or emptied`);
      }
      if (stored !== undefined && witness === undefined && store.#holds([FORMAT_KEY, IDENTITY_KEY, OPENS_KEY])) {
        // A first open killed after its store's first commit leaves no witness, and no other records.
        throw new StorageError('STORAGE_CORRUPT', dir, `${WITNESS_FILE} is missing beside a store that holds records`);
      }
      // lmdb-js commits on a native thread shared by the process, in order. A replica thread
      // killed mid-write may still have writes queued there; this write commits after them, so
      // what is read from here on includes everything the old incarnation will ever write.
      const opens = stored === undefined ? 0 : store.opens;
      if (witness !== undefined && opens < witness.opens) {
        throw new StorageError('STORAGE_ROLLBACK', dir, `data.mdb has been opened ${opens} times, but ${WITNESS_FILE} says ${witness.opens}: it is an older copy of the store`);
      }
      // Format and identity go in one transaction with the count: a store has all three or none.
      const created = stored === undefined ? [store.#put(FORMAT_KEY, STORE_FORMAT), store.#put(IDENTITY_KEY, wanted)] : [];
      await store.#commit([...created, store.#put(OPENS_KEY, opens + 1)], 'the count of opens');
      await store.#finishTornStep();
      try {
        await writeWitness(dir, { opens: opens + 1 });
      } catch (cause) {
        throw new StorageError('STORAGE_WRITE', dir, `could not write ${WITNESS_FILE}: ${(cause as Error).message}`, { cause });
      }
    } catch (error) {
      await env.close();
      throw error;
    }
    return store;
  }

  /**
   * The identity recorded in the store, undefined for a store not written yet.
   * @throws {StorageError} `STORAGE_FORMAT`, `STORAGE_MISMATCH` or `STORAGE_CORRUPT`, as {@link open} says.
   */
  #recorded(wanted: ReplicaIdentity): ReplicaIdentity | undefined {
    const format = this.#read(FORMAT_KEY);
    if (format === undefined) {
      if (!this.#holds([])) return undefined;
      throw new StorageError('STORAGE_FORMAT', this.path, `was written by a knhk from before store formats were recorded; this build reads store format ${STORE_FORMAT} only`);
    }
    if (format !== STORE_FORMAT) {
      throw new StorageError('STORAGE_FORMAT', this.path, `was written by store format ${JSON.stringify(format)}; this build reads store format ${STORE_FORMAT} only`);
    }
    const recorded = this.#read(IDENTITY_KEY);
    if (recorded === undefined) throw new StorageError('STORAGE_CORRUPT', this.path, `has a format record but no ${JSON.stringify(IDENTITY_KEY)} record`);
    if (JSON.stringify(recorded) !== JSON.stringify(wanted)) {
      throw new StorageError('STORAGE_MISMATCH', this.path, `holds the state of ${JSON.stringify(recorded)}, not of ${JSON.stringify(wanted)}`);
    }
    return wanted;
  }

  /** Whether the store holds any record but those under `ignored`. */
  #holds(ignored: readonly string[]): boolean {
    try {
      return [...this.#db.getKeys({ limit: ignored.length + 1 })].some((key) => !ignored.includes(key));
    } catch (error) {
      throw fromLmdb(error, this.path, 'listing its records');
    }
  }

  /** Queues a put of `value` under `key`, sealed. */
  #put(key: string, value: unknown): Promise<boolean> {
    return this.#db.put(key, seal(key, value));
  }

  /** Waits for `writes`, issued in one turn; a failure is a {@link StorageError} (see {@link writeFailure}). */
  async #commit(writes: readonly Promise<boolean>[], doing: string): Promise<void> {
    const outcomes = await Promise.allSettled(writes);
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) throw await writeFailure(failed.reason, this.path, doing);
  }

  /**
   * Redoes the step a killed thread left half-written, if any. Its redo record goes last, so a
   * thread killed here too leaves it for the next open.
   */
  async #finishTornStep(): Promise<void> {
    const redo = this.#read(REDO_KEY);
    if (redo === undefined) return;
    if (!isStoredOps(redo)) throw new StorageError('STORAGE_CORRUPT', this.path, `record ${JSON.stringify(REDO_KEY)} is not a list of records`);
    await this.#commit([...this.#write(redo), this.#db.remove(REDO_KEY)], 'the torn step it finishes');
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
    if (bytes.length < CHECKSUM_BYTES || !sameBytes(checksum(key, payload), bytes.subarray(0, CHECKSUM_BYTES))) {
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

  /**
   * Writes one step's persist ops in one transaction; resolves once it is committed to disk.
   * @throws {StorageError} `STORAGE_WRITE` when the commit failed: none of the step is stored.
   */
  async apply(ops: readonly PersistOp[]): Promise<void> {
    if (ops.length === 0) return;
    const stored = ops.map(storedOp);
    // A single put or remove cannot tear, so it needs no redo record.
    if (stored.length === 1) return this.#commit(this.#write(stored), 'a step');
    // The redo record's pages, dirty in this transaction, go back to LMDB's free list before the
    // commit writes dirty pages out: it costs a copy in memory, not a write to disk.
    await this.#commit([this.#put(REDO_KEY, stored), ...this.#write(stored), this.#db.remove(REDO_KEY)], 'a step');
  }

  /**
   * Writes the receipt-log entries of one executed position (receipt-journal.ts) in one synced
   * transaction. Kept apart from the core's records, which the core alone reads back.
   */
  async putReceipts(position: number, entries: unknown): Promise<void> {
    await this.#commit([this.#put(receiptKey(position), entries)], `the receipts of position ${position}`);
  }

  /** Removes the receipt-log entries of `positions` in one synced transaction. */
  async dropReceipts(positions: readonly number[]): Promise<void> {
    await this.#commit(this.#write(positions.map((position): StoredOp => [receiptKey(position)])), 'the removal of receipts');
  }

  /** The receipt-log entries of `position`, if written. @throws {StorageError} `STORAGE_CORRUPT`. */
  receipts(position: number): unknown {
    return this.#read(receiptKey(position));
  }

  /** Every position's receipt-log entries, in position order. @throws {StorageError} `STORAGE_CORRUPT`. */
  *receiptPositions(): Generator<{ readonly position: number; readonly entries: unknown }> {
    for (const { key, value } of this.#range(RECEIPT_PREFIX)) yield { position: Number(key.slice(RECEIPT_PREFIX.length)), entries: this.#open(key, value) };
  }

  /**
   * How many times the store has been opened, this time included (restarts + 1).
   * @throws {StorageError} `STORAGE_CORRUPT` when its record is not a count.
   */
  get opens(): number {
    const opens = this.#read(OPENS_KEY);
    if (!isCountOfOpens(opens)) throw new StorageError('STORAGE_CORRUPT', this.path, `record ${JSON.stringify(OPENS_KEY)} is not a count of opens`);
    return opens;
  }

  /** Closes the environment. */
  async close(): Promise<void> {
    await this.#env.close();
  }
}
