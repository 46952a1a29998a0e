/**
 * Signed messages and quorum certificates.
 *
 * Cores never sign or verify (DESIGN.md, "Protocol cores are sans-IO"): the host signs every
 * message a core sends and verifies every signature — the envelope's and those of the
 * certificates nested inside, listed by the protocol's `nested` function — before the message
 * reaches the core. What a core checks is structure: that a certificate's signers are distinct
 * members, enough of them, all vouching for one value.
 */
import { t, type Schema } from '../../schema/schema.js';
import type { Digest } from './codec.js';
import type { ConsensusConfig, NodeId } from './config.js';
import { ConsensusError } from './errors.js';

/** Largest signature a protocol message may carry (SLH-DSA-SHA2-128f's 17 088 bytes, with room). */
export const MAX_SIGNATURE_BYTES = 20_000;

/** A message body signed by its sender. `signature` covers the digest of the encoded body. */
export interface Signed<B> {
  readonly from: NodeId;
  readonly body: B;
  readonly signature: Uint8Array;
}

/** Schema of a {@link Signed} wrapper around bodies of `body`'s schema. */
export function signedSchema<B>(body: Schema<B>): Schema<Signed<B>> {
  return t.object({ from: t.uint(1 << 16), body, signature: t.bytes({ maxLength: MAX_SIGNATURE_BYTES }) }) as Schema<Signed<B>>;
}

/** One replica's signature inside a certificate. */
export interface NodeSignature {
  readonly node: NodeId;
  readonly signature: Uint8Array;
}

/** Schema of a {@link NodeSignature}. */
export const nodeSignatureSchema = t.object({ node: t.uint(1 << 16), signature: t.bytes({ maxLength: MAX_SIGNATURE_BYTES }) });

/**
 * A quorum certificate: a quorum of distinct members' signatures over one vote, identified by its
 * view and the hash of the value voted for. The signed body is the protocol's vote message for
 * (view, valueHash), which anyone can rebuild, so a third party can check the certificate.
 */
export interface QuorumCert {
  readonly view: number;
  readonly valueHash: Digest;
  readonly signatures: readonly NodeSignature[];
}

/** Schema of a {@link QuorumCert}. */
export const quorumCertSchema = t.object({
  view: t.uint(),
  valueHash: t.bytes({ length: 32 }),
  signatures: t.array(nodeSignatureSchema, { maxLength: 1 << 10 }),
});

/**
 * Checks that `signers` are distinct members and at least `quorum` of them.
 * @throws {ConsensusError} `INVALID_CERTIFICATE` for a non-member or a repeated signer,
 * `QUORUM_NOT_REACHED` for too few.
 */
export function checkQuorum(signers: readonly NodeId[], config: ConsensusConfig, quorum: number = config.quorumSize): void {
  const seen = new Set<NodeId>();
  for (const node of signers) {
    if (!Number.isInteger(node) || node < 0 || node >= config.n) throw new ConsensusError('INVALID_CERTIFICATE', `signer ${node} is not a member`);
    if (seen.has(node)) throw new ConsensusError('INVALID_CERTIFICATE', `signer ${node} appears twice`);
    seen.add(node);
  }
  if (seen.size < quorum) throw new ConsensusError('QUORUM_NOT_REACHED', `${seen.size} distinct signers, ${quorum} needed`);
}

/** True when {@link checkQuorum} would accept. */
export function isQuorum(signers: readonly NodeId[], config: ConsensusConfig, quorum: number = config.quorumSize): boolean {
  try {
    checkQuorum(signers, config, quorum);
    return true;
  } catch {
    return false;
  }
}
