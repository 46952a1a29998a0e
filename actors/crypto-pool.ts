/**
 * Signature verification off the event loop: pool tasks over the signature layer, so that an
 * actor (a replica's verifier, a client checking a certificate) never blocks its thread for a
 * whole ML-DSA verification. Verification needs no secret, so jobs carry everything they need.
 */
import { defineTask, type Task } from '../runtime/index.js';
import { SchemeRegistry, type SchemeName } from '../protocols/crypto/index.js';

/** One signature to check. */
export interface VerifyJob {
  readonly scheme: SchemeName;
  readonly publicKey: Uint8Array;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
  readonly context?: Uint8Array;
}

/** Anything that runs pool tasks: an `ActorSystem` or an actor's context. */
export interface TaskRunner {
  runTask<In, Out>(task: Task<In, Out>, input: In): Promise<Out>;
}

// One registry per pool thread, made on the thread's first job (its backend probe runs once).
let registry: SchemeRegistry | undefined;

function verifyOne(job: VerifyJob): boolean {
  registry ??= SchemeRegistry.create();
  const scheme = registry.get(job.scheme);
  return scheme.verify(scheme.importPublicKey(job.publicKey), job.message, job.signature, job.context);
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
