/**
 * The actor system as the `knhk` package exports it: the runtime's, plus replicated clusters.
 * The runtime knows nothing of consensus (DESIGN.md, layers), so the method that joins the two
 * lives here, in the layer that imports both.
 */
import { ActorSystem as RuntimeActorSystem } from '../runtime/index.js';
import { Cluster, type ClusterOptions } from './cluster.js';

/** An actor system that can also spawn replicated clusters. Start one with `ActorSystem.start(options)`. */
export class ActorSystem extends RuntimeActorSystem {
  /**
   * Starts a replicated cluster: n replicas, their signers and a verifier, each in a worker
   * thread, under a supervisor of their own. See {@link Cluster}.
   */
  spawnCluster<Args>(options: ClusterOptions<Args>): Promise<Cluster> {
    return Cluster.spawn(this, options);
  }
}
