/**
 * A replica's receipt log (protocols/receipts): a Merkle log with one leaf per executed command,
 * its receipt bodies kept in the replica's LMDB store by position, and the tree head after each
 * executed position, which the replica may sign. Rebuilt from the store when the replica restarts.
 *
 * A replica that jumped over positions by state transfer never saw their commands: its log has a
 * gap. Until the gap is filled with the bodies a peer holds for those positions ({@link fill}),
 * later positions wait and no tree head is offered for signing — a head over a log with a hole
 * would be a fork of everyone else's. Filled bodies are checked against what the replica knows:
 * their positions, that they are bodies this log would have built (its cluster, protocol and
 * policy; one view, timestamp and pair of state hashes per position), and the state hash the
 * jump landed on; what lies between, only agreement among peers vouches for (receipt-fill.ts).
 * Bodies are stored compactly (receipt-record.ts).
 *
 * Given its replica's node id, a journal reports its size (`receipt.log.entries`) and the receipts
 * it assembles (`receipt.generated`, `crypto.receipt.generated`), see crypto-telemetry.ts.
 */
import { commandKey, decode, sameBytes, type AppliedEntry, type Digest } from '../protocols/consensus/index.js';
import {
  BatchAppend,
  MerkleLog,
  buildReceipt,
  receiptLeafHash,
  type LogContext,
  type Receipt,
  type ReceiptBody,
  type SignedTreeHead,
  type TreeHead,
} from '../protocols/receipts/index.js';
import { INSTRUMENTED, nextTurn, type Measure } from '../runtime/index.js';
import { ReceiptTelemetry } from './crypto-telemetry.js';
import { fromRecord, isPositionOfLog, toRecord } from './receipt-record.js';
import type { ReplicaStore } from './replica-store.js';
import { StorageError } from './replica-store.js';
import { RecentMap } from './recent-map.js';

/** Commands whose receipts a replica can find by client and timestamp: the latest this many at least, twice as many at most (older ones: by position only). */
const INDEXED_COMMANDS = 100_000;

/** Most positions one fill request asks for. */
export const FILL_POSITIONS = 128;

/** Where a command's receipt body is. */
interface Located {
  readonly position: number;
  readonly batchIndex: number;
}

/** The receipt bodies of one position, as stored and as sent to a replica filling a gap. */
export interface PositionBodies {
  readonly position: number;
  readonly bodies: readonly ReceiptBody[];
}


/** How long one stretch of leaf hashing runs: half the 8-tick budget, ms. */
const HASHING_SLICE_MS = 0.5;
/** Leaves hashed between two looks at the clock. */
const HASHING_STRIDE = 16;

/** Hashes leaves of `append` for about {@link HASHING_SLICE_MS}; true once all are hashed. */
function hashForAWhile(append: BatchAppend): boolean {
  const until = performance.now() + HASHING_SLICE_MS;
  do append.advance(HASHING_STRIDE);
  while (!append.done && performance.now() < until);
  return append.done;
}

/** The receipt log of one replica. */
export class ReceiptJournal {
  readonly #store: ReplicaStore;
  readonly #context: LogContext;
  readonly #onHead: (head: TreeHead) => void;
  readonly #telemetry: ReceiptTelemetry | undefined;
  readonly #log = new MerkleLog();
  readonly #index = new RecentMap<string, Located>(INDEXED_COMMANDS);
  /** The last position written to the log and the store (0 before any). */
  #position = 0;
  /** The last position taken for writing (ahead of {@link #position} while writes are in flight). */
  #accepted = 0;
  /** Positions up to `to` are missing (state transfer jumped there, landing on `stateHash`). */
  #gap: { to: number; stateHash: Digest } | undefined;
  /** Executions after the gap, appended once it is filled. */
  #queued: AppliedEntry[] = [];
  /** Appends in progress, one after the other. */
  #writing: Promise<void> = Promise.resolve();
  /** Set by {@link close}: nothing more is appended. */
  #closed = false;

  readonly #measure: Measure;

  private constructor(store: ReplicaStore, context: LogContext, onHead: (head: TreeHead) => void, telemetry: ReceiptTelemetry | undefined, measure: Measure | undefined) {
    this.#store = store;
    this.#context = context;
    this.#onHead = onHead;
    this.#telemetry = telemetry;
    this.#measure = measure ?? ((work) => work());
  }

