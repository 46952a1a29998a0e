/**
 * The verifier: checks the signatures a cluster's replicas receive, on the system's task pool,
 * under the cluster's signature policy. One serves a whole cluster, and it remembers verdicts
 * (and shares checks still running), so that a vote broadcast to every replica, or a certificate
 * relayed again, costs one verification. A member whose key the policy does not admit is refused
 * when the verifier starts; each signature is still judged under the policy on the pool, which
 * reports the check (`crypto.policy.check`) with the verification.
 *
 * Being the one judge of the cluster's signatures, it is also where a committed key rotation takes
 * effect for verification. Replicas report each rotation their replicated configuration installed
 * (protocols/consensus/configuration.ts); the verifier installs it (`crypto.key.rotation`) on the
 * report of the member itself, whose signer holds both keys, or of enough replicas that one is
 * correct. It keeps accepting the old key until the member reports that its signer adopted the
 * new one, with how far what it had signed then reaches (Core.signedThrough: a view, a log
 * position). From then on the old key counts only inside certificates — votes signed before the
 * adoption, relayed in checkpoints, view changes and state transfer — and only for votes standing
 * within that reach; never on a message's own envelope, which is signed when it is sent. So a
 * retired key that leaks vouches for nothing in views or positions its member had not reached
 * when it retired the key. A restarted verifier learns the rotations from the cluster's agent.
 * An envelope also needs its key within the key's validity window when it is checked.
 *
 * A signature policy migration (crypto/policy-migration.ts) takes effect here the same way, as
 * one step: on the report of enough replicas that one is correct (a member's own report does not
 * do, since the step changes every member's key), every member's new key is installed at once
 * and the next policy is in force for rotations after it. Each key is judged under the policy
 * that admitted it, so the votes of the category the cluster left still count inside
 * certificates, within their reach, while no envelope can be signed with them any more.
 */
import { defineBehavior, t } from '../runtime/index.js';
import {
  CryptoError,
  decodeRotationCertificate,
  KeyDirectory,
  requireAdmitted,
  SIGNATURE_POLICIES,
  type KeyDescriptor,
  type RotationCertificate,
  type BackendChoice,
  type SchemeName,
  type SignaturePolicy,
} from '../protocols/crypto/index.js';
import { hashBytes, hex, signaturePolicySchema, signedPositionSchema, standsWithin, stepCertificatesSchema, type SignedPosition } from '../protocols/consensus/index.js';
import type { KnownRotation } from './cluster-agent.js';
import { applyKeyRotation, applyPolicyStep, observedSchemes } from './crypto-telemetry.js';
import { verifyBatchTask, type VerifyJob } from './crypto-pool.js';
import { RecentMap } from './recent-map.js';
import { StepTally, type ReportedStep } from './step-tally.js';

/** A member's key in force when the verifier starts: its public facts, its epoch, and the first log position it signs for. */
export interface MemberKey extends KeyDescriptor {
  readonly epoch: number;
  readonly fromSequence: number;
}

/** Start arguments of a verifier. */
export interface VerifierArgs {
  /** The cluster's id: rotation certificates name it. */
  readonly cluster: string;
  /** The policy in force when `members` was taken: it admits every one of their keys. */
  readonly policy: SignaturePolicy;
  /** Member i's key at index i. */
  readonly members: readonly MemberKey[];
  /** The context the signers sign with (schemes other than Ed25519). */
  readonly context?: Uint8Array;
  /** The cluster agent's name, asked for the rotations committed since `members` was taken; none: no rotation before this start. */
  readonly agent?: string;
  /** Distinct replicas whose report of a rotation installs it (f+1: one of them is correct); the member's own report suffices. Default 1. */
  readonly reportQuorum?: number;
  /**
   * The replicas' actor names, member i's at index i. A report counts only when that replica sent
   * it: one replica cannot report in another's name, to make up a quorum or an adoption.
   */
  readonly replicas: readonly string[];
  /** The signature backend the pool verifies with (default: the pool thread's choice). */
  readonly cryptoBackend?: BackendChoice;
}

/** Verdicts kept: the latest this many at least, twice as many at most. */
const VERDICTS = 32_768;
/** Rotations reported and not installed yet that are remembered (the latest this many at least, twice as many at most); a Byzantine replica could report endless made-up ones. */
const MAX_REPORTED = 512;

