/**
 * The verifier: checks the signatures a cluster's replicas receive, on the system's task pool,
 * under the cluster's signature policy. One serves a whole cluster, and it remembers verdicts
 * (and shares checks still running), so that a vote broadcast to every replica, or a certificate
 * relayed again, costs one verification. A member whose key the policy does not admit is refused
 * when the verifier starts; each signature is still judged under the policy on the pool, which
 * reports the check (`crypto.policy.check`) with the verification.
 */
import { defineBehavior, t } from '../runtime/index.js';
import { CryptoError, policyAdmits, SchemeRegistry, SIGNATURE_POLICIES, type SchemeName, type SignaturePolicy } from '../protocols/crypto/index.js';
import { hashBytes, hex } from '../protocols/consensus/index.js';
import { verifyBatchTask, type VerifyJob } from './crypto-pool.js';

/** A member's verification key. */
export interface MemberKey {
  readonly scheme: SchemeName;
  readonly publicKey: Uint8Array;
}

/** Start arguments of a verifier. */
export interface VerifierArgs {
  readonly policy: SignaturePolicy;
  /** Member i's key at index i. */
  readonly members: readonly MemberKey[];
  /** The context the signers sign with (schemes other than Ed25519). */
  readonly context?: Uint8Array;
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

/** A cluster's verifier: `verify` answers one verdict per check, in order. */
export const Verifier = defineBehavior({
  module: import.meta.url,
  export: 'Verifier',
  messages: t.variants({
    verify: { checks: t.array(checkSchema, { maxLength: 1024 }) },
    stats: {},
  }),
  replies: t.variants({
    verdicts: { verdicts: t.array(t.boolean(), { maxLength: 1024 }) },
    stats: { checks: t.uint(), verified: t.uint(), rejected: t.uint() },
  }),
  start(ctx, args: VerifierArgs) {
    if (!(SIGNATURE_POLICIES as readonly string[]).includes(args.policy)) throw new CryptoError('UNKNOWN_POLICY', `unknown signature policy ${String(args.policy)}`);
    const registry = SchemeRegistry.create();
    args.members.forEach((member, i) => {
      if (!policyAdmits(args.policy, registry.get(member.scheme))) {
        throw new CryptoError('SCHEME_NOT_ALLOWED', `member ${i}'s ${member.scheme} key is not admitted by the ${args.policy} policy`);
      }
    });
    const verdicts = new Map<string, Promise<boolean>>();
    const counts = { checks: 0, verified: 0, rejected: 0 };

    const verdict = (check: SignatureCheck): Promise<boolean> => {
      counts.checks++;
      const member = args.members[check.node];
      if (member === undefined) return Promise.resolve(false);
      // Keyed by signer, digest and (a hash of) the signature: another member's valid signature
      // presented under this member's name must miss.
      const key = `${check.node}:${hex(check.digest)}:${hex(hashBytes(check.signature))}`;
      const known = verdicts.get(key);
      if (known !== undefined) return known;
      const job: VerifyJob = {
        scheme: member.scheme,
        publicKey: member.publicKey,
        message: check.digest,
        signature: check.signature,
        policy: args.policy,
        ...(member.scheme === 'Ed25519' || args.context === undefined ? {} : { context: args.context }),
      };
      const pending = ctx.runTask(verifyBatchTask, [job]).then(([ok]) => {
        if (ok === true) counts.verified++;
        else counts.rejected++;
        return ok === true;
      });
      if (verdicts.size >= VERDICTS) verdicts.delete(verdicts.keys().next().value as string);
      verdicts.set(key, pending);
      return pending;
    };

    return {
      receive(msg, from) {
        if (msg.type === 'stats') {
          from.reply({ type: 'stats', ...counts });
          return;
        }
        // Answered when the pool is done, without holding the mailbox: checks run concurrently.
        void Promise.all(msg.checks.map(verdict)).then(
          (list) => from.reply({ type: 'verdicts', verdicts: list }),
          () => from.reply({ type: 'verdicts', verdicts: msg.checks.map(() => false) }),
        );
      },
    };
  },
});
