/**
 * The JSON interchange forms of receipts, signed tree heads, trust descriptions and consistency
 * proofs: the in-memory values with every byte string as unpadded base64url, and nothing else
 * changed. `*ToJson` returns a plain object for `JSON.stringify`; `*FromJson` takes what
 * `JSON.parse` returned, checks it against the format's schema, and never mutates its input.
 */
import type { Schema } from '../../schema/schema.js';
import { toBase64Url } from './base64url.js';
import type { ConsistencyProof } from './consistency.js';
import type { Receipt } from './receipt.js';
import { JSON_SCHEMAS, unsharedCopy } from './schemas.js';
import type { SignedTreeHead } from './tree-head.js';
import { checkTrust, type Trust } from './trust.js';

/** The JSON form of a value of type `T`: byte strings become base64url text. */
export type Json<T> = T extends Uint8Array
  ? string
  : T extends readonly (infer U)[]
    ? readonly Json<U>[]
    : T extends object
      ? { readonly [K in keyof T]: Json<T[K]> }
      : T;

function toJsonValue(value: unknown): unknown {
  if (value instanceof Uint8Array) return toBase64Url(value);
  if (Array.isArray(value)) return value.map(toJsonValue);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, toJsonValue(v)]));
  }
  return value;
}

function fromJson<T>(value: unknown, schema: Schema<T>): T {
  return schema.parse(unsharedCopy(value));
}

/** The JSON form of a receipt. */
export function receiptToJson(receipt: Receipt): Json<Receipt> {
  return toJsonValue(receipt) as Json<Receipt>;
}

/**
 * A receipt from its JSON form. Only the shape is checked: use `verifyReceipt` to check the rest.
 * @throws {SchemaError} naming the first field that does not fit the receipt format.
 */
export function receiptFromJson(value: unknown): Receipt {
  return fromJson(value, JSON_SCHEMAS.receipt);
}

/** The JSON form of a signed tree head (an STH file). */
export function treeHeadToJson(signed: SignedTreeHead): Json<SignedTreeHead> {
  return toJsonValue(signed) as Json<SignedTreeHead>;
}

/**
 * A signed tree head from its JSON form; signatures are not checked (see `verifyTreeHead`).
 * @throws {SchemaError} naming the first field that does not fit the format.
 */
export function treeHeadFromJson(value: unknown): SignedTreeHead {
  return fromJson(value, JSON_SCHEMAS.signedTreeHead);
}

/** The JSON form of a trust description (a trust file). */
export function trustToJson(trust: Trust): Json<Trust> {
  return toJsonValue(trust) as Json<Trust>;
}

/**
 * A trust description from its JSON form, checked for shape and for the rules of `checkTrust`.
 * @throws {SchemaError} for a field that does not fit; {@link ReceiptError} `INVALID_TRUST` for a broken rule.
 */
export function trustFromJson(value: unknown): Trust {
  return checkTrust(fromJson(value, JSON_SCHEMAS.trust));
}

/** The JSON form of a consistency proof (a proof file). */
export function consistencyProofToJson(proof: ConsistencyProof): Json<ConsistencyProof> {
  return toJsonValue(proof) as Json<ConsistencyProof>;
}

/**
 * A consistency proof from its JSON form.
 * @throws {SchemaError} naming the first field that does not fit the format.
 */
export function consistencyProofFromJson(value: unknown): ConsistencyProof {
  return fromJson(value, JSON_SCHEMAS.consistencyProof);
}
