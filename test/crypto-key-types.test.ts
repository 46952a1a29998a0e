/**
 * Key categories are carried in the types: the compiler refuses a classical key where a
 * quantum-safe or hybrid one is required, and a public key where a secret key is. Each
 * `@ts-expect-error` below fails the build (`tsc`) if the line it marks ever compiles.
 */
import test from 'ava';
import { SchemeRegistry, type ClassicalKey, type HybridKey, type PublicKey, type QuantumSafeKey } from '../protocols/crypto/index.js';

/** Stand-ins for what a signature policy needs. */
function requireQuantumSafe(key: QuantumSafeKey<'public'>): number {
  return key.length;
}
function requireHybrid(key: HybridKey<'public'>): number {
  return key.length;
}
function anyPublicKey(key: PublicKey): number {
  return key.length;
}

test('key categories and kinds are enforced at compile time and carried at run time', (t) => {
  const registry = SchemeRegistry.create({ force: 'noble' });
  const classical = registry.get('Ed25519').keygen();
  const quantumSafe = registry.get('ML-DSA-44').keygen();
  const hybrid = registry.get('ML-DSA-44+Ed25519').keygen();

  const ed: ClassicalKey<'public'> = classical.publicKey;
  t.is(requireQuantumSafe(quantumSafe.publicKey), 1312);
  t.is(requireHybrid(hybrid.publicKey), 1344);
  t.is(anyPublicKey(ed) + anyPublicKey(quantumSafe.publicKey), 32 + 1312);

  // @ts-expect-error a classical public key is not a quantum-safe one
  requireQuantumSafe(classical.publicKey);
  // @ts-expect-error nor is a hybrid one
  requireQuantumSafe(hybrid.publicKey);
  // @ts-expect-error a quantum-safe key is not a hybrid one
  requireHybrid(quantumSafe.publicKey);
  // @ts-expect-error raw bytes carry no category
  requireHybrid(new Uint8Array(1344));
  // @ts-expect-error a secret key is not a public key
  anyPublicKey(classical.secretKey);
  // @ts-expect-error a scheme signs only with a secret key of its own category
  registry.get('ML-DSA-44').sign(classical.secretKey, Uint8Array.of(1));

  t.is(registry.get('Ed25519').category, 'classical');
  t.is(registry.get('ML-DSA-44').category, 'quantum-safe');
  t.is(registry.get('ML-DSA-44+Ed25519').category, 'hybrid');
});