  /**
   * The journal in `store`, rebuilt from its records; `onHead` receives the tree head after each
   * position appended from now on. Positions stored after a missing one (a thread killed while
   * its writes were in flight) are dropped: the log is what is consecutive, and the rest comes
   * back by replay or from a peer.
   * @param options.nodeId The replica's, which labels the journal's telemetry; without it the
   *   journal reports none, since its metrics and events require it.
   * @param options.measure Runs each synchronous stretch of appending (an actor's
   *   `ActorContext.measure`, so that it counts against the replica's tick budget).
   * @throws {StorageError} `STORAGE_CORRUPT` when a record is damaged.
   */
  static async open(
    store: ReplicaStore,
    context: LogContext,
    onHead: (head: TreeHead) => void,
    options: { readonly nodeId?: number; readonly measure?: Measure } = {},
  ): Promise<ReceiptJournal> {
    const { nodeId } = options;
    const telemetry = nodeId === undefined || !INSTRUMENTED ? undefined : new ReceiptTelemetry(context.protocol, nodeId);
    const journal = new ReceiptJournal(store, context, onHead, telemetry, options.measure);
    const beyondHole: number[] = [];
    for (const { position, entries } of store.receiptPositions()) {
      if (beyondHole.length > 0 || position !== journal.#position + 1) {
        beyondHole.push(position);
        continue;
      }
      const bodies = journal.#expand(position, entries);
      journal.#log.appendLeafHashes(bodies.map(receiptLeafHash));
      journal.#remember(bodies);
      journal.#position = position;
      journal.#accepted = position;
    }
    if (beyondHole.length > 0) await store.dropReceipts(beyondHole);
    telemetry?.logSize(journal.size);
    return journal;
  }

  /** False while the log has a gap. */
  get complete(): boolean {
    return this.#gap === undefined;
  }

  /** Leaves in the log. */
  get size(): number {
    return this.#log.size;
  }

  /** The positions a peer should supply, while there is a gap. */
  missing(): { readonly from: number; readonly to: number } | undefined {
    return this.#gap === undefined ? undefined : { from: this.#accepted + 1, to: Math.min(this.#gap.to, this.#accepted + FILL_POSITIONS) };
  }

