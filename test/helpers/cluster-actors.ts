/**
 * Asking a running cluster's actors directly, for tests of what its verifier accepts and its
 * signers sign.
 */
import type { ActorRef, ActorSystem } from '../../runtime/index.js';
import type { Cluster } from '../../actors/cluster.js';
import type { SignedPosition } from '../../protocols/consensus/index.js';

/** An actor of a cluster, asked with untyped messages. */
export type Ask = ActorRef<{ readonly type: string; readonly [field: string]: unknown }, unknown>;

/** The cluster's actor `name` (`verifier`, `signer-2`…). */
export function actor(system: ActorSystem, cluster: Cluster, name: string): Ask {
  const ref = system.lookup(`${cluster.id}/${name}`);
  if (ref === undefined) throw new Error(`${name} is not running`);
  return ref as Ask;
}

/** Whether the cluster's verifier accepts `signature` as replica `node`'s over `digest`, on an envelope or on a vote inside a certificate standing at `nested`. */
export async function accepts(system: ActorSystem, cluster: Cluster, node: number, digest: Uint8Array, signature: Uint8Array, nested?: SignedPosition): Promise<boolean> {
  const check = nested === undefined ? { node, digest, signature } : { node, digest, signature, nested };
  const answer = (await actor(system, cluster, 'verifier').ask({ type: 'verify', checks: [check] })) as { verdicts: boolean[] };
  return answer.verdicts[0] === true;
}

/** Replica `node`'s signer's signature over `digest`, with its key in force. */
export async function signature(system: ActorSystem, cluster: Cluster, node: number, digest: Uint8Array): Promise<Uint8Array> {
  return ((await actor(system, cluster, `signer-${node}`).ask({ type: 'sign', digest })) as { signature: Uint8Array }).signature;
}
