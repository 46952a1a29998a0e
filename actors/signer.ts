/**
 * The signer: the one actor that holds a replica's secret keys (DESIGN.md, key custody). It runs
 * in a worker thread of its own, opens the replica's encrypted key file at start — or, on the
 * replica's first start, generates the key and seals it there — and answers signing requests
 * with signatures. The keys never leave this thread; what crosses it is digests in and
 * signatures out: over consensus message digests, and over receipt-log tree heads (under a
 * context of their own, so that neither can pass for the other). Signing an ML-DSA message takes
 * milliseconds in pure JavaScript, which is why it is not done on the replica's own thread, whose
 * handler budget is one tick.
 *
 * Keys rotate (protocols/crypto/key-manager.ts): the signer proposes a successor, signed by both
 * keys, seals it in the store and records it as pending; the cluster has consensus agree on it;
 * when its replica executes the rotation, the replica has the signer adopt it for the positions
 * from there on, and the signer wipes the old secret and deletes its file. Until then it signs
 * with the old key, so a rotation that never commits changes nothing. A signer restarted
 * meanwhile takes the pending proposal back from its store: it proposes the same one again, and
 * adopts it if it committed while the signer was down. A policy migration asks for a successor of
 * another scheme; a proposal the cluster gave up before sending it to consensus is withdrawn (its
 * key wiped, its record and file deleted). Key generation and every signature are reported as
 * `crypto.keygen` and `crypto.sign` spans (crypto-telemetry.ts).
 */
import { defineBehavior, t } from '../runtime/index.js';
import {
  CryptoError,
  DEFAULT_KEY_LIFETIME_MS,
  decodeRotationCertificate,
  describeKey,
  encodeRotationCertificate,
  KeyManager,
  SCHEME_NAMES,
  SigningKey,
  type BackendChoice,
  type KeyDescriptor,
  type KeyId,
  type RotationCertificate,
  type SchemeName,
  type SchemeRegistry,
  type SignatureScheme,
  type ValidityWindow,
} from '../protocols/crypto/index.js';
import { sameBytes } from '../protocols/consensus/index.js';
import { BINARY_SCHEMAS, encodeTreeHead, treeHeadContext } from '../protocols/receipts/index.js';
import { measured, observedSchemes } from './crypto-telemetry.js';
import { CUSTODY_FILE, custodyFields, readCustody, writeCustody, type CustodyRecord } from './key-custody.js';
import { KeyStore } from './key-store.js';

/** The public half of a replica's key, as the cluster learns it from the signer, with its epoch and the log positions it signs for. */
export interface PublicKeyDescriptor extends KeyDescriptor {
  readonly epoch: number;
  readonly fromSequence: number;
  /** Last position it signed for; absent for the key in force. */
  readonly untilSequence?: number;
}

/** Start arguments of a signer. */
export interface SignerArgs {
  /** The cluster's id: the rotation certificates of this replica's keys name it, and so must the tree heads it signs. */
  readonly cluster: string;
  /**
   * The actor name of the replica whose keys these are: the only actor it signs for and adopts a
   * rotation from (plain code, which owns the system, may too). A signature is what authenticates
   * a replica's messages to its peers, so a signer that signed for any actor would let any actor
   * speak as its replica.
   */
  readonly replica: string;
  /** Where the replica's key files live (created on first use, mode 0700). */
  readonly directory: string;
  /** The replica whose keys these are: the member a rotation certificate names. */
  readonly member: number;
  /** The scheme of a key generated on first start (an existing key keeps its own). */
  readonly scheme: SchemeName;
  readonly passphrase: string;
  /** scrypt cost of a new key file, log2 N (default the key envelope's, 17). */
  readonly kdfLog2N?: number;
  /** Domain-separation context for schemes that take one (not Ed25519, which has none). */
  readonly context?: Uint8Array;
  /** Lifetime of each key from its creation (default {@link DEFAULT_KEY_LIFETIME_MS}). */
  readonly keyLifetimeMs?: number;
  /** A rotation is due once less than this remains of the key in force (default the key manager's, 7 days). */
  readonly rotationLeadMs?: number;
  /** The signature backend to sign with (default: the registry's choice). */
  readonly cryptoBackend?: BackendChoice;
}

const descriptorSchema = t.object(custodyFields(t.bytes({ maxLength: 8192 })));

const certificateBytes = t.bytes({ maxLength: 1 << 16 });

const publicOf = (record: CustodyRecord): PublicKeyDescriptor => ({
  ...record.descriptor,
  epoch: record.epoch,
  fromSequence: record.fromSequence,
  ...(record.untilSequence === undefined ? {} : { untilSequence: record.untilSequence }),
});

