/**
 * The signer: the one actor that holds a replica's secret key (DESIGN.md, key custody). It runs
 * in a worker thread of its own, opens the replica's encrypted key file at start — or, on the
 * replica's first start, generates the key and seals it there — and answers signing requests
 * with signatures. The key never leaves this thread; what crosses it is digests in and
 * signatures out: over consensus message digests, and over receipt-log tree heads (under a
 * context of their own, so that neither can pass for the other). Signing an ML-DSA message takes milliseconds in pure JavaScript, which is why
 * it is not done on the replica's own thread, whose handler budget is one tick. Key generation and
 * every signature are reported as `crypto.keygen` and `crypto.sign` spans (crypto-telemetry.ts).
 */
import { defineBehavior, t } from '../runtime/index.js';
import { SCHEME_NAMES, SigningKey, type SchemeName, type SchemeRegistry } from '../protocols/crypto/index.js';
import { treeHeadContext } from '../protocols/receipts/index.js';
import { measured, observedSchemes } from './crypto-telemetry.js';
import { KeyStore } from './key-store.js';

/** The public half of a replica's key, as the cluster learns it from the signer. */
export interface PublicKeyDescriptor {
  readonly keyId: string;
  readonly scheme: SchemeName;
  readonly publicKey: Uint8Array;
  readonly createdAt: number;
}

/** Start arguments of a signer. */
export interface SignerArgs {
  /** Where the replica's key files live (created on first use, mode 0700). */
  readonly directory: string;
  /** The scheme of a key generated on first start (an existing key keeps its own). */
  readonly scheme: SchemeName;
  readonly passphrase: string;
  /** scrypt cost of a new key file, log2 N (default the key envelope's, 17). */
  readonly kdfLog2N?: number;
  /** Domain-separation context for schemes that take one (not Ed25519, which has none). */
  readonly context?: Uint8Array;
}

const descriptorSchema = t.object({
  keyId: t.string({ maxLength: 128 }),
  scheme: t.oneOf(...SCHEME_NAMES),
  publicKey: t.bytes({ maxLength: 8192 }),
  createdAt: t.uint(),
});

/** Takes the replica's key from its store, making and sealing one if the store is empty. */
async function custodyKey(args: SignerArgs, registry: SchemeRegistry): Promise<SigningKey> {
  const store = new KeyStore(args.directory, registry, args.kdfLog2N === undefined ? {} : { kdf: { log2N: args.kdfLog2N, r: 8, p: 1 } });
  const ids = await store.list();
  if (ids.length === 0) {
    const scheme = registry.get(args.scheme);
    const key = measured('keygen', scheme, () => SigningKey.generate(scheme, Date.now()));
    await store.save(key, args.passphrase);
    return key;
  }
  // Rotation leaves old keys beside the new one; the newest signs.
  const keys = await Promise.all(ids.map((id) => store.load(id, args.passphrase)));
  keys.sort((a, b) => b.createdAt - a.createdAt);
  for (const old of keys.slice(1)) old.dispose();
  return keys[0] as SigningKey;
}

/** A replica's signer. `sign` answers a signature over the digest; `describe` the public key. */
export const Signer = defineBehavior({
  module: import.meta.url,
  export: 'Signer',
  messages: t.variants({
    sign: { digest: t.bytes({ maxLength: 64 }) },
    /** A receipt-log tree head's canonical bytes, signed under the tree-head context (protocols/receipts). */
    'sign-tree-head': { head: t.bytes({ maxLength: 4096 }) },
    describe: {},
    /** Signatures made by this incarnation (for the consensus benchmark's crypto ceiling). */
    stats: {},
  }),
  replies: t.variants({
    signature: { signature: t.bytes({ maxLength: 16384 }) },
    key: { key: descriptorSchema },
    stats: { signatures: t.uint() },
  }),
  async start(_ctx, args: SignerArgs) {
    const registry = observedSchemes();
    const key = await custodyKey(args, registry);
    const context = key.scheme.name === 'Ed25519' ? undefined : args.context;
    const headContext = treeHeadContext(key.scheme);
    let signatures = 0;
    return {
      receive(msg, from) {
        switch (msg.type) {
          case 'sign':
            signatures++;
            return from.reply({ type: 'signature', signature: measured('sign', key.scheme, () => key.sign(msg.digest, context)) });
          case 'sign-tree-head':
            signatures++;
            return from.reply({ type: 'signature', signature: measured('sign', key.scheme, () => key.sign(msg.head, headContext)) });
          case 'stats':
            return from.reply({ type: 'stats', signatures });
          case 'describe':
            return from.reply({ type: 'key', key: { keyId: key.keyId, scheme: key.scheme.name, publicKey: key.publicKey, createdAt: key.createdAt } });
        }
      },
      stop: () => key.dispose(),
    };
  },
});
