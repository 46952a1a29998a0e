/**
 * A replica's receipt log (protocols/receipts): a Merkle log with one leaf per executed command,
 * its receipt bodies kept in the replica's LMDB store by position, and the tree head after each
 * executed position, which the replica signs. Rebuilt from the store when the replica restarts.
 *
 * A replica that jumped over positions by state transfer never saw their commands, so its log
 * has a hole: it is then `complete: false` and signs no more tree heads (a head over a log with a
 * hole would be a fork of everyone else's). Its peers keep the cluster's receipts going; filling
 * the hole from a peer's leaves is future work.
 */
import type { AppliedEntry } from '../protocols/consensus/index.js';
import {
  MerkleLog,
  appendBatch,
  buildReceipt,
  receiptLeafHash,
  type LogContext,
  type Receipt,
  type ReceiptBody,
  type SignedTreeHead,
  type TreeHead,
} from '../protocols/receipts/index.js';
import type { ReplicaStore } from './replica-store.js';
import { StorageError } from './replica-store.js';

/** Commands whose receipts a replica can find by client and timestamp (older ones: by position only). */
const INDEXED_COMMANDS = 200_000;

/** Where a command's receipt body is. */
interface Located {
  readonly position: number;
  readonly batchIndex: number;
}

const commandKey = (client: string, timestamp: number): string => `${client}\u0000${timestamp}`;

/** The receipt log of one replica. */
export class ReceiptJournal {
  readonly #store: ReplicaStore;
  readonly #context: LogContext;
  readonly #log = new MerkleLog();
  readonly #index = new Map<string, Located>();
  /** The last position appended (0 before any). */
  #position = 0;
  #complete = true;

  private constructor(store: ReplicaStore, context: LogContext) {
    this.#store = store;
    this.#context = context;
  }

  /**
   * The journal in `store`, rebuilt from its records.
   * @throws {StorageError} `STORAGE_CORRUPT` when a record is damaged or positions are out of order.
   */
  static open(store: ReplicaStore, context: LogContext): ReceiptJournal {
    const journal = new ReceiptJournal(store, context);
    for (const { position, entries } of store.receiptPositions()) {
      const record = entries as { readonly complete: boolean; readonly bodies: readonly ReceiptBody[] };
      if (position <= journal.#position) throw new StorageError('STORAGE_CORRUPT', store.path, `receipt position ${position} is out of order`);
      if (!record.complete) journal.#complete = false;
      try {
        journal.#log.appendLeafHashes(record.bodies.map(receiptLeafHash));
      } catch (cause) {
        throw new StorageError('STORAGE_CORRUPT', store.path, `receipt bodies of position ${position} are malformed`, { cause });
      }
      journal.#remember(record.bodies);
      journal.#position = position;
    }
    return journal;
  }

  /** False once the log has a hole (see the module comment). */
  get complete(): boolean {
    return this.#complete;
  }

  /** Leaves in the log. */
  get size(): number {
    return this.#log.size;
  }

  /**
   * Appends an executed position's commands and makes them durable; answers the tree head to
   * sign, or undefined when there is none to sign (a position already appended — a replay after
   * a restart —, or a log with a hole).
   */
  async append(entry: AppliedEntry): Promise<TreeHead | undefined> {
    if (entry.position <= this.#position) return undefined;
    if (entry.position !== this.#position + 1) this.#complete = false;
    const record = appendBatch(this.#log, entry, this.#context);
    this.#position = entry.position;
    this.#remember(record.bodies);
    await this.#store.putReceipts(entry.position, { complete: this.#complete, bodies: record.bodies });
    return this.#complete ? record.treeHead : undefined;
  }

  /** A position this replica jumped to without executing what came before (state transfer). */
  skipTo(position: number): void {
    if (position > this.#position) this.#complete = false;
  }

  /** The position of the command (`client`, `timestamp`), if this replica executed it recently. */
  positionOf(client: string, timestamp: number): number | undefined {
    return this.#index.get(commandKey(client, timestamp))?.position;
  }

  /**
   * The receipt of the command (`client`, `timestamp`) under `signed`, or undefined when this
   * replica cannot make it (it never executed the command, or its log does not match the head).
   */
  receipt(client: string, timestamp: number, signed: SignedTreeHead): Receipt | undefined {
    const at = this.#index.get(commandKey(client, timestamp));
    if (at === undefined) return undefined;
    const record = this.#store.receipts(at.position) as { readonly bodies: readonly ReceiptBody[] } | undefined;
    const body = record?.bodies[at.batchIndex];
    if (body === undefined) return undefined;
    try {
      return buildReceipt(body, this.#log, signed);
    } catch {
      return undefined;
    }
  }

  /** The receipts of every command executed at `position` under `signed`, or undefined when this replica cannot make them. */
  receiptsAt(position: number, signed: SignedTreeHead): Receipt[] | undefined {
    const record = this.#store.receipts(position) as { readonly bodies: readonly ReceiptBody[] } | undefined;
    if (record === undefined) return undefined;
    try {
      return record.bodies.map((body) => buildReceipt(body, this.#log, signed));
    } catch {
      return undefined;
    }
  }

  #remember(bodies: readonly ReceiptBody[]): void {
    for (const body of bodies) {
      this.#index.set(commandKey(body.client, body.clientTimestamp), { position: body.sequence, batchIndex: body.batchIndex });
      if (this.#index.size > INDEXED_COMMANDS) this.#index.delete(this.#index.keys().next().value as string);
    }
  }
}
