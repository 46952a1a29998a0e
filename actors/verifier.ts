/**
 * The verifier: checks the signatures a cluster's replicas receive, on the system's task pool,
 * under the cluster's signature policy. One serves a whole cluster, and it remembers verdicts
 * (and shares checks still running), so that a vote broadcast to every replica, or a certificate
 * relayed again, costs one verification. A member whose key the policy does not admit is refused
 * when the verifier starts; each signature is still judged under the policy on the pool, which
 * reports the check (`crypto.policy.check`) with the verification.
 *
 * Being the one judge of the cluster's signatures, it is also where a committed key rotation takes
 * effect for verification: it installs the member's new key (`crypto.key.rotation`) and keeps
 * accepting the old one until the member's signer has adopted the new key and the old is retired,
 * so that what the member signed in between is not refused. A restarted verifier learns the
 * rotations committed since the cluster started from the cluster's agent.
 */
import { defineBehavior, t } from '../runtime/index.js';
import {
  CryptoError,
  decodeRotationCertificate,
  KeyDirectory,
  policyAdmits,
  SchemeRegistry,
  SIGNATURE_POLICIES,
  type KeyDescriptor,
  type SchemeName,
  type SignaturePolicy,
} from '../protocols/crypto/index.js';
import { hashBytes, hex } from '../protocols/consensus/index.js';
import type { CommittedRotation } from './cluster-agent.js';
import { applyKeyRotation } from './crypto-telemetry.js';
import { verifyBatchTask, type VerifyJob } from './crypto-pool.js';

/** A member's key in force when the verifier starts: its public facts, its epoch, and the first log position it signs for. */
export interface MemberKey extends KeyDescriptor {
  readonly epoch: number;
  readonly fromSequence: number;
}

/** Start arguments of a verifier. */
export interface VerifierArgs {
  readonly policy: SignaturePolicy;
  /** Member i's key at index i. */
  readonly members: readonly MemberKey[];
  /** The context the signers sign with (schemes other than Ed25519). */
  readonly context?: Uint8Array;
  /** The cluster agent's name, asked for the rotations committed since `members` was taken; none: no rotation before this start. */
  readonly agent?: string;
}

/** Verdicts kept; beyond this the oldest is forgotten. */
const VERDICTS = 65_536;

const checkSchema = t.object({
  node: t.uint(),
  digest: t.bytes({ maxLength: 64 }),
  signature: t.bytes({ maxLength: 16384 }),
});

/** What a check is: `node`'s signature over `digest`. */
export type SignatureCheck = { readonly node: number; readonly digest: Uint8Array; readonly signature: Uint8Array };

/** A key signatures are checked with. */
interface Accepted {
  readonly scheme: SchemeName;
  readonly publicKey: Uint8Array;
}

const acceptedOf = (descriptor: KeyDescriptor): Accepted => ({ scheme: descriptor.scheme, publicKey: descriptor.publicKey });

