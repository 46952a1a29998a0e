/**
 * The simulator's signature scheme: a keyed hash. Node i signs a digest d with
 * SHA-256(kᵢ ‖ d), where kᵢ is i's secret, derived from the run's seed. Verification recomputes
 * it with the signer's secret, which only the simulator (standing in for every verifier) holds.
 * A Byzantine node is handed nothing but its own kᵢ, so it can sign as itself and never as a
 * peer: the unforgeability the protocols rely on, at the cost of a hash instead of ML-DSA, so
 * thousands of seeds run per minute. Real signatures are the replica actors' business.
 */
import type { NodeId } from '../consensus/config.js';
import { digestOf, hashBytes, sameBytes, type Digest } from '../consensus/codec.js';
import type { Signed } from '../consensus/certificate.js';
import type { Prng } from './prng.js';

const SIGNATURE_BYTES = 32;

/** Keyed-hash signatures for the members of one simulated cluster. */
export class SimulatedSigner {
  readonly #secrets: Uint8Array[];

  constructor(n: number, rng: Prng) {
    this.#secrets = Array.from({ length: n }, () => {
      const k = new Uint8Array(32);
      for (let i = 0; i < 32; i += 4) new DataView(k.buffer).setUint32(i, rng.u32());
      return k;
    });
  }

  /** `node`'s signature over `digest`. */
  signDigest(node: NodeId, digest: Digest): Uint8Array {
    const secret = this.#secrets[node];
    if (secret === undefined) return new Uint8Array(SIGNATURE_BYTES);
    const input = new Uint8Array(64);
    input.set(secret, 0);
    input.set(digest, 32);
    return hashBytes(input);
  }

  /** Signs `body` as `node`. */
  sign<B>(node: NodeId, body: B): Signed<B> {
    return { from: node, body, signature: this.signDigest(node, digestOf(body)) };
  }

  /** True when `signed.signature` is `signed.from`'s signature over its body. */
  verify(signed: Signed<unknown>): boolean {
    return signed.signature.length === SIGNATURE_BYTES && sameBytes(this.signDigest(signed.from, digestOf(signed.body)), signed.signature);
  }
}