  /** Appends an executed position's commands (after any gap is filled) and makes them durable. */
  append(entry: AppliedEntry): Promise<void> {
    // Positions skipped without a state transfer report: a gap all the same, ending where this entry's state began.
    if (this.#gap === undefined && entry.position > this.#accepted + 1) this.skipTo(entry.position - 1, entry.stateHashBefore);
    if (this.#gap !== undefined) {
      if (entry.position > this.#gap.to) this.#queued.push(entry);
      return this.#writing;
    }
    return this.#write(entry);
  }

  /** State transfer moved the replica to `position`, whose state hashes to `stateHash`, without executing what came before. */
  skipTo(position: number, stateHash: Digest): void {
    if (position <= this.#accepted || (this.#gap !== undefined && position <= this.#gap.to)) return;
    this.#gap = { to: position, stateHash };
    this.#queued = this.#queued.filter((entry) => entry.position > position);
  }

  /** The stored bodies of positions `from` … `to` that this replica holds, in order, stopping at the first it lacks. */
  bodies(from: number, to: number): PositionBodies[] {
    const out: PositionBodies[] = [];
    for (let position = from; position <= Math.min(to, from + FILL_POSITIONS - 1); position++) {
      const bodies = this.#stored(position);
      if (bodies === undefined) break;
      out.push({ position, bodies });
    }
    return out;
  }

  /**
   * The bodies stored for `position`, if any.
   * @throws {StorageError} `STORAGE_CORRUPT` when its record is damaged.
   */
  #stored(position: number): ReceiptBody[] | undefined {
    const record = this.#store.receipts(position);
    return record === undefined ? undefined : this.#expand(position, record);
  }

  #expand(position: number, record: unknown): ReceiptBody[] {
    try {
      return fromRecord(record, position, this.#context);
    } catch (cause) {
      throw new StorageError('STORAGE_CORRUPT', this.#store.path, `receipt record of position ${position} is malformed`, { cause });
    }
  }

  /**
   * Fills (part of) the gap with bodies a peer sent, encoded as {@link bodies} returns them.
   * @returns false, changing nothing, when they do not fit: wrong positions or cluster, malformed,
   *   or a last position whose state hash is not the one state transfer landed on.
   */
  async fill(encoded: Uint8Array): Promise<boolean> {
    const gap = this.#gap;
    const wanted = this.missing();
    if (gap === undefined || wanted === undefined || this.#closed) return false;
    let records: PositionBodies[];
    let leaves: Digest[][];
    try {
      const sent = decode(encoded) as PositionBodies[];
      if (!Array.isArray(sent) || sent.length === 0) return false;
      records = sent.map((record, i) => {
        if (record.position !== wanted.from + i || record.position > gap.to) throw new Error('out of place');
        // Only bodies built as this log builds them can be stored compactly and read back the same;
        // what is kept is what the store gives back (its schema refuses fields of the wrong type).
        if (!Array.isArray(record.bodies) || !isPositionOfLog(record.bodies, record.position, this.#context)) throw new Error('foreign');
        return { position: record.position, bodies: fromRecord(toRecord(record.bodies), record.position, this.#context) };
      });
      const last = records[records.length - 1] as PositionBodies;
      const landing = last.bodies[last.bodies.length - 1];
      if (last.position === gap.to && landing !== undefined && !sameBytes(landing.stateHashAfter, gap.stateHash)) return false;
      leaves = records.map((record) => record.bodies.map(receiptLeafHash));
    } catch {
      return false;
    }
    this.#accepted = (records[records.length - 1] as PositionBodies).position;
    this.#writing = this.#writing.then(async () => {
      for (const [i, record] of records.entries()) {
        await this.#measure(() => {
          this.#log.appendLeafHashes(leaves[i] as Digest[]);
          this.#remember(record.bodies);
          this.#position = record.position;
          return this.#store.putReceipts(record.position, toRecord(record.bodies));
        });
        this.#telemetry?.logSize(this.#log.size);
      }
    });
    await this.#writing;
    // A state transfer further ahead, meanwhile, left a gap of its own beyond this one (skipTo):
    // clearing it would append later positions over a hole, and the log would fork from its peers'.
    if (this.#gap === gap && this.#accepted >= gap.to) {
      this.#gap = undefined;
      const queued = this.#queued;
      this.#queued = [];
      for (const entry of queued) void this.#write(entry);
      await this.#writing;
    }
    return true;
  }

  /**
   * Stops appending and waits for the write under way: a batch still being hashed is dropped at
   * its next stretch, as a crash would drop it (replay or a peer brings it back).
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#writing.catch(() => undefined);
  }

  #write(entry: AppliedEntry): Promise<void> {
    if (this.#closed || entry.position <= this.#accepted) return this.#writing;
    this.#accepted = entry.position;
    this.#writing = this.#writing.then(async () => {
      // A large batch is hashed over several turns, so that its replica goes on answering
      // meanwhile (DESIGN.md "Time budgets"); the log takes its leaves all at once at the end.
      const append = new BatchAppend(this.#log, entry, this.#context);
      while (!this.#measure(() => hashForAWhile(append))) {
        await nextTurn();
        if (this.#closed) return;
      }
      const [record, written] = this.#measure(() => {
        const record = append.finish();
        this.#position = entry.position;
        return [record, this.#store.putReceipts(entry.position, toRecord(record.bodies))] as const;
      });
      await written;
      // Indexed once stored, in a stretch of its own: indexing 512 commands takes half a millisecond.
      this.#measure(() => {
        this.#remember(record.bodies);
        this.#telemetry?.logSize(this.#log.size);
        this.#onHead(record.treeHead);
      });
    });
    return this.#writing;
  }

  /** The position of the command (`client`, `timestamp`), if this replica executed it recently. */
  positionOf(client: string, timestamp: number): number | undefined {
    return this.#index.get(commandKey({ client, timestamp }))?.position;
  }

  /**
   * The receipt of the command (`client`, `timestamp`) under `signed`, or undefined when this
   * replica cannot make it (it never executed the command, or its log does not match the head).
   */
  receipt(client: string, timestamp: number, signed: SignedTreeHead): Receipt | undefined {
    const at = this.#index.get(commandKey({ client, timestamp }));
    if (at === undefined) return undefined;
    const body = this.#stored(at.position)?.[at.batchIndex];
    if (body === undefined) return undefined;
    let receipt: Receipt;
    try {
      receipt = buildReceipt(body, this.#log, signed);
    } catch {
      return undefined;
    }
    this.#telemetry?.generated([receipt]);
    return receipt;
  }

  /** The receipts of every command executed at `position` under `signed`, or undefined when this replica cannot make them. */
  receiptsAt(position: number, signed: SignedTreeHead): Receipt[] | undefined {
    const bodies = this.#stored(position);
    if (bodies === undefined) return undefined;
    let receipts: Receipt[];
    try {
      receipts = bodies.map((body) => buildReceipt(body, this.#log, signed));
    } catch {
      return undefined;
    }
    this.#telemetry?.generated(receipts);
    return receipts;
  }

  #remember(bodies: readonly ReceiptBody[]): void {
    for (const body of bodies) {
      this.#index.set(commandKey({ client: body.client, timestamp: body.clientTimestamp }), { position: body.sequence, batchIndex: body.batchIndex });
    }
  }
}