/** A cluster's verifier: `verify` answers one verdict per check, in order. */
export const Verifier = defineBehavior({
  module: import.meta.url,
  export: 'Verifier',
  messages: t.variants({
    verify: { checks: t.array(checkSchema, { maxLength: 1024 }) },
    /** A key rotation consensus committed at `sequence`: the new key is accepted from now on, the old one until `retire`. */
    rotate: { certificate: t.bytes({ maxLength: 1 << 16 }), sequence: t.uint() },
    /** Member `member` signs with its new key only: its old one is no longer accepted. */
    retire: { member: t.uint() },
    stats: {},
  }),
  replies: t.variants({
    verdicts: { verdicts: t.array(t.boolean(), { maxLength: 1024 }) },
    stats: { checks: t.uint(), verified: t.uint(), rejected: t.uint() },
    /** The rotation is in force (again, if it was already). */
    rotated: { member: t.uint(), keyId: t.string({ maxLength: 128 }) },
    /** The rotation was refused, with the `CryptoError` code saying why; nothing changed. */
    refused: { code: t.string({ maxLength: 64 }), reason: t.string({ maxLength: 1024 }) },
    retired: {},
  }),
  async start(ctx, args: VerifierArgs) {
    if (!(SIGNATURE_POLICIES as readonly string[]).includes(args.policy)) throw new CryptoError('UNKNOWN_POLICY', `unknown signature policy ${String(args.policy)}`);
    const registry = SchemeRegistry.create();
    const directory = new KeyDirectory(registry);
    args.members.forEach((member, i) => {
      if (!policyAdmits(args.policy, registry.get(member.scheme))) {
        throw new CryptoError('SCHEME_NOT_ALLOWED', `member ${i}'s ${member.scheme} key is not admitted by the ${args.policy} policy`);
      }
      directory.enroll(i, member, member.fromSequence, member.epoch);
    });
    /** The keys each member's signatures are checked with: the one in force first, then one being retired. */
    const accepted: Accepted[][] = args.members.map((member) => [acceptedOf(member)]);
    if (args.agent !== undefined) {
      const agent = await ctx.lookup(args.agent);
      if (agent === undefined) throw new Error(`${args.agent} is not running`);
      const known = (await agent.ask({ type: 'rotations' }, { timeoutMs: 30_000 })) as { rotations: CommittedRotation[] };
      for (const { certificate, sequence } of known.rotations) {
        const cert = decodeRotationCertificate(certificate);
        if (directory.current(cert.member).descriptor.keyId === cert.next.keyId) continue;
        directory.applyRotation(cert, sequence);
        accepted[cert.member] = [acceptedOf(cert.next)];
      }
    }
    const verdicts = new Map<string, Promise<boolean>>();
    const counts = { checks: 0, verified: 0, rejected: 0 };

    const jobFor = (key: Accepted, check: SignatureCheck): VerifyJob => ({
      scheme: key.scheme,
      publicKey: key.publicKey,
      message: check.digest,
      signature: check.signature,
      policy: args.policy,
      ...(key.scheme === 'Ed25519' || args.context === undefined ? {} : { context: args.context }),
    });

    /** Whether any accepted key of the member verifies the signature (the key in force first: the others are tried only on a failure). */
    const verifies = async (keys: readonly Accepted[], check: SignatureCheck): Promise<boolean> => {
      for (const key of keys) {
        const [ok] = await ctx.runTask(verifyBatchTask, [jobFor(key, check)]);
        if (ok === true) return true;
      }
      return false;
    };

    const verdict = (check: SignatureCheck): Promise<boolean> => {
      counts.checks++;
      const keys = accepted[check.node];
      if (keys === undefined) return Promise.resolve(false);
      // Keyed by signer, digest and (a hash of) the signature: another member's valid signature
      // presented under this member's name must miss.
      const key = `${check.node}:${hex(check.digest)}:${hex(hashBytes(check.signature))}`;
      const known = verdicts.get(key);
      if (known !== undefined) return known;
      const pending = verifies(keys, check).then((ok) => {
        if (ok) counts.verified++;
        else counts.rejected++;
        return ok;
      });
      if (verdicts.size >= VERDICTS) verdicts.delete(verdicts.keys().next().value as string);
      verdicts.set(key, pending);
      return pending;
    };

    return {
      receive(msg, from) {
        switch (msg.type) {
          case 'stats':
            return from.reply({ type: 'stats', ...counts });
          case 'rotate': {
            try {
              const cert = decodeRotationCertificate(msg.certificate);
              if (directory.current(cert.member).descriptor.keyId !== cert.next.keyId) {
                if (!policyAdmits(args.policy, registry.get(cert.next.scheme))) {
                  throw new CryptoError('SCHEME_NOT_ALLOWED', `the ${args.policy} policy does not admit a ${cert.next.scheme} key`);
                }
                applyKeyRotation(directory, cert, msg.sequence);
                accepted[cert.member] = [acceptedOf(cert.next), acceptedOf(cert.old)];
              }
              return from.reply({ type: 'rotated', member: cert.member, keyId: cert.next.keyId });
            } catch (error) {
              if (!(error instanceof CryptoError)) throw error;
              return from.reply({ type: 'refused', code: error.code, reason: error.message.slice(0, 1024) });
            }
          }
          case 'retire': {
            const keys = accepted[msg.member];
            if (keys !== undefined) accepted[msg.member] = keys.slice(0, 1);
            // A verdict reached with the retired key must not outlive it.
            verdicts.clear();
            return from.reply({ type: 'retired' });
          }
          case 'verify':
            // Answered when the pool is done, without holding the mailbox: checks run concurrently.
            void Promise.all(msg.checks.map(verdict)).then(
              (list) => from.reply({ type: 'verdicts', verdicts: list }),
              () => from.reply({ type: 'verdicts', verdicts: msg.checks.map(() => false) }),
            );
            return;
        }
      },
    };
  },
});