/** The keys of one replica: its store, its custody history, and the manager of the key in force. */
class Custody {
  readonly #store: KeyStore;
  readonly #args: SignerArgs;
  readonly #registry: SchemeRegistry;
  #history: CustodyRecord[];
  #manager: KeyManager;
  /** The successor key the manager just made, for `propose` to seal (the manager keeps it until adoption). */
  #made: SigningKey | undefined;

  private constructor(store: KeyStore, args: SignerArgs, registry: SchemeRegistry, history: CustodyRecord[], key: SigningKey) {
    this.#store = store;
    this.#args = args;
    this.#registry = registry;
    this.#history = history;
    this.#manager = this.#managerOf(key, history[history.length - 1] as CustodyRecord);
  }

  /**
   * Opens the replica's keys: the one its custody record names, or, on the very first start, a
   * new key, sealed and recorded. A store that has keys but no record is one whose first start
   * ended between the two writes: it holds exactly one key, the first. A rotation the record
   * holds as pending is taken back; files of keys it retired are removed, and so are the
   * temporaries of writes a crash interrupted.
   * @throws {CryptoError} `KEYSTORE_CORRUPT` for several unrecorded keys, a damaged record, one that
   * describes its key otherwise than the sealed key file or whose pending rotation does not replace
   * the key in force, and the key store's errors.
   */
  static async open(args: SignerArgs, registry: SchemeRegistry): Promise<Custody> {
    const store = new KeyStore(args.directory, registry, args.kdfLog2N === undefined ? {} : { kdf: { log2N: args.kdfLog2N, r: 8, p: 1 } });
    await store.removeStaged([CUSTODY_FILE]);
    const custody = await readCustody(args.directory);
    if (custody !== undefined) {
      const history = [...custody.keys];
      const current = history[history.length - 1] as CustodyRecord;
      // The record is what the cluster learns the key from (describe): it must be the sealed key's,
      // its validity window included (sealed with the key, so that editing the record cannot lengthen it).
      const key = await store.load(current.descriptor.keyId, args.passphrase, windowOf(current.descriptor)).catch((error: unknown) => {
        if (error instanceof CryptoError && error.code === 'KEYSTORE_MISMATCH') {
          throw new CryptoError('KEYSTORE_CORRUPT', `${args.directory}: custody.json describes key ${current.descriptor.keyId} otherwise than its sealed key file: ${error.message}`, { cause: error });
        }
        throw error;
      });
      const { scheme, publicKey, createdAt } = current.descriptor;
      if (scheme !== key.scheme.name || createdAt !== key.createdAt || !sameBytes(publicKey, key.publicKey)) {
        key.dispose();
        throw new CryptoError('KEYSTORE_CORRUPT', `${args.directory}: custody.json describes key ${current.descriptor.keyId} otherwise than its sealed key file`);
      }
      const opened = new Custody(store, args, registry, history, key);
      try {
        if (custody.pending !== undefined) await opened.#resume(custody.pending);
        await opened.#removeRetired();
      } catch (error) {
        opened.dispose();
        throw error;
      }
      return opened;
    }
    const ids = await store.list();
    if (ids.length > 1) throw new CryptoError('KEYSTORE_CORRUPT', `${args.directory} holds ${ids.length} keys and no custody record naming the one in force`);
    // The window the key manager gives every key it holds: from its creation, for the key lifetime.
    const windowFrom = (createdAt: number): ValidityWindow => ({ notBefore: createdAt, notAfter: createdAt + (args.keyLifetimeMs ?? DEFAULT_KEY_LIFETIME_MS) });
    // A first start that ended before its record left the key sealed with the window computed the
    // same way (a key lifetime changed in between makes the record disagree, refused next start).
    const key = ids.length === 1 ? await store.load(ids[0] as (typeof ids)[number], args.passphrase) : generate(registry.get(args.scheme), Date.now());
    if (ids.length === 0) await store.save(key, windowFrom(key.createdAt), args.passphrase);
    const first = [{ descriptor: describeKey(key, windowFrom(key.createdAt)), epoch: 0, fromSequence: 0 }];
    await writeCustody(args.directory, { keys: first });
    return new Custody(store, args, registry, first, key);
  }

