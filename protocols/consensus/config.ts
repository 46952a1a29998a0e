/**
 * Cluster configuration and quorum arithmetic.
 *
 * BFT protocols tolerate f Byzantine replicas out of n ≥ 3f+1 (Castro & Liskov §2; Yin et al. §3).
 * Their quorum is ⌈(n+f+1)/2⌉: any two quorums then intersect in at least f+1 replicas, so in at
 * least one correct one. For n = 3f+1 that is the familiar 2f+1; for n = 3f+2 or 3f+3 plain 2f+1
 * would let two quorums meet only in Byzantine replicas. Raft tolerates f crashed servers out of
 * n ≥ 2f+1 and its quorum is a majority (Ongaro & Ousterhout §5.2).
 */
import { ConsensusError } from './errors.js';

/** The replication protocols knhk implements. */
export type ConsensusAlgorithm = 'pbft' | 'hotstuff' | 'raft';

/** All algorithms, in documentation order. */
export const CONSENSUS_ALGORITHMS: readonly ConsensusAlgorithm[] = ['pbft', 'hotstuff', 'raft'];

/** A replica's identity: its index in the configuration, 0 ≤ id < n. */
export type NodeId = number;

/** What a caller supplies; {@link consensusConfig} derives and checks the rest. */
export interface ConsensusConfigInput {
  /** This replica's id. */
  readonly nodeId: NodeId;
  /** Number of replicas. */
  readonly n: number;
  /** The protocol. */
  readonly algorithm: ConsensusAlgorithm;
  /** Faults to tolerate; defaults to the most n allows. A value n cannot tolerate is refused. */
  readonly f?: number;
}

/** A validated configuration. */
export interface ConsensusConfig {
  readonly nodeId: NodeId;
  readonly n: number;
  readonly algorithm: ConsensusAlgorithm;
  /** Faults tolerated: Byzantine for PBFT and HotStuff, crash for Raft. */
  readonly f: number;
  /** Votes that make a certificate (BFT) or a majority (Raft). */
  readonly quorumSize: number;
  /** Matching replies a client needs before it accepts a result. */
  readonly replyQuorum: number;
  /** The members, `0 … n−1`. */
  readonly members: readonly NodeId[];
}

/** The members other than this replica. */
export function peersOf(config: ConsensusConfig): NodeId[] {
  return config.members.filter((id) => id !== config.nodeId);
}

/** True for the protocols that tolerate Byzantine replicas. */
export function isByzantineTolerant(algorithm: ConsensusAlgorithm): boolean {
  return algorithm !== 'raft';
}

/** The most faults `n` replicas tolerate under `algorithm`. */
export function maxFaults(algorithm: ConsensusAlgorithm, n: number): number {
  return isByzantineTolerant(algorithm) ? Math.floor((n - 1) / 3) : Math.floor((n - 1) / 2);
}

/** The quorum size for `n` replicas tolerating `f` faults under `algorithm` (see the module comment). */
export function quorumSize(algorithm: ConsensusAlgorithm, n: number, f: number): number {
  return isByzantineTolerant(algorithm) ? Math.ceil((n + f + 1) / 2) : Math.floor(n / 2) + 1;
}

/**
 * Validates a configuration and derives `f`, the quorum sizes and the member list.
 * @throws {ConsensusError} `INVALID_CONFIG` when n is not a positive integer, the node id is not a
 * member, the algorithm is unknown, or `f` is more than n can tolerate (BFT: n < 3f+1; Raft: n < 2f+1).
 */
export function consensusConfig(input: ConsensusConfigInput): ConsensusConfig {
  const { n, nodeId, algorithm } = input;
  if (!(CONSENSUS_ALGORITHMS as readonly string[]).includes(algorithm)) {
    throw new ConsensusError('INVALID_CONFIG', `unknown consensus algorithm ${JSON.stringify(algorithm)}`);
  }
  if (!Number.isSafeInteger(n) || n < 1) throw new ConsensusError('INVALID_CONFIG', `n must be a positive integer, got ${n}`);
  if (!Number.isSafeInteger(nodeId) || nodeId < 0 || nodeId >= n) {
    throw new ConsensusError('INVALID_CONFIG', `node id ${nodeId} is not a member of a cluster of ${n}`);
  }
  const f = input.f ?? maxFaults(algorithm, n);
  if (!Number.isSafeInteger(f) || f < 0) throw new ConsensusError('INVALID_CONFIG', `f must be a non-negative integer, got ${f}`);
  if (isByzantineTolerant(algorithm) && n < 3 * f + 1) {
    throw new ConsensusError('INVALID_CONFIG', `${algorithm} with f = ${f} needs n ≥ 3f+1 = ${3 * f + 1} replicas, got n = ${n}`);
  }
  if (!isByzantineTolerant(algorithm) && n < 2 * f + 1) {
    throw new ConsensusError('INVALID_CONFIG', `raft with f = ${f} needs n ≥ 2f+1 = ${2 * f + 1} servers, got n = ${n}`);
  }
  return {
    nodeId,
    n,
    algorithm,
    f,
    quorumSize: quorumSize(algorithm, n, f),
    replyQuorum: isByzantineTolerant(algorithm) ? f + 1 : 1,
    members: Array.from({ length: n }, (_, i) => i),
  };
}