const checkSchema = t.object({
  node: t.uint(),
  digest: t.bytes({ maxLength: 64 }),
  signature: t.bytes({ maxLength: 16384 }),
  /** A vote inside a certificate, signed when it was cast, standing here, rather than the envelope of a message being sent. */
  nested: t.optional(signedPositionSchema),
});

/** What a check is: `node`'s signature over `digest`, on an envelope or on a vote inside a certificate standing at `nested`. */
export type SignatureCheck = { readonly node: number; readonly digest: Uint8Array; readonly signature: Uint8Array; readonly nested?: SignedPosition };

const rotationFields = { certificate: t.bytes({ maxLength: 1 << 16 }), sequence: t.uint() };

/** A key signatures are checked with, its validity window (milliseconds since the epoch), and the policy that admitted it. */
interface Accepted {
  readonly scheme: SchemeName;
  readonly publicKey: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly policy: SignaturePolicy;
}

/** A key its member no longer signs with, and how far what it signed with it reaches. */
interface Retired extends Accepted {
  readonly through: SignedPosition;
}

const acceptedOf = (descriptor: KeyDescriptor, policy: SignaturePolicy): Accepted => ({
  scheme: descriptor.scheme,
  publicKey: descriptor.publicKey,
  notBefore: descriptor.notBefore,
  notAfter: descriptor.notAfter,
  policy,
});


