/**
 * Key categories carried in the types. A key is its raw encoding (a `Uint8Array`) plus two
 * compile-time brands: its category (classical, quantum-safe, hybrid) and its kind (public or
 * secret). The brands cost nothing at run time; they make the compiler refuse, say, a classical
 * public key where a signature policy needs a quantum-safe one, or a public key where a secret
 * key is expected. Brands are granted by a scheme (`keygen`, `importPublicKey`,
 * `importSecretKey`), which is the one place that knows what the bytes are.
 */

/** The security category of a signature scheme and of its keys. */
export type KeyCategory = 'classical' | 'quantum-safe' | 'hybrid';

/** Whether a key is the public (verification) or secret (signing) half of a key pair. */
export type KeyKind = 'public' | 'secret';

declare const categoryBrand: unique symbol;
declare const kindBrand: unique symbol;

/** A key's raw encoding, branded with its category `C` and kind `K`. */
export type Key<C extends KeyCategory, K extends KeyKind> = Uint8Array & {
  readonly [categoryBrand]: C;
  readonly [kindBrand]: K;
};

/** A key of a classical scheme (Ed25519). */
export type ClassicalKey<K extends KeyKind = KeyKind> = Key<'classical', K>;
/** A key of a quantum-safe scheme (ML-DSA, Falcon, SLH-DSA). */
export type QuantumSafeKey<K extends KeyKind = KeyKind> = Key<'quantum-safe', K>;
/** A key of a hybrid composite scheme (ML-DSA + Ed25519). */
export type HybridKey<K extends KeyKind = KeyKind> = Key<'hybrid', K>;

/** A public key of category `C`. */
export type PublicKey<C extends KeyCategory = KeyCategory> = Key<C, 'public'>;
/** A secret key of category `C`. */
export type SecretKey<C extends KeyCategory = KeyCategory> = Key<C, 'secret'>;

/** A key pair of category `C`, as produced by `keygen`. */
export interface KeyPair<C extends KeyCategory = KeyCategory> {
  /** The verification key. */
  readonly publicKey: PublicKey<C>;
  /** The signing key. */
  readonly secretKey: SecretKey<C>;
}
