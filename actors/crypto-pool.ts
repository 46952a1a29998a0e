/**
 * Signing and verification off the event loop: pool tasks over the signature layer, so that an
 * actor (a replica's signer or verifier, a client checking a certificate) never blocks its thread
 * for a whole ML-DSA operation. Verification needs no secret, so its jobs carry everything;
 * signing jobs carry a handle into the pool's key table (see pool-keys.ts), never a key.
 */
import { defineTask, poolShared, type Task } from '../runtime/index.js';
import { CryptoError, SCHEME_NAMES, verifyUnderPolicy, type BackendChoice, type SchemeName, type SignaturePolicy, type SignatureScheme } from '../protocols/crypto/index.js';
import { measured, measuredVerify, observedSchemes, type Verdict } from './crypto-telemetry.js';
import { POOL_KEYS, withPoolKey, type PoolKeyHandle } from './pool-keys.js';

/** One signature to check. */
export interface VerifyJob {
  readonly scheme: SchemeName;
  readonly publicKey: Uint8Array;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
  readonly context?: Uint8Array;
  /** The cluster's signature policy: when given, the signature is judged under it, as `verifyUnderPolicy` does. */
  readonly policy?: SignaturePolicy;
  /**
   * The backend to verify with instead of the pool thread's choice (see `SchemeRegistry.create`'s
   * `force`); one that cannot be forced rejects the task with `CryptoError`, it is no verdict.
   */
  readonly backend?: BackendChoice;
}

/** Anything that runs pool tasks: an `ActorSystem` or an actor's context. */
export interface TaskRunner {
  runTask<In, Out>(task: Task<In, Out>, input: In): Promise<Out>;
}

const VERIFIED: Verdict = { verified: true };

/** The verdict on `job`: under its policy when it names one (the policy's error code saying why not), else by the scheme alone. */
function judge(scheme: SignatureScheme, job: VerifyJob): Verdict {
  const publicKey = scheme.importPublicKey(job.publicKey);
  if (job.policy === undefined) return scheme.verify(publicKey, job.message, job.signature, job.context) ? VERIFIED : { verified: false, failure: 'SIGNATURE_INVALID' };
  try {
    verifyUnderPolicy(job.policy, scheme, publicKey, job.message, job.signature, job.context);
    return VERIFIED;
  } catch (error) {
    if (error instanceof CryptoError) return { verified: false, failure: error.code };
    throw error;
  }
}

/** One verdict; a job naming no known scheme is `false`, like any other bad input, never an error that would sink its batch. */
function verifyOne(job: VerifyJob): boolean {
  if (!(SCHEME_NAMES as readonly string[]).includes(job.scheme)) return false;
  const scheme = observedSchemes(job.backend).get(job.scheme);
  return measuredVerify(scheme, job.policy, () => judge(scheme, job));
}

/** Verifies a batch of signatures in one pool thread; answers one verdict per job, in order. */
export const verifyBatchTask = defineTask({
  module: import.meta.url,
  export: 'verifyBatchTask',
  run: (jobs: readonly VerifyJob[]): boolean[] => jobs.map(verifyOne),
});

/** Verifies one signature on the pool. */
export function verifyAsync(runner: TaskRunner, job: VerifyJob): Promise<boolean> {
  return runner.runTask(verifyBatchTask, [job]).then(([verdict]) => verdict === true);
}

/**
 * Verifies many signatures on the pool, split into `chunks` tasks of consecutive jobs (pass the
 * pool's thread count, or a multiple of it, so that every thread takes a share). Verdicts come
 * back in the order of `jobs`.
 */
export async function verifyBatch(runner: TaskRunner, jobs: readonly VerifyJob[], chunks = 4): Promise<boolean[]> {
  const size = Math.max(1, Math.ceil(jobs.length / chunks));
  const parts: Promise<boolean[]>[] = [];
  for (let at = 0; at < jobs.length; at += size) parts.push(runner.runTask(verifyBatchTask, jobs.slice(at, at + size)));
  return (await Promise.all(parts)).flat();
}

/** One message to sign with a registered pool key. */
export interface SignJob {
  readonly key: PoolKeyHandle;
  readonly message: Uint8Array;
  readonly context?: Uint8Array;
  /** The backend to sign with instead of the pool thread's choice. */
  readonly backend?: BackendChoice;
}

/** Signs on a pool thread with the key the handle names in the shared key table. */
export const signTask = defineTask({
  module: import.meta.url,
  export: 'signTask',
  run(job: SignJob): Uint8Array {
    const scheme = observedSchemes(job.backend).get(job.key.scheme);
    // Measured around the key's lending too, so that a released key shows as a failed signature (KEY_DISPOSED).
    return measured('sign', scheme, () => withPoolKey(poolShared(POOL_KEYS), job.key, (secret) => scheme.sign(scheme.importSecretKey(secret), job.message, job.context)));
  },
});

/** Signs `message` on the pool with a key registered in the system's `PoolKeyTable` (on `backend` when given). */
export function signAsync(runner: TaskRunner, key: PoolKeyHandle, message: Uint8Array, context?: Uint8Array, backend?: BackendChoice): Promise<Uint8Array> {
  return runner.runTask(signTask, { key, message, ...(context === undefined ? {} : { context }), ...(backend === undefined ? {} : { backend }) });
}
