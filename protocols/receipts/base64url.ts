/**
 * base64url without padding (RFC 4648 §5), the encoding of every binary field of knhk's JSON
 * receipts, tree heads and trust files. Decoding is strict: only the URL-safe alphabet, no
 * padding, no whitespace, and the unused low bits of the last character must be zero, so that
 * each byte string has exactly one text form (a lenient decoder would accept several spellings
 * of one value, and a flipped bit could go unnoticed).
 */

const SHAPE = /^[A-Za-z0-9_-]*$/;

/** The base64url form of `bytes`, without padding. */
export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** The bytes of canonical unpadded base64url `text`, or undefined when it is not such a text. */
export function fromBase64Url(text: string): Uint8Array | undefined {
  if (!SHAPE.test(text) || text.length % 4 === 1) return undefined;
  const decoded = Buffer.from(text, 'base64url');
  if (decoded.toString('base64url') !== text) return undefined;
  return new Uint8Array(decoded);
}

/**
 * A regular expression (JSON Schema `pattern`) for exactly the canonical texts: groups of four
 * characters, then optionally two or three whose last one has its unused bits zero.
 */
export const BASE64URL_PATTERN = '^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$';
