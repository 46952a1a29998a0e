/**
 * The byte form of protocol values: msgpack without record extensions, so any msgpack
 * implementation reads it. A value's digest (SHA-256 of its encoding) is what replicas sign and
 * what certificates vouch for. Field order is part of the encoding: messages are built with their
 * fields in schema order, and a decoded message re-encodes to the bytes that were signed.
 */
import { hash } from 'node:crypto';
import { Packr } from 'msgpackr';
import type { Schema } from '../../schema/schema.js';
import { ConsensusError } from './errors.js';

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

/** A 32-byte SHA-256 digest. */
export type Digest = Uint8Array;

/** Encodes a protocol value to msgpack bytes. */
export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes msgpack bytes; the caller validates the result with the value's schema. */
export function decode(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/**
 * Decodes and validates bytes a replica stored itself (snapshots, durable records).
 * @throws {ConsensusError} `CORRUPT_STATE` naming `what` when they are not such a value.
 */
export function decodeStored<T>(bytes: Uint8Array, schema: Schema<T>, what: string): T {
  try {
    return schema.parse(decode(bytes));
  } catch (cause) {
    throw new ConsensusError('CORRUPT_STATE', `${what} does not decode`, { cause });
  }
}

/**
 * Record `key` of a core's durable records (CoreOptions.durable), validated; undefined when absent.
 * @throws {ConsensusError} `CORRUPT_STATE` naming `what` and the key when it fails `schema`.
 */
export function readStored<T>(durable: ReadonlyMap<string, unknown>, key: string, schema: Schema<T>, what: string): T | undefined {
  const value = durable.get(key);
  if (value === undefined) return undefined;
  try {
    return schema.parse(value, key);
  } catch (cause) {
    throw new ConsensusError('CORRUPT_STATE', `durable ${what} record ${key} does not parse`, { cause });
  }
}

const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Whether `text` is well-formed Unicode (no lone surrogate). Only such text survives encoding:
 * msgpack and UTF-8 write a lone surrogate as U+FFFD, so two different strings would encode alike.
 */
export function isWellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/** SHA-256 of raw bytes (node:crypto's: replicas and the simulator hash every message). */
export function hashBytes(bytes: Uint8Array): Digest {
  return hash('sha256', bytes, 'buffer');
}

/** SHA-256 of a value's encoding. */
export function digestOf(value: unknown): Digest {
  return hashBytes(encode(value));
}

/** Byte-wise equality of two digests (or any byte strings). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lower-case hex, for map keys, traces and error messages. */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** The all-zero digest: the parent of a genesis block, the state hash of nothing. */
export const ZERO_DIGEST: Digest = new Uint8Array(32);
