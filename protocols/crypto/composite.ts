/**
 * Composite ML-DSA + Ed25519 signatures, draft-ietf-lamps-pq-composite-sigs-19 ("Composite
 * ML-DSA for use in X.509 PKI and CMS"), for id-MLDSA65-Ed25519-SHA512 (knhk's default hybrid)
 * and id-MLDSA44-Ed25519-SHA512.
 *
 * - Message representative (the draft's Sign and Verify, step "Compute the Message
 *   representative M'"): M' = Prefix ‖ Label ‖ len(ctx) ‖ ctx ‖ PH(M), with Prefix the ASCII
 *   bytes of "CompositeAlgorithmSignatures2025", len(ctx) one byte, PH = SHA-512.
 * - ML-DSA signs M' with the Label as its FIPS 204 context; Ed25519 signs M' (pure Ed25519).
 * - Encodings (the draft's SerializePublicKey / SerializePrivateKey / SerializeSignatureValue):
 *   pk = ML-DSA pk ‖ Ed25519 pk; sk = ML-DSA seed (32) ‖ Ed25519 private key (32);
 *   signature = ML-DSA signature ‖ Ed25519 signature. The ML-DSA part comes first and has a
 *   fixed length, so splitting needs no length prefix.
 * - Verification succeeds only if BOTH component signatures verify (the draft's Verify).
 *
 * The composite keygen seed is the composite secret key itself (64 bytes): keygen(sk)
 * reproduces pk, which is how the draft's vectors are checked.
 */
import { sha512 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { ED25519_SPEC } from './ed25519.js';
import { ML_DSA_44, ML_DSA_65, type MlDsaParameters } from './ml-dsa.js';
import type { Primitive } from './primitive.js';
import type { SchemeName, SchemeSpec } from './scheme.js';

/** The draft's Prefix: ASCII "CompositeAlgorithmSignatures2025". */
const PREFIX = utf8ToBytes('CompositeAlgorithmSignatures2025');
const EMPTY = new Uint8Array(0);

/** A composite algorithm: its facts, its ML-DSA component and its Label. */
export interface CompositeParameters {
  /** Sizes and name of the composite. */
  readonly spec: SchemeSpec<'hybrid'>;
  /** The ML-DSA component. */
  readonly mlDsa: MlDsaParameters;
  /** The draft's Label for this algorithm, as bytes (its "Domain separator" table). */
  readonly label: Uint8Array;
}

function composite(name: SchemeSpec['name'], mlDsa: MlDsaParameters, label: string): CompositeParameters {
  const ml = mlDsa.spec;
  return Object.freeze({
    spec: Object.freeze({
      name,
      category: 'hybrid',
      publicKeyBytes: ml.publicKeyBytes + ED25519_SPEC.publicKeyBytes,
      secretKeyBytes: ml.seedBytes + ED25519_SPEC.secretKeyBytes,
      signatureBytes: ml.signatureBytes + ED25519_SPEC.signatureBytes,
      variableSignature: false,
      seedBytes: ml.seedBytes + ED25519_SPEC.seedBytes,
      contextSupported: true,
    }),
    mlDsa,
    label: utf8ToBytes(label),
  });
}

/** id-MLDSA65-Ed25519-SHA512, the default hybrid. */
export const MLDSA65_ED25519 = composite('ML-DSA-65+Ed25519', ML_DSA_65, 'COMPSIG-MLDSA65-Ed25519-SHA512');
/** id-MLDSA44-Ed25519-SHA512. */
export const MLDSA44_ED25519 = composite('ML-DSA-44+Ed25519', ML_DSA_44, 'COMPSIG-MLDSA44-Ed25519-SHA512');

/** One component call of a composite, as a {@link ComponentObserver} is told of it. */
export interface ComponentCall {
  /** `sign` or `verify`; key generation is not reported per component. */
  readonly operation: 'sign' | 'verify';
  /** The component's scheme: the composite's ML-DSA parameter set, or Ed25519. */
  readonly scheme: SchemeName;
}

/**
 * An optional hook around each component call of a composite: it must call `run` once and return
 * what it returns (or throw what it throws). It lets a caller time the components separately
 * (actors/crypto-telemetry.ts) while this layer stays free of clocks and telemetry.
 */
export type ComponentObserver = <T>(call: ComponentCall, run: () => T) => T;

const unobserved: ComponentObserver = (_call, run) => run();

/** M' = Prefix ‖ Label ‖ len(ctx) ‖ ctx ‖ SHA-512(M). The caller has checked len(ctx) ≤ 255. */
export function messageRepresentative(label: Uint8Array, message: Uint8Array, context: Uint8Array): Uint8Array {
  return concatBytes(PREFIX, label, Uint8Array.of(context.length), context, sha512(message));
}

/**
 * The composite as a primitive over two component primitives, which may come from different
 * backends. Lengths are checked by the scheme layer, so the splits below are exact. `observe`, when
 * given, wraps each component's sign and verify call.
 */
export function compositePrimitive(params: CompositeParameters, mlDsa: Primitive, ed25519: Primitive, observe: ComponentObserver = unobserved): Primitive {
  const mlPk = params.mlDsa.spec.publicKeyBytes;
  const mlSk = params.mlDsa.spec.seedBytes;
  const mlSig = params.mlDsa.spec.signatureBytes;
  const call = (operation: ComponentCall['operation'], scheme: SchemeName): ComponentCall => Object.freeze({ operation, scheme });
  const mlSign = call('sign', params.mlDsa.spec.name);
  const edSign = call('sign', ED25519_SPEC.name);
  const mlVerify = call('verify', params.mlDsa.spec.name);
  const edVerify = call('verify', ED25519_SPEC.name);
  return {
    keygen(seed) {
      const ml = mlDsa.keygen(seed.subarray(0, mlSk));
      const ed = ed25519.keygen(seed.subarray(mlSk));
      const secretKey = concatBytes(ml.secretKey, ed.secretKey);
      ml.secretKey.fill(0);
      ed.secretKey.fill(0);
      return { publicKey: concatBytes(ml.publicKey, ed.publicKey), secretKey };
    },
    sign(secretKey, message, context) {
      const m = messageRepresentative(params.label, message, context);
      const mlSignature = observe(mlSign, () => mlDsa.sign(secretKey.subarray(0, mlSk), m, params.label));
      const edSignature = observe(edSign, () => ed25519.sign(secretKey.subarray(mlSk), m, EMPTY));
      return concatBytes(mlSignature, edSignature);
    },
    verify(publicKey, message, signature, context) {
      const m = messageRepresentative(params.label, message, context);
      // Both halves must verify; Ed25519 goes first only because it is the cheaper one to fail.
      return (
        observe(edVerify, () => ed25519.verify(publicKey.subarray(mlPk), m, signature.subarray(mlSig), EMPTY)) &&
        observe(mlVerify, () => mlDsa.verify(publicKey.subarray(0, mlPk), m, signature.subarray(0, mlSig), params.label))
      );
    },
  };
}