  /**
   * Takes back the rotation an earlier incarnation proposed (`certificate`, from the custody
   * record): its successor is loaded from the store and pending again.
   * @throws {CryptoError} `KEYSTORE_CORRUPT` when the record is not a rotation of the key in force,
   *   and the key store's errors when the successor's file is missing or does not open.
   */
  async #resume(certificate: Uint8Array): Promise<void> {
    const path = this.#args.directory;
    let cert: RotationCertificate;
    try {
      cert = decodeRotationCertificate(certificate);
    } catch (cause) {
      throw new CryptoError('KEYSTORE_CORRUPT', `${path}: custody.json records a pending rotation that does not decode`, { cause });
    }
    const next = await this.#store.load(cert.next.keyId, this.#args.passphrase, windowOf(cert.next));
    try {
      this.#manager.resume(cert, next);
    } catch (cause) {
      next.dispose();
      throw new CryptoError('KEYSTORE_CORRUPT', `${path}: custody.json records a pending rotation that does not replace the key in force: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
  }

  /** Removes the files of keys the record retired, left by a crash before their removal (key-custody.ts). */
  async #removeRetired(): Promise<void> {
    const retired = new Set<string>(this.#history.slice(0, -1).map((record) => record.descriptor.keyId));
    for (const id of await this.#store.list()) if (retired.has(id)) await this.#store.remove(id);
  }

  /** The key in force and every earlier one, oldest first. */
  history(): PublicKeyDescriptor[] {
    return this.#history.map(publicOf);
  }

  /** The scheme of the key in force. */
  get scheme(): SignatureScheme {
    return this.#registry.get((this.#history[this.#history.length - 1] as CustodyRecord).descriptor.scheme);
  }

  /** Whether the key in force is due for rotation now (see `KeyManager.due`), or a rotation is pending. */
  get due(): boolean {
    return this.#manager.due(Date.now());
  }

  /** Signs with the key in force; throws `KEY_EXPIRED` and the like once it is no longer valid. */
  sign(message: Uint8Array, context: Uint8Array | undefined): { readonly keyId: string; readonly signature: Uint8Array } {
    return this.#manager.sign(Date.now(), message, context);
  }

  /**
   * The rotation certificate of a successor key of `scheme` (default: the key in force's), sealed
   * in the store and recorded as pending (key-custody.ts) before it is answered: the one already
   * proposed if it is still pending (`fresh` false: it may have been sent to consensus), else a new
   * one (`fresh`). A successor of another scheme than the one pending is refused
   * (`ROTATION_INVALID`): the pending one may still commit, and the next proposal waits for it or
   * its withdrawal.
   */
  async propose(scheme?: SchemeName): Promise<{ readonly certificate: Uint8Array; readonly fresh: boolean }> {
    const pending = this.#manager.pending;
    if (pending !== undefined) {
      if (scheme !== undefined && pending.next.scheme !== scheme) {
        throw new CryptoError('ROTATION_INVALID', `a rotation to a ${pending.next.scheme} key is pending; a ${scheme} successor waits for it`);
      }
      return { certificate: encodeRotationCertificate(pending), fresh: false };
    }
    const cert = this.#manager.propose(Date.now(), scheme === undefined ? undefined : this.#registry.get(scheme));
    const made = this.#made as SigningKey;
    this.#made = undefined;
    const encoded = encodeRotationCertificate(cert);
    try {
      await this.#store.save(made, windowOf(cert.next), this.#args.passphrase);
      await writeCustody(this.#args.directory, { keys: this.#history, pending: encoded });
    } catch (error) {
      // A successor that is not sealed and recorded must not be certified: it would not survive a
      // restart. Its file, if written, is never adopted, since nobody has its certificate.
      this.#manager.withdraw();
      throw error;
    }
    return { certificate: encoded, fresh: true };
  }

  /**
   * Withdraws the pending proposal of key `keyId`, wiping the key and deleting its file: for a
   * proposal that never went to consensus (a policy migration given up before any command was
   * sent). Returns whether it was pending; another pending proposal stays.
   */
  async withdraw(keyId: string): Promise<boolean> {
    if (this.#manager.pending?.next.keyId !== keyId) return false;
    this.#manager.withdraw();
    await writeCustody(this.#args.directory, { keys: this.#history });
    await this.#store.remove(keyId as KeyId);
    return true;
  }

  /**
   * Adopts the rotation `certificate`, which consensus committed at position `sequence`: signs with
   * the new key from now on, records it, wipes the old secret and deletes its file. Adopting a
   * rotation already adopted (the one in force, or one superseded since: a restarted replica
   * carries out its configuration's rotations from the first) answers the key in force. Throws
   * `ROTATION_INVALID` for a rotation that does not replace the key in force at the next epoch,
   * and the key store's errors when the successor's file is missing or does not open.
   */
  async adopt(certificate: Uint8Array, sequence: number): Promise<PublicKeyDescriptor> {
    const cert = decodeRotationCertificate(certificate);
    const current = this.#history[this.#history.length - 1] as CustodyRecord;
    if (this.#history.some((record) => record.descriptor.keyId === cert.next.keyId && record.epoch === cert.epoch)) return publicOf(current);
    if (cert.member !== this.#args.member || cert.old.keyId !== current.descriptor.keyId) {
      throw new CryptoError('ROTATION_INVALID', `the rotation replaces member ${cert.member}'s key ${cert.old.keyId}, not this signer's ${current.descriptor.keyId}`);
    }
    if (cert.epoch !== current.epoch + 1) throw new CryptoError('ROTATION_INVALID', `the rotation installs epoch ${cert.epoch}, not ${current.epoch + 1}`);
    // Sealed when it was proposed, by this incarnation or an earlier one: taken from its file, with
    // the window it was sealed with, whatever key lifetime this incarnation was started with.
    const adopted: CustodyRecord = { descriptor: cert.next, epoch: cert.epoch, fromSequence: sequence };
    const manager = this.#managerOf(await this.#store.load(cert.next.keyId, this.#args.passphrase, windowOf(cert.next)), adopted);
    this.#manager.dispose();
    this.#manager = manager;
    this.#history = [...this.#history.slice(0, -1), { ...current, untilSequence: sequence - 1 }, adopted];
    await writeCustody(this.#args.directory, { keys: this.#history });
    await this.#store.remove(current.descriptor.keyId);
    return publicOf(adopted);
  }

  dispose(): void {
    this.#manager.dispose();
  }

  #managerOf(key: SigningKey, record: Pick<CustodyRecord, 'descriptor' | 'epoch' | 'fromSequence'>): KeyManager {
    return new KeyManager({
      cluster: this.#args.cluster,
      member: this.#args.member,
      schemes: this.#registry,
      key,
      epoch: record.epoch,
      fromSequence: record.fromSequence,
      window: windowOf(record.descriptor),
      ...(this.#args.keyLifetimeMs === undefined ? {} : { lifetimeMs: this.#args.keyLifetimeMs }),
      ...(this.#args.rotationLeadMs === undefined ? {} : { rotationLeadMs: this.#args.rotationLeadMs }),
      generate: (scheme, createdAt) => (this.#made = generate(scheme, createdAt)),
    });
  }
}

const windowOf = ({ notBefore, notAfter }: ValidityWindow): ValidityWindow => ({ notBefore, notAfter });

const generate = (scheme: SignatureScheme, createdAt: number): SigningKey => measured('keygen', scheme, () => SigningKey.generate(scheme, createdAt));

/**
 * A replica's signer. `sign` answers a signature over the digest; `describe` the key in force and
 * its predecessors; `propose-rotation`, `withdraw-rotation` and `adopt-rotation` rotate the key (see the module comment).
 * It signs, and adopts a rotation, for its replica's actor only ({@link SignerArgs.replica}), and
 * proposes a rotation for no actor at all; plain code (the cluster, on the thread that owns the
 * system) may ask all of it. Any other actor's request is refused with code `FORBIDDEN`. A tree
 * head is given as its fields and encoded here, for its own cluster only, so that no caller can
 * have arbitrary bytes signed under the key (an Ed25519 tree head has no context to tell it from
 * a rotation statement).
 */
export const Signer = defineBehavior({
  module: import.meta.url,
  export: 'Signer',
  messages: t.variants({
    /** The SHA-256 digest of a consensus message body. */
    sign: { digest: t.bytes({ length: 32 }) },
    /** A receipt-log tree head, signed in its canonical encoding under the tree-head context (protocols/receipts). */
    'sign-tree-head': { head: BINARY_SCHEMAS.treeHead },
    describe: {},
    /** A successor of `scheme` (default: the scheme of the key in force), as a signature policy migration asks. */
    'propose-rotation': { scheme: t.optional(t.oneOf(...SCHEME_NAMES)) },
    /** Whether the key in force is due for rotation (its expiry is within the lead time), or a proposal awaits consensus. */
    'rotation-due': {},
    /** Withdraw the pending proposal of this key, which was never sent to consensus. */
    'withdraw-rotation': { keyId: t.string({ maxLength: 128 }) },
    'adopt-rotation': { certificate: certificateBytes, sequence: t.uint() },
    /** Signatures made by this incarnation (for the consensus benchmark's crypto ceiling). */
    stats: {},
  }),
  replies: t.variants({
    signature: { signature: t.bytes({ maxLength: 16384 }) },
    /** A tree-head signature, with the key that made it (the one in force when it was asked). */
    'head-signature': { signature: t.bytes({ maxLength: 16384 }), keyId: t.string({ maxLength: 128 }), scheme: t.oneOf(...SCHEME_NAMES) },
    key: { key: descriptorSchema, history: t.array(descriptorSchema, { maxLength: 1 << 16 }) },
    /** `fresh`: made for this request, not a proposal pending from before (which may have been sent to consensus already). */
    rotation: { certificate: certificateBytes, fresh: t.boolean() },
    due: { due: t.boolean() },
    withdrawn: { withdrawn: t.boolean() },
    /** A rotation request refused, with the `CryptoError` code saying why; the keys are unchanged. */
    refused: { code: t.string({ maxLength: 64 }), reason: t.string({ maxLength: 1024 }) },
    stats: { signatures: t.uint(), treeHeads: t.uint() },
  }),
  async start(_ctx, args: SignerArgs) {
    const custody = await Custody.open(args, observedSchemes(args.cryptoBackend));
    let signatures = 0;
    /** Of which tree heads (each verified once, by the cluster's collector). */
    let treeHeads = 0;
    const describe = (): { type: 'key'; key: PublicKeyDescriptor; history: PublicKeyDescriptor[] } => {
      const history = custody.history();
      return { type: 'key', key: history[history.length - 1] as PublicKeyDescriptor, history };
    };
    type Refusable = { reply(value: { type: 'refused'; code: string; reason: string }): void };
    const refuse = (from: Refusable, error: unknown): void => {
      if (!(error instanceof CryptoError)) throw error;
      from.reply({ type: 'refused', code: error.code, reason: error.message.slice(0, 1024) });
    };
    /** Does `work`, answering a `CryptoError` (a key expired or revoked) as a refusal rather than crashing the signer. */
    const refusing = (from: Refusable, work: () => void): void => {
      try {
        work();
      } catch (error) {
        refuse(from, error);
      }
    };
    /** Refuses `from` unless `allowed`: whether the sender may ask what it asks. */
    const permitted = (from: Refusable & { readonly ref?: { readonly name: string } | undefined }, allowed: boolean, what: string): boolean => {
      if (!allowed) from.reply({ type: 'refused', code: 'FORBIDDEN', reason: `${what} is not for ${from.ref?.name ?? 'plain code'} to ask` });
      return allowed;
    };
    /** Carries out a rotation step, answering a `CryptoError` as a refusal. */
    const rotating = <R>(step: Promise<R>, answer: (result: R) => void, from: Refusable): Promise<void> =>
      step.then(answer, (error: unknown) => refuse(from, error));
    return {
      receive(msg, from) {
        const scheme = custody.scheme;
        const owner = from.ref === undefined;
        const replicaOrOwner = owner || from.ref?.name === args.replica;
        switch (msg.type) {
          case 'sign':
            if (!permitted(from, replicaOrOwner, 'signing')) return;
            return refusing(from, () => {
              const context = scheme.name === 'Ed25519' ? undefined : args.context;
              const { signature } = measured('sign', scheme, () => custody.sign(msg.digest, context));
              signatures++;
              from.reply({ type: 'signature', signature });
            });
          case 'sign-tree-head':
            if (!permitted(from, replicaOrOwner, 'signing')) return;
            if (msg.head.cluster !== args.cluster) return from.reply({ type: 'refused', code: 'FORBIDDEN', reason: `a tree head of cluster ${JSON.stringify(msg.head.cluster)}, not ${JSON.stringify(args.cluster)}` });
            return refusing(from, () => {
              const { keyId, signature } = measured('sign', scheme, () => custody.sign(encodeTreeHead(msg.head), treeHeadContext(scheme)));
              signatures++;
              treeHeads++;
              from.reply({ type: 'head-signature', signature, keyId, scheme: scheme.name });
            });
          case 'stats':
            return from.reply({ type: 'stats', signatures, treeHeads });
          case 'describe':
            return from.reply(describe());
          case 'rotation-due':
            return refusing(from, () => from.reply({ type: 'due', due: custody.due }));
          case 'propose-rotation':
            if (!permitted(from, owner, 'proposing a rotation')) return;
            return rotating(custody.propose(msg.scheme), (proposal) => from.reply({ type: 'rotation', ...proposal }), from);
          case 'withdraw-rotation':
            if (!permitted(from, owner, 'withdrawing a rotation')) return;
            return rotating(custody.withdraw(msg.keyId), (withdrawn) => from.reply({ type: 'withdrawn', withdrawn }), from);
          case 'adopt-rotation':
            if (!permitted(from, replicaOrOwner, 'adopting a rotation')) return;
            return rotating(custody.adopt(msg.certificate, msg.sequence), () => from.reply(describe()), from);
        }
      },
      stop: () => custody.dispose(),
    };
  },
});
