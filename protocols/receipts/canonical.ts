/**
 * The canonical byte encodings of knhk's receipts: the receipt body (a leaf of the receipt log)
 * and the tree head (what replicas sign). This module is the one definition of those bytes; the
 * README of this folder documents them byte by byte so that an independent implementation can
 * reproduce them.
 *
 * Layout: a domain-separation tag (u32 length + ASCII), then the fields in a fixed order.
 * - unsigned integers: u64 big-endian, 8 bytes (values are limited to [0, 2^53 − 1]);
 * - byte strings: u32 big-endian length, then the bytes;
 * - text (identifiers, enum values): u32 big-endian length of the UTF-8 encoding, then the UTF-8
 *   bytes; only well-formed Unicode is encodable, so that distinct strings never share bytes.
 * There are no optional fields, no maps and no alternatives, so every value has exactly one
 * encoding, and the encoding parses back unambiguously. msgpack is not used for signed bytes: it
 * allows several encodings of one value.
 */
import type { ReceiptBody } from './receipt.js';
import type { TreeHead } from './tree-head.js';
import { ReceiptError } from './errors.js';
import { LEAF_PREFIX } from './merkle.js';
import { isWellFormed } from '../consensus/codec.js';

/** Domain-separation tag that opens every encoded receipt body. */
export const RECEIPT_TAG = 'knhk.receipt.v1';

/** Domain-separation tag that opens every encoded tree head. */
export const TREE_HEAD_TAG = 'knhk.tree-head.v1';

/**
 * The context string of tree-head signatures, for schemes that take one (ML-DSA, the composites,
 * SLH-DSA). Ed25519 and Falcon-512 take none; for them the tag inside the signed bytes is the
 * domain separation.
 */
export const TREE_HEAD_CONTEXT = 'knhk/tree-head/v1';

const utf8 = new TextEncoder();

/** Writes a canonical encoding into one growing buffer, which {@link reset} keeps for the next. */
class Writer {
  #bytes = new Uint8Array(256);
  #view = new DataView(this.#bytes.buffer);
  #length = 0;

  #reserve(extra: number): void {
    if (this.#length + extra <= this.#bytes.length) return;
    const grown = new Uint8Array(Math.max(this.#bytes.length * 2, this.#length + extra));
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
    this.#view = new DataView(grown.buffer);
  }

  /** Starts a new encoding in the same buffer. */
  reset(): this {
    this.#length = 0;
    return this;
  }

  /** One raw byte. */
  byte(value: number): this {
    this.#reserve(1);
    this.#bytes[this.#length++] = value;
    return this;
  }

  /** An unsigned integer as u64 big-endian (two u32 halves: the value is below 2^53). */
  u64(value: number, field: string): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new ReceiptError('NOT_ENCODABLE', `${field} must be an integer in [0, 2^53 − 1], not ${value}`);
    this.#reserve(8);
    this.#view.setUint32(this.#length, Math.floor(value / 2 ** 32), false);
    this.#view.setUint32(this.#length + 4, value % 2 ** 32, false);
    this.#length += 8;
    return this;
  }

  /** A byte string: u32 big-endian length, then the bytes. */
  bytes(value: Uint8Array, field: string): this {
    if (!(value instanceof Uint8Array) || value.length > 0xffffffff) throw new ReceiptError('NOT_ENCODABLE', `${field} must be a byte string`);
    this.#reserve(4 + value.length);
    this.#view.setUint32(this.#length, value.length, false);
    this.#bytes.set(value, this.#length + 4);
    this.#length += 4 + value.length;
    return this;
  }

  /** Text: its UTF-8 encoding as a byte string. */
  text(value: string, field: string): this {
    if (typeof value !== 'string' || !isWellFormed(value)) throw new ReceiptError('NOT_ENCODABLE', `${field} must be well-formed Unicode text`);
    // A UTF-16 code unit becomes at most 3 UTF-8 bytes.
    this.#reserve(4 + 3 * value.length);
    const { written } = utf8.encodeInto(value, this.#bytes.subarray(this.#length + 4));
    this.#view.setUint32(this.#length, written, false);
    this.#length += 4 + written;
    return this;
  }

  /** A copy of the bytes written. */
  finish(): Uint8Array {
    return this.#bytes.slice(0, this.#length);
  }

  /** The bytes written, in place: valid until the writer is reset. */
  view(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }
}

/** The writer of {@link receiptLeafInput}, whose buffer one leaf after another reuses. */
const leafWriter = new Writer();

/**
 * The canonical bytes of a receipt body: the leaf the receipt log stores for one committed
 * command. Field order: tag, version, cluster, protocol, sequence, view, batchIndex, client,
 * clientTimestamp, commandHash, stateHashBefore, stateHashAfter, timestamp, policy, leafIndex.
 * @throws {ReceiptError} `NOT_ENCODABLE` for an integer outside [0, 2^53 − 1] or ill-formed text.
 */
export function encodeReceiptBody(body: ReceiptBody): Uint8Array {
  return writeReceiptBody(new Writer(), body).finish();
}

/**
 * RFC 9162's input to a leaf hash, 0x00 ‖ the canonical bytes of `body` (§2.1.1), written into a
 * buffer that the next call overwrites: a replica hashes one leaf per command, and a fresh buffer
 * each time was a large share of that cost. Hash it before calling again.
 * @throws {ReceiptError} `NOT_ENCODABLE` as {@link encodeReceiptBody}.
 */
export function receiptLeafInput(body: ReceiptBody): Uint8Array {
  return writeReceiptBody(leafWriter.reset().byte(LEAF_PREFIX), body).view();
}

function writeReceiptBody(writer: Writer, body: ReceiptBody): Writer {
  return writer
    .text(RECEIPT_TAG, 'tag')
    .u64(body.version, 'version')
    .text(body.cluster, 'cluster')
    .text(body.protocol, 'protocol')
    .u64(body.sequence, 'sequence')
    .u64(body.view, 'view')
    .u64(body.batchIndex, 'batchIndex')
    .text(body.client, 'client')
    .u64(body.clientTimestamp, 'clientTimestamp')
    .bytes(body.commandHash, 'commandHash')
    .bytes(body.stateHashBefore, 'stateHashBefore')
    .bytes(body.stateHashAfter, 'stateHashAfter')
    .u64(body.timestamp, 'timestamp')
    .text(body.policy, 'policy')
    .u64(body.leafIndex, 'leafIndex');
}

/**
 * The canonical bytes of a tree head: what every replica signs. Field order: tag, version,
 * cluster, size, root, sequence, view, timestamp, policy.
 * @throws {ReceiptError} `NOT_ENCODABLE` for an integer outside [0, 2^53 − 1] or ill-formed text.
 */
export function encodeTreeHead(head: TreeHead): Uint8Array {
  return new Writer()
    .text(TREE_HEAD_TAG, 'tag')
    .u64(head.version, 'version')
    .text(head.cluster, 'cluster')
    .u64(head.size, 'size')
    .bytes(head.root, 'root')
    .u64(head.sequence, 'sequence')
    .u64(head.view, 'view')
    .u64(head.timestamp, 'timestamp')
    .text(head.policy, 'policy')
    .finish();
}
