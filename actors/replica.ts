/**
 * The replica actor: one consensus core in a worker thread of its own, hosted by a
 * {@link ReplicaHost} over the replica's LMDB store. Its peers are the other replica actors,
 * found by name, so that a restarted peer (a new incarnation) is found again; its signatures
 * come from its signer, its verdicts from the cluster's verifier; network faults are applied
 * to what it sends. Killing its thread at any instant loses nothing that was acknowledged: the
 * store is written before any message that depends on it leaves.
 */
import { defineBehavior, t, type ActorRef } from '../runtime/index.js';
import { commandDigest, commandSchema, consensusConfig, type Applied, type ConsensusAlgorithm, type ProtocolDefinition } from '../protocols/consensus/index.js';
import { KvStateMachine } from '../protocols/consensus/kv.js';
import { pbft } from '../protocols/pbft/index.js';
import { hotstuff } from '../protocols/hotstuff/index.js';
import { raft } from '../protocols/raft/index.js';
import { BYZANTINE_MODES, type ByzantineMode } from '../protocols/sim/byzantine.js';
import { Prng } from '../protocols/sim/prng.js';
import { ReplicaHost } from './replica-host.js';
import { ReplicaStore } from './replica-store.js';
import { PeerDirectory } from './peer-directory.js';
import { HEALTHY, linkDelay, linkFaultsSchema, type LinkFaults } from './link-faults.js';
import type { ExecutedPosition } from './cluster-agent.js';

/** Protocol tuning a cluster passes to its replicas. */
export interface ReplicaTuning {
  /** Most commands per proposal (PBFT and HotStuff batches, Raft entries per append). */
  readonly batch?: number;
  /** The protocol's base timeout, ms: PBFT's request timeout, HotStuff's view timeout, Raft's election timeout. */
  readonly timeoutMs?: number;
}

/** Names of the actors a replica talks to. */
export interface ReplicaPeers {
  /** Replica i's actor name at index i. */
  readonly replicas: readonly string[];
  readonly signer: string;
  readonly verifier: string;
  readonly agent: string;
  readonly client: string;
}

/** Start arguments of a replica. */
export interface ReplicaArgs {
  readonly clusterId: string;
  readonly protocol: ConsensusAlgorithm;
  readonly n: number;
  readonly nodeId: number;
  /** The replica's LMDB environment. */
  readonly directory: string;
  readonly tuning: ReplicaTuning;
  readonly names: ReplicaPeers;
  /** Seeds jitter and Byzantine choices. */
  readonly seed: number;
}

/** Message types that must not queue behind bulk traffic: elections and view changes. */
const URGENT = new Set(['view-change', 'new-view', 'timeout', 'pre-vote', 'pre-vote-reply', 'request-vote', 'request-vote-reply']);

/** What the cluster learns of an execution: enough for status, convergence checks and receipts, not the commands themselves. */
function executed(applied: Applied): ExecutedPosition {
  if (applied.kind === 'snapshot') return { type: 'snapshot', position: applied.position, stateHash: applied.stateHash };
  return {
    type: 'entry',
    position: applied.position,
    view: applied.view,
    stateHashBefore: applied.stateHashBefore,
    stateHash: applied.stateHash,
    timestamp: applied.timestamp,
    commands: applied.commands.map((c) => ({ client: c.client, timestamp: c.timestamp, digest: commandDigest(c) })),
  };
}

/** The protocol definition a replica runs, with the cluster's tuning. */
export function replicaProtocol(protocol: ConsensusAlgorithm, tuning: ReplicaTuning): ProtocolDefinition<{ readonly type: string }> {
  const { batch, timeoutMs } = tuning;
  switch (protocol) {
    case 'pbft':
      return pbft({ ...(batch === undefined ? {} : { batchSize: batch }), ...(timeoutMs === undefined ? {} : { requestTimeoutMs: timeoutMs }) }) as ProtocolDefinition<{ readonly type: string }>;
    case 'hotstuff':
      return hotstuff({ ...(batch === undefined ? {} : { batchSize: batch }), ...(timeoutMs === undefined ? {} : { baseTimeoutMs: timeoutMs }) }) as ProtocolDefinition<{ readonly type: string }>;
    case 'raft':
      return raft({
        ...(batch === undefined ? {} : { maxEntriesPerMessage: batch }),
        ...(timeoutMs === undefined ? {} : { electionTimeoutMs: timeoutMs, heartbeatMs: Math.max(1, Math.floor(timeoutMs / 5)) }),
      }) as ProtocolDefinition<{ readonly type: string }>;
  }
}

const statusSchema = t.object({
  node: t.uint(),
  role: t.string({ maxLength: 32 }),
  view: t.uint(),
  commitIndex: t.uint(),
  leader: t.optional(t.uint()),
  stateHash: t.bytes({ maxLength: 64 }),
  byzantine: t.optional(t.oneOf(...BYZANTINE_MODES)),
  steps: t.uint(),
  malformed: t.uint(),
  forged: t.uint(),
  nonMember: t.uint(),
  storeOpens: t.uint(),
});

/** What a replica reports about itself. */
export type ReplicaReport = ReturnType<typeof statusSchema.parse>;

