/**
 * The keys a restarted cluster's verifier starts with (actors/keys-in-force.ts), from its signers'
 * key histories: after migrations, the policy reached; stopped half-way through a step's
 * adoptions, just before it; keys no migration leaves are a configuration error. And the policy
 * steps it took, with the positions they took effect at.
 */
import test from 'ava';
import { keysInForce, stepsTaken } from '../actors/keys-in-force.js';
import type { PublicKeyDescriptor } from '../actors/signer.js';
import { ConfigError } from '../runtime/index.js';
import { SchemeRegistry, type SchemeName } from '../protocols/crypto/index.js';

const schemes = SchemeRegistry.create();

/** A key of `scheme` for the descriptors' purposes here: only the scheme, the epoch and the id are read. */
const key = (scheme: SchemeName, epoch: number): PublicKeyDescriptor =>
  ({ scheme, epoch, fromSequence: epoch * 10, keyId: `${scheme}-${epoch}`, publicKey: new Uint8Array(0), createdAt: 0, notBefore: 0, notAfter: 1 }) as unknown as PublicKeyDescriptor;

test('the keys in force under the one policy admitting them all; half-way through a step, the adopted members\' keys before it', (t) => {
  const classical = [0, 1, 2].map(() => [key('Ed25519', 0)]);
  t.deepEqual(keysInForce(classical, schemes), { policy: 'classical', members: classical.map((h) => h[0]) });

  const migrated = [0, 1, 2].map(() => [key('Ed25519', 0), key('ML-DSA-65+Ed25519', 1)]);
  t.deepEqual(keysInForce(migrated, schemes), { policy: 'hybrid', members: migrated.map((h) => h[1]) }, 'the policy the cluster had reached');

  const rotatedSince = [key('Ed25519', 0), key('ML-DSA-65+Ed25519', 1), key('ML-DSA-65+Ed25519', 2)];
  const halfway = [migrated[0], rotatedSince, [key('Ed25519', 0), key('Ed25519', 1)]] as PublicKeyDescriptor[][];
  const started = keysInForce(halfway, schemes);
  t.is(started.policy, 'classical', 'before the step, which the replicas report again');
  t.deepEqual(started.members.map((k) => k.keyId), ['Ed25519-0', 'Ed25519-0', 'Ed25519-1'], 'each member\'s last key before the step, a member that rotated since included');

  const apart = [[key('Ed25519', 0)], [key('Ed25519', 0), key('ML-DSA-65', 1)], [key('Ed25519', 0)]];
  t.throws(() => keysInForce(apart, schemes), { instanceOf: ConfigError, message: /not of one policy, nor of two successive ones/ });
  const born = [[key('ML-DSA-65+Ed25519', 0)], [key('Ed25519', 0)], [key('Ed25519', 0)]];
  t.throws(() => keysInForce(born, schemes), { instanceOf: ConfigError, message: /member 0 has no key of the classical policy/ });
});

test('the policy steps a restarted cluster took, from where each member\'s first key of the step\'s policy signs', (t) => {
  const at = (scheme: SchemeName, epoch: number, fromSequence: number): PublicKeyDescriptor => ({ ...key(scheme, epoch), fromSequence }) as PublicKeyDescriptor;
  const history = [at('Ed25519', 0, 0), at('Ed25519', 1, 40), at('ML-DSA-65+Ed25519', 2, 75), at('ML-DSA-65+Ed25519', 3, 90), at('ML-DSA-65', 4, 120)];
  const histories = [history, history.slice(0, 3).concat(at('ML-DSA-65', 3, 120)), history.filter((k) => k.epoch !== 1)];
  t.deepEqual(stepsTaken(histories, schemes, 'classical', 'quantum'), [
    { policy: 'hybrid', sequence: 75 },
    { policy: 'quantum', sequence: 120 },
  ], 'rotations within a policy, before or after its step, move nothing');
  t.deepEqual(stepsTaken(histories, schemes, 'classical', 'hybrid'), [{ policy: 'hybrid', sequence: 75 }], 'only the steps up to the policy every member reached');
  t.deepEqual(stepsTaken([[at('ML-DSA-65', 0, 0), at('ML-DSA-65', 1, 30)]], schemes, 'quantum', 'quantum'), [], 'none for a cluster still in its first policy');
  const apart = [history, [at('Ed25519', 0, 0), at('ML-DSA-65+Ed25519', 1, 76)]];
  t.throws(() => stepsTaken(apart, schemes, 'classical', 'hybrid'), { instanceOf: ConfigError, message: /first keys of the hybrid policy do not start at one position: 75, 76/ });
  // Spawned again under another policy than its first: it would invent a step at 0, or lose one.
  t.throws(() => stepsTaken(histories, schemes, 'hybrid', 'quantum'), { instanceOf: ConfigError, message: /first keys are of another policy than hybrid \(Ed25519\)/ });
  const bornHybrid = [0, 1, 2].map(() => [at('ML-DSA-65+Ed25519', 0, 0)]);
  t.throws(() => stepsTaken(bornHybrid, schemes, 'classical', 'hybrid'), { instanceOf: ConfigError, message: /another policy than classical/ });
});
