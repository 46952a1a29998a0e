/**
 * The envelope: routing and tracing metadata that travels with every message, and its binary
 * frame format at thread (and network) boundaries.
 *
 * A batch is the concatenation of frames. A frame is a small fixed binary header followed by the
 * msgpack payload (all integers big-endian):
 *
 *     u32 length of the rest of the frame
 *     u8  flags: kind (bits 0-2) | urgent (bit 3) | has sender (4) | has correlation (5) | has trace (6)
 *     u32 recipient incarnation | u32 sender thread | u8 n | n bytes recipient name (UTF-8)
 *     [has sender]      u32 sender incarnation | u8 n | n bytes sender name
 *     [has correlation] u32 correlation id
 *     [has trace]       16 bytes trace id | 8 bytes span id | u8 trace flags
 *     payload (msgpack), to the end of the frame
 *
 * Header and payload are decoded separately, so a corrupt payload still yields a dead letter
 * that names its recipient, and routing never decodes a payload. The header is hand-laid rather
 * than msgpack because it is read and written once per message on the hottest path.
 */
import { Packr, RESET_BUFFER_MODE } from 'msgpackr';
import { ConfigError, DecodeError, MessageTooLarge } from './errors.js';

/** What an envelope carries. */
export const enum EnvelopeKind {
  Tell = 0,
  Ask = 1,
  Reply = 2,
  ReplyError = 3,
  /** Runtime signal (death watch, undeliverable notice); always urgent. */
  Signal = 4,
}

/** Routing and tracing metadata of one message. */
export interface EnvelopeHeader {
  readonly kind: EnvelopeKind;
  readonly urgent: boolean;
  readonly to: string;
  readonly toIncarnation: number;
  readonly from?: string;
  readonly fromIncarnation?: number;
  readonly fromThread: number;
  readonly correlation?: number;
  /** W3C trace id (32 hex digits) of the sender's active span. */
  readonly traceId?: string;
  /** W3C span id (16 hex digits) of the sender's active span. */
  readonly spanId?: string;
  readonly traceFlags?: number;
}

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

/** Longest actor name, in UTF-8 bytes (it is length-prefixed by one byte in the header). */
export const MAX_NAME_BYTES = 255;

const HAS_FROM = 0x10;
const HAS_CORRELATION = 0x20;
const HAS_TRACE = 0x40;
const URGENT = 0x08;
const KIND_MASK = 0x07;

// Records (msgpackr "structures") are shared mutable state between encoder and decoder; two
// threads cannot share them, so they are off. Maps decode as plain objects for the schemas.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false });

/** Deepest nesting a decoded value may have (also what stops cyclic values built by extensions). */
const MAX_DEPTH = 64;

/**
 * True if `value` is plain data: null, booleans, finite or non-finite numbers, strings, byte
 * arrays, arrays and plain objects, nested at most {@link MAX_DEPTH} deep. msgpackr's extension
 * types can decode into other things (errors, sets, regular expressions, even internal tables of
 * functions); none of them may pass the decode boundary.
 */
function isPlainData(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object') return typeof value !== 'function' && typeof value !== 'symbol';
  if (depth > MAX_DEPTH) return false;
  if (value instanceof Uint8Array) return Object.getPrototypeOf(value) === Uint8Array.prototype || Buffer.isBuffer(value);
  if (Array.isArray(value)) {
    for (const item of value) if (!isPlainData(item, depth + 1)) return false;
    return Object.getPrototypeOf(value) === Array.prototype;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key in value) if (!isPlainData((value as Record<string, unknown>)[key], depth + 1)) return false;
  return true;
}

/**
 * Encodes a value. The result is a view into msgpackr's pooled buffer, valid only until the next
 * encode: copy it (as a batch does) before encoding anything else.
 */
export function encodeValueView(value: unknown, limit: number): Uint8Array {
  // Every caller copies the view at once, so msgpackr may write each value over the last one
  // instead of filling (and reallocating) its buffer.
  const view = packr.pack(value, RESET_BUFFER_MODE);
  if (view.length > limit) throw new MessageTooLarge(view.length, limit);
  return view;
}

/** Encodes any msgpack-able value into a buffer of its own, of exactly its size. */
export function encodeValue(value: unknown, limit: number): Uint8Array {
  return new Uint8Array(encodeValueView(value, limit));
}

// A received frame's payload is copied out of its batch at once (see `readBatch`): the batch's
// buffer then goes back to the thread that sent it, and a byte field, which decodes as a view into
// its payload, never pins a whole batch. Payloads up to vote size share 64 KB slabs (allocating a
// buffer per message costs more than decoding it); a retained field pins at most one slab.
const SLAB_BYTES = 64 * 1024;
const SLAB_MAX_PAYLOAD = 4 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