/** A cluster's verifier: `verify` answers one verdict per check, in order. */
export const Verifier = defineBehavior({
  module: import.meta.url,
  export: 'Verifier',
  messages: t.variants({
    verify: { checks: t.array(checkSchema, { maxLength: 1024 }) },
    /** Replica `reporter`'s configuration installed this rotation at log position `sequence`. */
    installed: { reporter: t.uint(), ...rotationFields },
    /** Replica `reporter`'s configuration took the policy step `from` → `to` at log position `sequence`, installing these rotations. */
    migrated: { reporter: t.uint(), from: signaturePolicySchema, to: signaturePolicySchema, sequence: t.uint(), certificates: stepCertificatesSchema },
    /** Member `member`'s signer adopted its key `keyId`: its earlier key no longer signs envelopes, and vouched for votes up to `through`. */
    adopted: { member: t.uint(), keyId: t.string({ maxLength: 128 }), through: signedPositionSchema },
    stats: {},
  }),
  replies: t.variants({
    verdicts: { verdicts: t.array(t.boolean(), { maxLength: 1024 }) },
    /** `expired`: envelopes whose signature verified with a key outside its validity window when checked. */
    stats: { checks: t.uint(), verified: t.uint(), rejected: t.uint(), expired: t.uint(), rotationsRefused: t.uint(), reportsRefused: t.uint() },
    /** The adoption is applied: from now on every check sees the earlier key retired. */
    adopted: {},
  }),
  async start(ctx, args: VerifierArgs) {
    if (!(SIGNATURE_POLICIES as readonly string[]).includes(args.policy)) throw new CryptoError('UNKNOWN_POLICY', `unknown signature policy ${String(args.policy)}`);
    const registry = observedSchemes(args.cryptoBackend);
    const directory = new KeyDirectory(registry, { cluster: args.cluster });
    args.members.forEach((member, i) => {
      requireAdmitted(args.policy, registry.get(member.scheme), `member ${i}'s`);
      directory.enroll(i, member, member.fromSequence, member.epoch);
    });
    const reportQuorum = args.reportQuorum ?? 1;
    /** Per member: the key that signs envelopes, and one still being adopted (its predecessor), first the key in force. */
    const signing: Accepted[][] = args.members.map((member) => [acceptedOf(member, args.policy)]);
    /** The policy rotations are checked against: the cluster's, as migrations changed it. */
    let policy = args.policy;
    /** Per member: keys it no longer signs with, whose votes still stand inside certificates. */
    const retired: Retired[][] = args.members.map(() => []);
    /** Replicas that reported each rotation not installed yet, by new key id and position. */
    const reports = new RecentMap<string, Set<number>>(MAX_REPORTED);
    /** The key each check verified with, or undefined. */
    const verdicts = new RecentMap<string, Promise<Accepted | undefined>>(VERDICTS);
    const counts = { checks: 0, verified: 0, rejected: 0, expired: 0, rotationsRefused: 0, reportsRefused: 0 };
    /** Whether the message came from the actor of replica `member`. */
    const sentBy = (from: { readonly ref: { readonly name: string } | undefined }, member: number): boolean => {
      if (from.ref !== undefined && from.ref.name === args.replicas[member]) return true;
      counts.reportsRefused++;
      return false;
    };

    /** Installs a committed rotation; `record` says whether to report it (not when replaying what an earlier incarnation installed). */
    const install = (cert: RotationCertificate, sequence: number, record: boolean): void => {
      if (record) applyKeyRotation(directory, cert, sequence);
      else directory.applyRotation(cert, sequence);
      takeUp(cert);
    };
    /** The member signs envelopes with its new key now, and with the one before until it reports the adoption. */
    const takeUp = (cert: RotationCertificate): void => {
      signing[cert.member] = [acceptedOf(cert.next, policy), ...(signing[cert.member] ?? []).slice(0, 1)];
    };
    /** Replicas' reports of policy steps not taken yet. */
    const steps = new StepTally();
    /**
     * Per member, an adoption of a key not installed here yet: a member adopts the key a policy
     * step gave it once its own configuration took the step, which may be before enough replicas
     * have reported the step here. Only the member's own replica reports its adoptions.
     */
    const early = new Map<number, { readonly keyId: string; readonly through: SignedPosition }>();
    /** The member's signer signs with `keyId` now: its earlier keys count only inside certificates, for votes up to `through`. */
    const adopted = (member: number, keyId: string, through: SignedPosition): void => {
      const keys = signing[member];
      if (keys === undefined) return;
      if (directory.current(member).descriptor.keyId !== keyId) {
        if (!directory.history(member).some((record) => record.descriptor.keyId === keyId)) early.set(member, { keyId, through });
        return;
      }
      if (keys.length === 1) return;
      signing[member] = keys.slice(0, 1);
      retired[member]?.push(...keys.slice(1).map((key) => ({ ...key, through })));
      // A verdict reached with the retired key on an envelope must not outlive its retirement.
      verdicts.clear();
    };

    /** Takes the policy step `step`: every member's new key at once, and the step's policy for rotations after it. */
    const takeStep = (step: ReportedStep): void => {
      const rotations = step.certificates.map(decodeRotationCertificate);
      applyPolicyStep(directory, registry, policy, { from: step.from, to: step.to, rotations }, step.sequence);
      policy = step.to;
      rotations.forEach(takeUp);
      for (const cert of rotations) {
        const adoption = early.get(cert.member);
        if (adoption?.keyId !== cert.next.keyId) continue;
        early.delete(cert.member);
        adopted(cert.member, cert.next.keyId, adoption.through);
      }
    };

    if (args.agent !== undefined) {
      const agent = await ctx.lookup(args.agent);
      if (agent === undefined) throw new Error(`${args.agent} is not running`);
      const known = (await agent.ask({ type: 'rotations' }, { timeoutMs: 30_000 })) as { rotations: KnownRotation[] };
      const { rotations } = known;
      /** A step's rotations, taken with the first of them. */
      const taken = new Set<KnownRotation>();
      for (const rotation of rotations) {
        const { certificate, sequence, adopted: through, step } = rotation;
        if (taken.has(rotation)) continue;
        try {
          if (step !== undefined) {
            // The agent lists a step's rotations one by one: taken whole, as the replicas reported it.
            const together = rotations.filter((r) => r.sequence === sequence && r.step?.from === step.from && r.step.to === step.to);
            for (const r of together) taken.add(r);
            if (step.from !== policy) continue;
            takeStep({ ...step, sequence, certificates: together.map((r) => r.certificate) });
            for (const r of together) {
              if (r.adopted === undefined) continue;
              const cert = decodeRotationCertificate(r.certificate);
              adopted(cert.member, cert.next.keyId, r.adopted);
            }
            continue;
          }
          const cert = decodeRotationCertificate(certificate);
          if (cert.epoch <= directory.current(cert.member).epoch) continue;
          requireAdmitted(policy, registry.get(cert.next.scheme));
          install(cert, sequence, false);
          if (through !== undefined) adopted(cert.member, cert.next.keyId, through);
        } catch (error) {
          if (!(error instanceof CryptoError)) throw error;
          counts.rotationsRefused++;
        }
      }
    }

    const jobFor = (key: Accepted, check: SignatureCheck): VerifyJob => ({
      scheme: key.scheme,
      publicKey: key.publicKey,
      message: check.digest,
      signature: check.signature,
      policy: key.policy,
      ...(args.cryptoBackend === undefined ? {} : { backend: args.cryptoBackend }),
      ...(key.scheme === 'Ed25519' || args.context === undefined ? {} : { context: args.context }),
    });

    /** The first key the check may be made with that verifies it (the key in force first: the others are tried only on a failure). */
    const verifies = async (keys: readonly Accepted[], check: SignatureCheck): Promise<Accepted | undefined> => {
      for (const key of keys) {
        const [ok] = await ctx.runTask(verifyBatchTask, [jobFor(key, check)]);
        if (ok === true) return key;
      }
      return undefined;
    };

    /**
     * An envelope is signed as it is sent, which is now give or take its time in flight, and its
     * signer's key must be within its window then, as the signer requires (crypto/key-manager.ts)
     * by the same wall clock: a key past its window, leaked or kept, speaks for no one. One
     * verifier judges for the whole cluster, so its replicas cannot disagree on it. A vote inside a
     * certificate was cast when it was cast: its key's window is no concern of a later reader.
     */
    const inForce = (key: Accepted): boolean => {
      const now = Date.now();
      if (key.notBefore <= now && now < key.notAfter) return true;
      counts.expired++;
      return false;
    };

    const verdict = (check: SignatureCheck): Promise<boolean> => {
      counts.checks++;
      const current = signing[check.node];
      if (current === undefined) return Promise.resolve(false);
      const at = check.nested;
      const keys = at === undefined ? current : [...current, ...(retired[check.node] ?? []).filter((key) => standsWithin(at, key.through))];
      // Keyed by signer, digest, (a hash of) the signature and the kind of check: another member's
      // valid signature presented under this member's name must miss, and so must an old vote
      // presented as an envelope, or as standing elsewhere.
      const kind = at === undefined ? 'e' : `n${at.view ?? ''}/${at.sequence ?? ''}`;
      const key = `${check.node}:${kind}:${hex(check.digest)}:${hex(hashBytes(check.signature))}`;
      let verified = verdicts.get(key);
      if (verified === undefined) {
        verified = verifies(keys, check).then((found) => {
          if (found === undefined) counts.rejected++;
          else counts.verified++;
          return found;
        });
        verdicts.set(key, verified);
      }
      return verified.then((found) => found !== undefined && (at !== undefined || inForce(found)));
    };

    return {
      receive(msg, from) {
        switch (msg.type) {
          case 'stats':
            return from.reply({ type: 'stats', ...counts });
          case 'installed': {
            if (!sentBy(from, msg.reporter)) return;
            try {
              const cert = decodeRotationCertificate(msg.certificate);
              // A replica restarting reports every rotation its configuration holds; those in force or superseded here are old news.
              if (cert.epoch <= directory.current(cert.member).epoch) return;
              const id = `${cert.next.keyId}@${msg.sequence}`;
              const reporters = reports.get(id) ?? new Set<number>();
              reporters.add(msg.reporter);
              reports.set(id, reporters);
              if (msg.reporter !== cert.member && reporters.size < reportQuorum) return;
              reports.delete(id);
              requireAdmitted(policy, registry.get(cert.next.scheme));
              install(cert, msg.sequence, true);
            } catch (error) {
              // What the replicated configuration installed, the directory accepts by the same
              // rules; a refusal here means a report no correct replica made.
              if (!(error instanceof CryptoError)) throw error;
              counts.rotationsRefused++;
            }
            return;
          }
          case 'migrated': {
            if (!sentBy(from, msg.reporter)) return;
            steps.add(msg.reporter, { from: msg.from, to: msg.to, sequence: msg.sequence, certificates: msg.certificates });
            // A step taken may let one reported meanwhile from the policy it put in force follow.
            for (let step = steps.agreed(policy, reportQuorum); step !== undefined; step = steps.agreed(policy, reportQuorum)) {
              try {
                takeStep(step);
              } catch (error) {
                if (!(error instanceof CryptoError)) throw error;
                counts.rotationsRefused++;
                steps.discard(step);
              }
            }
            return;
          }
          case 'adopted':
            if (!sentBy(from, msg.member)) return;
            adopted(msg.member, msg.keyId, msg.through);
            return from.reply({ type: 'adopted' });
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
