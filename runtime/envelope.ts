/**
 * The envelope: routing and tracing metadata that travels with every message, and its binary
 * frame format at thread (and network) boundaries.
 *
 * A batch is the concatenation of frames; each frame is
 *
 *     u32 frame length (big-endian) | u16 header length | header (msgpack) | payload (msgpack)
 *
 * Header and payload are decoded separately, so a corrupt payload still yields a dead letter
 * that names its recipient, and routing never has to decode a payload.
 */
import { Packr } from 'msgpackr';
import { DecodeError, MessageTooLarge } from './errors.js';
import { t, type Infer } from './schema.js';

/** What an envelope carries. */
export const enum EnvelopeKind {
  Tell = 0,
  Ask = 1,
  Reply = 2,
  ReplyError = 3,
  /** Runtime signal (death watch, undeliverable notice); always urgent. */
  Signal = 4,
}

const headerSchema = t.object({
  kind: t.oneOf(EnvelopeKind.Tell, EnvelopeKind.Ask, EnvelopeKind.Reply, EnvelopeKind.ReplyError, EnvelopeKind.Signal),
  urgent: t.boolean(),
  to: t.string({ maxLength: 256 }),
  toIncarnation: t.uint(),
  from: t.optional(t.string({ maxLength: 256 })),
  fromIncarnation: t.optional(t.uint()),
  fromThread: t.uint(),
  correlation: t.optional(t.uint()),
  traceId: t.optional(t.string({ maxLength: 32 })),
  spanId: t.optional(t.string({ maxLength: 16 })),
  traceFlags: t.optional(t.uint(255)),
});

/** Routing and tracing metadata of one message. */
export type EnvelopeHeader = Infer<typeof headerSchema>;

/** A header plus the still-encoded payload. */
export interface Frame {
  readonly header: EnvelopeHeader;
  readonly payload: Uint8Array;
}

/** A frame whose header could not be decoded: the bytes are kept for the dead letter. */
export interface BadFrame {
  readonly error: DecodeError;
  readonly bytes: Uint8Array;
}

// Records (msgpackr "structures") are shared mutable state between encoder and decoder; two
// threads cannot share them, so they are off. Maps decode as plain objects for the schemas.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false });

const HEADER_FIELDS = ['kind', 'urgent', 'to', 'toIncarnation', 'from', 'fromIncarnation', 'fromThread', 'correlation', 'traceId', 'spanId', 'traceFlags'] as const;

/** Encodes any msgpack-able value; the result is a fresh buffer of exactly its size. */
export function encodeValue(value: unknown, limit: number): Uint8Array {
  const view = packr.pack(value);
  if (view.length > limit) throw new MessageTooLarge(view.length, limit);
  return new Uint8Array(view);
}

/** Decodes one msgpack value that must span `bytes` exactly. */
export function decodeValue(bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes);
  } catch (cause) {
    throw new DecodeError(`malformed msgpack payload (${bytes.length} bytes)`, { cause });
  }
}

function encodeHeader(header: EnvelopeHeader): Uint8Array {
  return packr.pack(HEADER_FIELDS.map((k) => header[k] ?? null));
}

function decodeHeader(bytes: Uint8Array): EnvelopeHeader {
  const raw = decodeValue(bytes);
  if (!Array.isArray(raw) || raw.length !== HEADER_FIELDS.length) throw new DecodeError('malformed envelope header');
  const obj: Record<string, unknown> = {};
  HEADER_FIELDS.forEach((k, i) => {
    if (raw[i] !== null) obj[k] = raw[i];
  });
  try {
    return headerSchema.parse(obj, '$header');
  } catch (cause) {
    throw new DecodeError('invalid envelope header', { cause });
  }
}

/**
 * Accumulates frames into one buffer; `take()` returns exactly the bytes written, in a fresh
 * `ArrayBuffer` that can be transferred without cloning a pool.
 */
export class BatchWriter {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;
  #count = 0;

  constructor(initial = 16 * 1024) {
    this.#buf = new Uint8Array(initial);
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Number of frames written since the last `take()`. */
  get count(): number {
    return this.#count;
  }

  /** Bytes written since the last `take()`. */
  get byteLength(): number {
    return this.#len;
  }

  /** Appends one frame. */
  push(header: EnvelopeHeader, payload: Uint8Array): void {
    const head = encodeHeader(header);
    const need = 6 + head.length + payload.length;
    this.#reserve(need);
    this.#view.setUint32(this.#len, 2 + head.length + payload.length);
    this.#view.setUint16(this.#len + 4, head.length);
    this.#buf.set(head, this.#len + 6);
    this.#buf.set(payload, this.#len + 6 + head.length);
    this.#len += need;
    this.#count++;
  }

  /** Returns the batch written so far and starts a new one. */
  take(): Uint8Array {
    const out = this.#buf.slice(0, this.#len);
    this.#len = 0;
    this.#count = 0;
    return out;
  }

  #reserve(need: number): void {
    if (this.#len + need <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }
}

/**
 * Splits a batch into frames (payload size limits are the receiver's to check). Never throws: a frame with a bad header, or a truncated tail,
 * comes out as a {@link BadFrame}; frames after a good one are still delivered.
 */
export function* readBatch(batch: Uint8Array): Generator<Frame | BadFrame> {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let at = 0;
  while (at < batch.length) {
    if (batch.length - at < 6) {
      yield { error: new DecodeError(`truncated frame: ${batch.length - at} trailing bytes`), bytes: batch.subarray(at) };
      return;
    }
    const len = view.getUint32(at);
    const headLen = view.getUint16(at + 4);
    if (at + 4 + len > batch.length || headLen + 2 > len) {
      yield { error: new DecodeError(`frame length ${len} is invalid or exceeds the batch`), bytes: batch.subarray(at) };
      return;
    }
    const bytes = batch.subarray(at + 6, at + 4 + len);
    at += 4 + len;
    try {
      const header = decodeHeader(bytes.subarray(0, headLen));
      yield { header, payload: bytes.subarray(headLen) };
    } catch (error) {
      yield { error: error instanceof DecodeError ? error : new DecodeError('bad frame', { cause: error }), bytes };
    }
  }
}

/** True when a value read from a batch is a bad frame. */
export function isBadFrame(x: Frame | BadFrame): x is BadFrame {
  return 'error' in x;
}