function ownCopy(bytes: Uint8Array): Uint8Array {
  // Not `bytes.slice()`: on a Buffer (msgpackr's output is one) that is a view, not a copy.
  if (bytes.length > SLAB_MAX_PAYLOAD) return new Uint8Array(bytes);
  if (slabUsed + bytes.length > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const copy = slab.subarray(slabUsed, slabUsed + bytes.length);
  copy.set(bytes);
  slabUsed += bytes.length;
  return copy;
}

/**
 * Encodes a value for a frame that stays in this thread: like {@link encodeValue}, but a small
 * payload shares a slab with others instead of costing an allocation of its own.
 */
export function encodeLocalPayload(value: unknown, limit: number): Uint8Array {
  return ownCopy(encodeValueView(value, limit));
}

/**
 * Decodes one msgpack value that must span `bytes` exactly and be plain data. Byte fields of the
 * value are views into `bytes`, which the caller must therefore own.
 */
export function decodeValue(bytes: Uint8Array): unknown {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (cause) {
    throw new DecodeError(`malformed msgpack payload (${bytes.length} bytes)`, { cause });
  }
  if (!isPlainData(value, 0)) throw new DecodeError('payload decodes to something other than plain data (an extension type, or nesting too deep)');
  return value;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const nameCache = new Map<string, Uint8Array>();

/** The UTF-8 bytes of an actor name; throws `ConfigError` past {@link MAX_NAME_BYTES}. */
export function nameBytes(name: string): Uint8Array {
  let bytes = nameCache.get(name);
  if (bytes) return bytes;
  bytes = utf8.encode(name);
  if (bytes.length > MAX_NAME_BYTES) throw new ConfigError(`actor name longer than ${MAX_NAME_BYTES} bytes: ${name.slice(0, 32)}…`);
  if (nameCache.size > 4096) nameCache.clear();
  nameCache.set(name, bytes);
  return bytes;
}

// Frames of one batch mostly name the same few actors: remember the last names decoded and reuse
// the string when the bytes match, instead of decoding it again for every frame.
const recentNames: { bytes: Uint8Array; name: string }[] = [];

function sameBytes(a: Uint8Array, b: Uint8Array, at: number, len: number): boolean {
  if (a.length !== len) return false;
  for (let i = 0; i < len; i++) if (a[i] !== b[at + i]) return false;
  return true;
}

function sameRange(bytes: Uint8Array, a: number, b: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (bytes[a + i] !== bytes[b + i]) return false;
  return true;
}

function readName(bytes: Uint8Array, at: number, len: number): string {
  for (const recent of recentNames) if (sameBytes(recent.bytes, bytes, at, len)) return recent.name;
  const raw = bytes.slice(at, at + len);
  let ascii = true;
  for (let i = 0; i < len; i++) if ((raw[i] as number) >= 0x80) ascii = false;
  const name = ascii ? String.fromCharCode.apply(null, raw as unknown as number[]) : utf8Strict.decode(raw);
  if (recentNames.length >= 4) recentNames.shift();
  recentNames.push({ bytes: raw, name });
  return name;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function toHex(bytes: Uint8Array, at: number, len: number): string {
  let out = '';
  for (let i = at; i < at + len; i++) out += HEX[bytes[i] as number];
  return out;
}

function writeHex(target: Uint8Array, at: number, hex: string): void {
  for (let i = 0; i < hex.length / 2; i++) target[at + i] = parseInt(hex.substr(i * 2, 2), 16);
}

// The largest frame header: fixed fields, two names, correlation and trace.
const MAX_HEADER_BYTES = 4 + 1 + 9 + MAX_NAME_BYTES + 5 + MAX_NAME_BYTES + 4 + 25;

/**
 * A batch at least this large leaves in the writer's own buffer; a smaller one is copied into a
 * spare or a buffer of its own size.
 */
export const RECYCLE_BYTES = 16 * 1024;

/**
 * A batch smaller than this is an exact-size copy of its own, which `postMessage` clones and the
 * receiver keeps: for a message or two, copying costs less than transferring a buffer, wrapping it
 * again in the other thread and sending it back, which an ask round trip pays on each hop.
 */
export const CLONE_BYTES = 1024;

// Spare buffers a writer keeps; more than a few in hand means the receiver returns them faster
// than this side fills them, and the rest may as well be collected.
const MAX_SPARES = 8;

/**
 * Accumulates frames into one buffer. `take()` returns exactly the bytes written, in a buffer of
 * their own, so that posting them never clones a pool: a small batch as a copy (in a spare when
 * it is not to be cloned), a large one as the writer's own buffer, which is then replaced by a
 * spare (see {@link BatchWriter.recycle}) or a new one. Allocating a buffer for every batch costs
 * more than filling it, so buffers travel back and forth between two threads instead.
 */
export class BatchWriter {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;
  #count = 0;
  readonly #capacity: number;
  readonly #spares: ArrayBuffer[] = [];
  /** Batches that left in a buffer handed back by the receiver rather than a new one. */
  reused = 0;

  /** `capacity`: the size of a new buffer (a frame larger than it grows the buffer). */
  constructor(capacity = 16 * 1024) {
    this.#capacity = capacity;
    this.#buf = new Uint8Array(capacity);
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

  /** Appends one frame (the payload is copied, so a pooled view is fine). */
  push(header: EnvelopeHeader, payload: Uint8Array): void {
    const to = nameBytes(header.to);
    const from = header.from === undefined ? undefined : nameBytes(header.from);
    const traced = header.traceId !== undefined && header.spanId !== undefined;
    const size = 4 + 1 + 9 + to.length + (from ? 5 + from.length : 0) + (header.correlation === undefined ? 0 : 4) + (traced ? 25 : 0) + payload.length;
    this.#reserve(size);
    const buf = this.#buf;
    const view = this.#view;
    let at = this.#len;
    view.setUint32(at, size - 4);
    buf[at + 4] = header.kind | (header.urgent ? URGENT : 0) | (from ? HAS_FROM : 0) | (header.correlation === undefined ? 0 : HAS_CORRELATION) | (traced ? HAS_TRACE : 0);
    view.setUint32(at + 5, header.toIncarnation);
    view.setUint32(at + 9, header.fromThread);
    buf[at + 13] = to.length;
    buf.set(to, at + 14);
    at += 14 + to.length;
    if (from) {
      view.setUint32(at, header.fromIncarnation ?? 0);
      buf[at + 4] = from.length;
      buf.set(from, at + 5);
      at += 5 + from.length;
    }
    if (header.correlation !== undefined) {
      view.setUint32(at, header.correlation);
      at += 4;
    }
    if (traced) {
      writeHex(buf, at, header.traceId as string);
      writeHex(buf, at + 16, header.spanId as string);
      buf[at + 24] = header.traceFlags ?? 0;
      at += 25;
    }
    buf.set(payload, at);
    this.#len = at + payload.length;
    this.#count++;
  }

  /**
   * Returns the batch written so far and starts a new one. The result owns its whole buffer,
   * which may be larger than the batch.
   */
  take(): Uint8Array {
    const len = this.#len;
    this.#len = 0;
    this.#count = 0;
    if (len < RECYCLE_BYTES) {
      const spare = len < CLONE_BYTES ? undefined : this.#spareFor(len);
      if (!spare) return this.#buf.slice(0, len);
      this.reused++;
      const out = new Uint8Array(spare, 0, len);
      out.set(this.#buf.subarray(0, len));
      return out;
    }
    const out = this.#buf.subarray(0, len);
    const spare = this.#spareFor(this.#capacity);
    if (spare) this.reused++;
    this.#buf = spare ? new Uint8Array(spare) : new Uint8Array(this.#capacity);
    this.#view = new DataView(this.#buf.buffer);
    return out;
  }

  /**
   * Takes back the buffer of a batch this writer produced, once its receiver is done with it. A
   * few are kept, the largest when more come back than that (a full hand of small ones must not
   * turn away the buffers large batches need); the smallest that fits serves the next batch.
   */
  recycle(buffer: ArrayBuffer): void {
    if (this.#spares.length < MAX_SPARES) {
      this.#spares.push(buffer);
      return;
    }
    let smallest = 0;
    for (let i = 1; i < this.#spares.length; i++) if ((this.#spares[i] as ArrayBuffer).byteLength < (this.#spares[smallest] as ArrayBuffer).byteLength) smallest = i;
    if ((this.#spares[smallest] as ArrayBuffer).byteLength < buffer.byteLength) this.#spares[smallest] = buffer;
  }

  #spareFor(len: number): ArrayBuffer | undefined {
    let best = -1;
    for (let i = 0; i < this.#spares.length; i++) {
      const size = (this.#spares[i] as ArrayBuffer).byteLength;
      if (size >= len && (best < 0 || size < (this.#spares[best] as ArrayBuffer).byteLength)) best = i;
    }
    if (best < 0) return undefined;
    const spare = this.#spares[best] as ArrayBuffer;
    this.#spares[best] = this.#spares[this.#spares.length - 1] as ArrayBuffer;
    this.#spares.pop();
    return spare;
  }

  /** True if a frame of `payloadBytes` would no longer fit in the current buffer. */
  full(payloadBytes: number): boolean {
    return this.#len + MAX_HEADER_BYTES + payloadBytes > this.#buf.length;
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

// Where the payload of the header just decoded starts (saves an allocation per frame).
let payloadAt = 0;

function decodeHeader(bytes: Uint8Array, view: DataView, start: number, end: number): EnvelopeHeader {
  const need = (at: number, n: number): void => {
    if (at + n > end) throw new DecodeError('frame header runs past the end of the frame');
  };
  need(start, 10);
  const flags = bytes[start] as number;
  const kind = flags & KIND_MASK;
  if (kind > EnvelopeKind.Signal || flags & 0x80) throw new DecodeError(`unknown frame flags 0x${flags.toString(16)}`);
  const toIncarnation = view.getUint32(start + 1);
  const fromThread = view.getUint32(start + 5);
  const toLen = bytes[start + 9] as number;
  need(start + 10, toLen);
  let at = start + 10 + toLen;
  const header: { -readonly [K in keyof EnvelopeHeader]: EnvelopeHeader[K] } = {
    kind,
    urgent: (flags & URGENT) !== 0,
    to: readName(bytes, start + 10, toLen),
    toIncarnation,
    fromThread,
  };
  if (flags & HAS_FROM) {
    need(at, 5);
    header.fromIncarnation = view.getUint32(at);
    const fromLen = bytes[at + 4] as number;
    need(at + 5, fromLen);
    header.from = readName(bytes, at + 5, fromLen);
    at += 5 + fromLen;
  }
  if (flags & HAS_CORRELATION) {
    need(at, 4);
    header.correlation = view.getUint32(at);
    at += 4;
  }
  if (flags & HAS_TRACE) {
    need(at, 25);
    header.traceId = toHex(bytes, at, 16);
    header.spanId = toHex(bytes, at + 16, 8);
    header.traceFlags = bytes[at + 24] as number;
    at += 25;
  }
  payloadAt = at;
  return header;
}

/**
 * Splits a batch into frames (payload size limits are the receiver's to check). Never throws: a
 * frame with a bad header, or a truncated tail, comes out as a {@link BadFrame}; frames after a
 * bad header whose length field was sound are still delivered. Payloads, and a bad frame's bytes,
 * are copies: nothing returned refers to `batch`, whose buffer may be reused once this returns.
 */
export function readBatch(batch: Uint8Array): (Frame | BadFrame)[] {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const out: (Frame | BadFrame)[] = [];
  // Consecutive frames between the same two actors usually carry byte-identical headers; such a
  // header is decoded once and the (immutable) object shared.
  let previous: EnvelopeHeader | undefined;
  let previousStart = 0;
  let previousLength = 0;
  let at = 0;
  while (at < batch.length) {
    if (batch.length - at < 4) {
      out.push({ error: new DecodeError(`truncated frame: ${batch.length - at} trailing bytes`), bytes: new Uint8Array(batch.subarray(at)) });
      break;
    }
    const end = at + 4 + view.getUint32(at);
    if (end > batch.length) {
      out.push({ error: new DecodeError(`frame length ${end - at - 4} exceeds the ${batch.length - at - 4} bytes left in the batch`), bytes: new Uint8Array(batch.subarray(at)) });
      break;
    }
    try {
      let header: EnvelopeHeader;
      if (previous && end - at - 4 >= previousLength && sameRange(batch, previousStart, at + 4, previousLength)) {
        header = previous;
        payloadAt = at + 4 + previousLength;
      } else {
        header = decodeHeader(batch, view, at + 4, end);
        previous = header;
        previousStart = at + 4;
        previousLength = payloadAt - previousStart;
      }
      out.push({ header, payload: ownCopy(batch.subarray(payloadAt, end)) });
    } catch (error) {
      out.push({ error: error instanceof DecodeError ? error : new DecodeError('bad frame header', { cause: error }), bytes: new Uint8Array(batch.subarray(at, end)) });
    }
    at = end;
  }
  return out;
}

/** True when a value read from a batch is a bad frame. */
export function isBadFrame(x: Frame | BadFrame): x is BadFrame {
  return 'error' in x;
}
