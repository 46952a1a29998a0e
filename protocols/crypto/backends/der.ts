/**
 * The few DER structures node:crypto needs to import raw keys: SubjectPublicKeyInfo
 * (RFC 5280 §4.1.2.7) and PKCS #8 OneAsymmetricKey (RFC 5958 §2), with the algorithm
 * identifiers of Ed25519 (RFC 8410 §3) and ML-DSA (RFC 9881, ML-DSA in X.509). Only encoding, never parsing:
 * what node:crypto exports is read back by position (the key is the last field).
 */
import { concatBytes, hexToBytes } from '@noble/hashes/utils.js';

/** DER encoding of the AlgorithmIdentifier OIDs, tag and length included. */
export const OIDS = Object.freeze({
  /** id-Ed25519, 1.3.101.112 (RFC 8410 §3). */
  'ed25519': hexToBytes('06032b6570'),
  /** id-ml-dsa-44, 2.16.840.1.101.3.4.3.17 (NIST CSOR, as used by RFC 9881). */
  'ml-dsa-44': hexToBytes('0609608648016503040311'),
  /** id-ml-dsa-65, 2.16.840.1.101.3.4.3.18. */
  'ml-dsa-65': hexToBytes('0609608648016503040312'),
  /** id-ml-dsa-87, 2.16.840.1.101.3.4.3.19. */
  'ml-dsa-87': hexToBytes('0609608648016503040313'),
});

/** One DER tag-length-value with a definite length (X.690 §8.1.3). */
export function tlv(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  let length: Uint8Array;
  if (n < 0x80) length = Uint8Array.of(n);
  else if (n < 0x100) length = Uint8Array.of(0x81, n);
  else length = Uint8Array.of(0x82, n >> 8, n & 0xff);
  return concatBytes(Uint8Array.of(tag), length, content);
}

/** SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier { oid }, BIT STRING (no unused bits) key }. */
export function spki(oid: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return tlv(0x30, concatBytes(tlv(0x30, oid), tlv(0x03, concatBytes(Uint8Array.of(0), publicKey))));
}

/** OneAsymmetricKey v1: SEQUENCE { INTEGER 0, AlgorithmIdentifier { oid }, OCTET STRING privateKey }. */
export function pkcs8(oid: Uint8Array, privateKey: Uint8Array): Uint8Array {
  // The intermediate encodings hold the key too: wiped once the outer one is built (the caller
  // wipes the result).
  const octets = tlv(0x04, privateKey);
  const body = concatBytes(tlv(0x02, Uint8Array.of(0)), tlv(0x30, oid), octets);
  try {
    return tlv(0x30, body);
  } finally {
    octets.fill(0);
    body.fill(0);
  }
}
