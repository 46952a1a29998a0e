/**
 * Runtime schemas (`t.*`) of receipts, signed tree heads, trust files and consistency proofs, in
 * two forms built from one description: the JSON interchange form (binary fields as base64url)
 * and the in-memory form (binary fields as `Uint8Array`). The JSON Schema files of this folder
 * describe the JSON form; a test holds the two to the same verdicts.
 */
import { SchemaError } from '../../schema/errors.js';
import { t, type OptionalSchema, type Schema } from '../../schema/schema.js';
import { CONSENSUS_ALGORITHMS } from '../consensus/config.js';
import { SCHEME_NAMES, SIGNATURE_POLICIES, isKeyId, type KeyId } from '../crypto/index.js';
import { fromBase64Url } from './base64url.js';
import { isWellFormed } from '../consensus/codec.js';
import { HASH_BYTES } from './merkle.js';

/** Most signatures a tree head may carry. */
export const MAX_SIGNATURES = 1024;
/** Most hashes in a proof: a tree of up to 2^53 − 1 leaves is at most 53 levels deep. */
export const MAX_PROOF_HASHES = 64;
/** Longest signature (SLH-DSA-SHA2-128f signs in 17 088 bytes). */
export const MAX_SIGNATURE_BYTES = 1 << 16;
/** Longest public key. */
export const MAX_PUBLIC_KEY_BYTES = 1 << 13;
/** Longest cluster or node id, in code points. */
export const MAX_ID_LENGTH = 256;
/** Longest client id, in code points (commands allow 128). */
export const MAX_CLIENT_LENGTH = 128;

/**
 * A copy of plain data in which nothing is shared: arrays and objects are rebuilt, byte arrays and
 * other values kept. Parsing checks objects in place (and replaces decoded fields), so callers
 * parse a copy; unlike `structuredClone`, this one also unshares an object referenced twice.
 * Deeper than 64 levels (no format comes close) the value is cut off, so the parse fails.
 */
export function unsharedCopy(value: unknown, depth = 0): unknown {
  if (depth > 64) return undefined;
  if (Array.isArray(value)) return value.map((v) => unsharedCopy(v, depth + 1));
  const proto: unknown = typeof value === 'object' && value !== null ? Object.getPrototypeOf(value) : undefined;
  if (proto === Object.prototype || proto === null) {
    return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, unsharedCopy(v, depth + 1)]));
  }
  return value;
}

function custom<T>(expected: string, check: (value: unknown) => T | undefined): Schema<T> {
  return {
    expected,
    parse(value, path = '$') {
      const parsed = check(value);
      if (parsed === undefined) throw new SchemaError(path, expected);
      return parsed;
    },
  };
}

/** Well-formed Unicode text of `min` to `max` code points. */
function text(min: number, max: number): Schema<string> {
  return custom(`well-formed text of ${min} to ${max} code points`, (v) => {
    if (typeof v !== 'string' || !isWellFormed(v)) return undefined;
    const length = [...v].length;
    return length >= min && length <= max ? v : undefined;
  });
}

/** Like `t.optional`, but only absence is accepted (JSON's null is a different value). */
function absentOr<T>(inner: Schema<T>): OptionalSchema<T> {
  return {
    optional: true,
    expected: `absent or ${inner.expected}`,
    parse: (v, path = '$', ctx = {}) => (v === undefined ? undefined : inner.parse(v, path, ctx)),
  };
}

const keyIdSchema = custom<KeyId>('key id: 64 lower-case hex digits', (v) => (isKeyId(v) ? v : undefined));

/** How a form spells binary fields: a hash of exactly 32 bytes, and other byte strings. */
interface BinaryForm {
  readonly digest: Schema<Uint8Array>;
  readonly blob: (maxLength: number) => Schema<Uint8Array>;
}

function base64Url(length: number | undefined, maxLength: number): Schema<Uint8Array> {
  const expected = length === undefined ? `base64url of at most ${maxLength} bytes` : `base64url of exactly ${length} bytes`;
  return custom(expected, (v) => {
    const bytes = typeof v === 'string' ? fromBase64Url(v) : undefined;
    if (bytes === undefined) return undefined;
    return (length === undefined ? bytes.length <= maxLength : bytes.length === length) ? bytes : undefined;
  });
}

const JSON_FORM: BinaryForm = {
  digest: base64Url(HASH_BYTES, HASH_BYTES),
  blob: (maxLength) => base64Url(undefined, maxLength),
};

const BINARY_FORM: BinaryForm = {
  digest: t.bytes({ length: HASH_BYTES }),
  blob: (maxLength) => t.bytes({ maxLength }),
};

function shapes(form: BinaryForm) {
  const id = text(1, MAX_ID_LENGTH);
  const policy = t.oneOf(...SIGNATURE_POLICIES);
  const treeHead = t.object({
    version: t.literal(1),
    cluster: id,
    size: t.uint(),
    root: form.digest,
    sequence: t.uint(),
    view: t.uint(),
    timestamp: t.uint(),
    policy,
  });
  const signatures = t.array(
    t.object({ node: id, keyId: keyIdSchema, scheme: t.oneOf(...SCHEME_NAMES), signature: form.blob(MAX_SIGNATURE_BYTES) }),
    { maxLength: MAX_SIGNATURES },
  );
  const body = t.object({
    version: t.literal(1),
    cluster: id,
    protocol: t.oneOf(...CONSENSUS_ALGORITHMS),
    sequence: t.uint(),
    view: t.uint(),
    batchIndex: t.uint(),
    client: text(0, MAX_CLIENT_LENGTH),
    clientTimestamp: t.uint(),
    commandHash: form.digest,
    stateHashBefore: form.digest,
    stateHashAfter: form.digest,
    timestamp: t.uint(),
    policy,
    leafIndex: t.uint(),
  });
  const proof = t.array(form.digest, { maxLength: MAX_PROOF_HASHES });
  return {
    treeHead,
    receipt: t.object({ body, inclusionProof: proof, treeHead, signatures }),
    signedTreeHead: t.object({ treeHead, signatures }),
    trust: t.object({
      version: t.literal(1),
      cluster: id,
      n: t.uint(),
      f: t.uint(),
      policy,
      members: t.array(
        t.object({
          node: id,
          keys: t.array(
            t.object({
              keyId: keyIdSchema,
              scheme: t.oneOf(...SCHEME_NAMES),
              publicKey: form.blob(MAX_PUBLIC_KEY_BYTES),
              validFrom: t.uint(),
              validUntil: absentOr(t.uint()),
            }),
            { maxLength: 1024 },
          ),
        }),
        { maxLength: 1024 },
      ),
      migrations: absentOr(t.array(t.object({ policy, sequence: t.uint() }), { maxLength: SIGNATURE_POLICIES.length })),
    }),
    consistencyProof: t.object({ version: t.literal(1), cluster: id, firstSize: t.uint(), secondSize: t.uint(), proof }),
  };
}

/** Schemas of the JSON forms (what files and other processes hold). */
export const JSON_SCHEMAS = shapes(JSON_FORM);

/** Schemas of the in-memory forms (what this code builds). */
export const BINARY_SCHEMAS = shapes(BINARY_FORM);