/** A replica of a cluster. */
export const Replica = defineBehavior({
  module: import.meta.url,
  export: 'Replica',
  messages: t.variants({
    /** An envelope from a peer replica. */
    peer: { bytes: t.bytes({ maxLength: 16 << 20 }) },
    /** A client's command. */
    request: { command: commandSchema },
    /** The network faults and this replica's Byzantine mode, now in force. */
    faults: { links: linkFaultsSchema, byzantine: t.optional(t.oneOf(...BYZANTINE_MODES)) },
    status: {},
    /** The host stopped on a broken invariant or a failed store: crash, to be restarted. */
    fault: { message: t.string({ maxLength: 4096 }) },
  }),
  replies: statusSchema,
  async start(ctx, args: ReplicaArgs) {
    const { names, nodeId } = args;
    const config = consensusConfig({ nodeId, n: args.n, algorithm: args.protocol });
    const store = await ReplicaStore.open(args.directory, { clusterId: args.clusterId, nodeId, protocol: args.protocol, n: args.n });
    const required = async <M, R>(name: string): Promise<ActorRef<M, R>> => {
      const ref = await ctx.lookup<M, R>(name);
      if (ref === undefined) throw new Error(`${name} is not running`);
      return ref;
    };
    // The signer and verifier may be restarted too: their refs are looked up again when one fails.
    let signer = await required(names.signer);
    let verifier = await required(names.verifier);
    const agent = await required(names.agent);

    let links: LinkFaults = HEALTHY;
    let mode: ByzantineMode | undefined;
    const prng = new Prng(args.seed);
    const random = (): number => prng.u32() / 2 ** 32;
    const peers = new PeerDirectory(ctx, names.replicas);
    const client = new PeerDirectory(ctx, [names.client]);
    const delayed = new Set<ReturnType<typeof setTimeout>>();
    const deliver = (to: number, bytes: Uint8Array, urgent: boolean): void => peers.tell(to, { type: 'peer', bytes }, urgent);

    const host = await ReplicaHost.start({
      definition: replicaProtocol(args.protocol, args.tuning),
      config,
      stateMachine: new KvStateMachine(),
      store,
      clock: ctx.clock,
      seed: args.seed + 1,
      crypto: {
        async sign(digest) {
          const reply = (await signer.ask({ type: 'sign', digest }, { timeoutMs: 60_000 }).catch(async (error: unknown) => {
            signer = await required(names.signer);
            throw error;
          })) as { signature: Uint8Array };
          return reply.signature;
        },
        async verify(node, digest, signature) {
          const reply = (await verifier.ask({ type: 'verify', checks: [{ node, digest, signature }] }, { timeoutMs: 60_000 }).catch(async (error: unknown) => {
            verifier = await required(names.verifier);
            throw error;
          })) as { verdicts: boolean[] };
          return reply.verdicts[0] === true;
        },
      },
      send(to, bytes, type) {
        const ms = linkDelay(links, nodeId, to, random);
        if (ms === undefined) return;
        const urgent = URGENT.has(type);
        if (ms === 0) return deliver(to, bytes, urgent);
        const timer = setTimeout(() => {
          delayed.delete(timer);
          deliver(to, bytes, urgent);
        }, ms);
        delayed.add(timer);
      },
      listener: {
        reply: (reply) => client.tell(0, { type: 'reply', node: nodeId, reply }),
        applied: (applied) => agent.tell({ type: 'applied', node: nodeId, applied: executed(applied) }),
        evidence: (evidence) => agent.tell({ type: 'evidence', node: nodeId, kind: evidence.kind, accused: evidence.node, detail: evidence.detail }),
        fault: (error) => ctx.self.tell({ type: 'fault', message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }, { urgent: true }),
      },
    });
    // Faults in force before this incarnation started still apply to it.
    const known = (await agent.ask({ type: 'hello', node: nodeId }, { timeoutMs: 30_000 })) as { links: LinkFaults; byzantine?: ByzantineMode };
    links = known.links;
    mode = known.byzantine;
    host.byzantine(mode ?? null);

    return {
      async receive(msg, from) {
        switch (msg.type) {
          case 'peer':
            return host.receive(msg.bytes);
          case 'request':
            return host.request(msg.command);
          case 'faults':
            links = msg.links;
            mode = msg.byzantine;
            host.byzantine(mode ?? null);
            return;
          case 'status': {
            const status = host.status();
            const stats = host.stats();
            from.reply({
              node: nodeId,
              role: status.role,
              view: status.view,
              commitIndex: status.commitIndex,
              ...(status.leader === null ? {} : { leader: status.leader }),
              stateHash: host.stateHash(),
              ...(mode === undefined ? {} : { byzantine: mode }),
              ...stats,
              storeOpens: store.opens,
            });
            return;
          }
          case 'fault':
            throw new Error(`replica ${nodeId} stopped: ${msg.message}`);
        }
      },
      signal(signal) {
        peers.signal(signal);
        client.signal(signal);
      },
      async stop() {
        for (const timer of delayed) clearTimeout(timer);
        await host.stop();
        await store.close();
      },
      inspect: () => ({ ...host.status(), ...host.stats() }),
    };
  },
});
