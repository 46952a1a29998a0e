/**
 * The replica actor: one consensus core in a worker thread of its own, hosted by a
 * {@link ReplicaHost} over the replica's LMDB store. Its peers are the other replica actors,
 * found by name, so that a restarted peer (a new incarnation) is found again; its signatures
 * come from its signer, its verdicts from the cluster's verifier; network faults are applied
 * to what it sends. Killing its thread at any instant loses nothing that was acknowledged: the
 * store is written before any message that depends on it leaves.
 */
import type { Context } from '@opentelemetry/api';
import { ActorNotRunning, AskTimeout, defineBehavior, KnhkError, MailboxFull, realClock, t, within, type ActorHandlers, type ActorRef, type Infer, type Sender } from '../runtime/index.js';
import { commandSchema, ConfiguredState, consensusConfig, encode, type Applied, type ConsensusAlgorithm, type ProtocolDefinition } from '../protocols/consensus/index.js';
import { protocolDefinition, type CommonTuning } from '../protocols/sim/protocols.js';
import { BYZANTINE_MODES, type ByzantineMode } from '../protocols/sim/byzantine.js';
import { Prng } from '../protocols/sim/prng.js';
import { BINARY_SCHEMAS, receiptToJson, TreeHeadSchedule, type LogContext, type TreeHead } from '../protocols/receipts/index.js';
import { CryptoError, decodeRotationCertificate, type BackendChoice, type KeyDescriptor, type SchemeName, type SignaturePolicy } from '../protocols/crypto/index.js';
import { TreeHeadPacer } from './tree-head-pacer.js';
import { ReceiptJournal } from './receipt-journal.js';
import { agreedBodies } from './receipt-fill.js';
import { ReplicaHost, type ReplicaHostOptions } from './replica-host.js';
import { ReplicaStore } from './replica-store.js';
import { createStateMachine, type StateMachineRef } from './state-machine-definition.js';
import { PeerDirectory } from './peer-directory.js';
import { PART_BYTES, PartCutter, PartJoiner, peerPartSchema } from './peer-parts.js';
import { observedSchemes } from './crypto-telemetry.js';
import { HEALTHY, linkDelay, linkFaultsSchema, type LinkFaults } from './link-faults.js';
import { HALTING_CODES, type ExecutedPosition, type HaltingCode } from './cluster-agent.js';
import { answerHalted, haltedAtStart, haltingCode } from './replica-halt.js';

/** Protocol tuning a cluster passes to its replicas (they execute in slices of their own size). */
export type ReplicaTuning = Omit<CommonTuning, 'executionSlice'>;

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
  readonly policy: SignaturePolicy;
  readonly n: number;
  readonly nodeId: number;
  /** The replica's LMDB environment. */
  readonly directory: string;
  readonly tuning: ReplicaTuning;
  readonly names: ReplicaPeers;
  /** Each member's first key (epoch 0), at its index: where the replicated configuration's key rotations start from. */
  readonly genesis: readonly KeyDescriptor[];
  /** Seeds jitter and Byzantine choices. */
  readonly seed: number;
  /** The signature backend forced in the cluster (default: the registry's choice). */
  readonly cryptoBackend?: BackendChoice;
  /** The replicated state machine, made in this thread. */
  readonly stateMachine: StateMachineRef;
}

/** Under load, replicas sign one tree head per this many ms of agreed time (`TreeHeadSchedule`). */
const TREE_HEAD_PERIOD_MS = 1000;
/** ...and the last position executed once execution has paused at least this long, ms. */
const TREE_HEAD_IDLE_MS = 20;

/** Message types that must not queue behind bulk traffic: elections and view changes. */
const URGENT = new Set(['view-change', 'new-view', 'timeout', 'pre-vote', 'pre-vote-reply', 'request-vote', 'request-vote-reply']);

/** What the cluster learns of an execution: enough for status and convergence checks (receipts come from the replicas' logs). */
function executed(applied: Applied): ExecutedPosition {
  if (applied.kind === 'snapshot') return { type: 'snapshot', position: applied.position, stateHash: applied.stateHash };
  return {
    type: 'entry',
    position: applied.position,
    view: applied.view,
    stateHashBefore: applied.stateHashBefore,
    stateHash: applied.stateHash,
    timestamp: applied.timestamp,
    commands: applied.commands.length,
  };
}

/**
 * Commands a replica's core executes per stretch before it pauses for a turn of the event loop
 * (core.ts, `resume`): executing 128 puts on the key-value machine takes about 0.15 ms here.
 */
const EXECUTION_SLICE = 128;

/** The protocol definition a replica runs, with the cluster's tuning. */
export function replicaProtocol(protocol: ConsensusAlgorithm, tuning: ReplicaTuning): ProtocolDefinition<{ readonly type: string }> {
  return protocolDefinition(protocol, { ...tuning, executionSlice: EXECUTION_SLICE });
}

/** The most of an error a replica's `fault` message carries. */
const FAULT_TEXT_LENGTH = 4096;

const statusFields = {
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
  unverified: t.uint(),
  unsent: t.uint(),
  storeOpens: t.uint(),
  /** Leaves in its receipt log, and whether the log has no hole (receipt-journal.ts). */
  receiptLog: t.uint(),
  receiptLogComplete: t.boolean(),
  /** Why it halted, when it did (replica-halt.ts). */
  halted: t.optional(t.string({ maxLength: FAULT_TEXT_LENGTH })),
};

/** What a replica reports about itself. */
export type ReplicaReport = Infer<ReturnType<typeof t.object<typeof statusFields>>>;

/** An error as a replica's `fault` message carries it: with its code when it has one (`STATE_TOO_LARGE`), cut to fit. */
const faultText = (error: unknown): string =>
  (error instanceof KnhkError ? `${error.name} ${error.code}: ${error.message}` : error instanceof Error ? `${error.name}: ${error.message}` : String(error)).slice(0, FAULT_TEXT_LENGTH);

/** Whether an ask failed for want of a running target it could reach, rather than on what the target answered. */
const unreachable = (error: unknown): boolean => error instanceof AskTimeout || error instanceof ActorNotRunning || error instanceof MailboxFull;

const optional = <K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } => (value === undefined ? {} : ({ [key]: value } as { [P in K]: V }));

const replicaMessages = t.variants({
  /** An envelope from a peer replica. */
  peer: { bytes: t.bytes({ maxLength: PART_BYTES }) },
  /** Part of an envelope too large for one message (peer-parts.ts). */
  'peer-part': peerPartSchema,
  /** A client's command. */
  request: { command: commandSchema },
  /** The network faults and this replica's Byzantine mode, now in force. */
  faults: { links: linkFaultsSchema, byzantine: t.optional(t.oneOf(...BYZANTINE_MODES)) },
  status: {},
  /** Where this replica executed a command, if it did. */
  locate: { client: t.string({ maxLength: 128 }), timestamp: t.uint() },
  /** The receipt of a command under a signed tree head the cluster collected. */
  receipt: { client: t.string({ maxLength: 128 }), timestamp: t.uint(), signed: BINARY_SCHEMAS.signedTreeHead },
  /** A replica filling its receipt log's gap asks for the bodies of these positions. */
  'receipt-fill': { from: t.uint(), to: t.uint() },
  /** The receipts of every command of a position under a signed tree head (of that position or a later one). */
  'receipts-at': { position: t.uint(), signed: BINARY_SCHEMAS.signedTreeHead },
  /** The host, the receipt log or a key rotation failed: crash, to be restarted; or, on an error of a code in `halt`, halt. */
  fault: { message: t.string({ maxLength: FAULT_TEXT_LENGTH }), halt: t.optional(t.oneOf(...HALTING_CODES)) },
});

/** A message a replica takes. */
export type ReplicaMessage = Infer<typeof replicaMessages>;

const replicaReplies = t.variants({
  status: statusFields,
  located: { position: t.optional(t.uint()) },
  /** A receipt in its JSON form, serialized; absent when this replica cannot make it. */
  receipt: { json: t.optional(t.string({ maxLength: 1 << 22 })) },
  /** Receipt bodies of consecutive positions, msgpack-encoded (receipt-journal.ts `bodies`). */
  bodies: { bytes: t.bytes({ maxLength: 1 << 26 }) },
});

/** What a replica answers. */
export type ReplicaReply = Infer<typeof replicaReplies>;

/** A replica of a cluster. */
export const Replica = defineBehavior({
  module: import.meta.url,
  export: 'Replica',
  messages: replicaMessages,
  replies: replicaReplies,
  async start(ctx, args: ReplicaArgs) {
    const { names, nodeId } = args;
    const config = consensusConfig({ nodeId, n: args.n, algorithm: args.protocol });
    const machine = await createStateMachine(args.stateMachine);
    const required = async <M, R>(name: string): Promise<ActorRef<M, R>> => {
      const ref = await ctx.lookup<M, R>(name);
      if (ref === undefined) throw new Error(`${name} is not running`);
      return ref;
    };
    const agent = await required(names.agent);
    /** Tells the cluster agent this incarnation started; it answers with the faults in force. */
    const hello = async (): Promise<{ links: LinkFaults; byzantine?: ByzantineMode }> =>
      (await agent.ask({ type: 'hello', node: nodeId }, { timeoutMs: 30_000 })) as { links: LinkFaults; byzantine?: ByzantineMode };
    /**
     * Comes up halted on a halting `error` met while opening the store or replaying it (any other
     * fails the start, to be restarted), having closed the store if it was open. The halt is told
     * after the hello: the agent takes a new incarnation's hello as the end of its predecessor's halt.
     */
    const startHalted = async (error: unknown, opened?: ReplicaStore): Promise<ActorHandlers<ReplicaMessage, ReplicaReply>> => {
      await opened?.close();
      const code = haltingCode(error);
      if (code === undefined) throw error;
      const reason = faultText(error);
      await hello();
      agent.tell({ type: 'halted', node: nodeId, code, reason });
      return { receive: (msg, from) => answerHalted(msg, from, () => haltedAtStart(nodeId, reason)), inspect: () => ({ halted: reason }) };
    };
    let store: ReplicaStore;
    try {
      store = await ReplicaStore.open(args.directory, { clusterId: args.clusterId, nodeId, protocol: args.protocol, n: args.n, stateMachine: args.stateMachine.name });
    } catch (error) {
      return startHalted(error);
    }
    // Written once as the store opens: read now, so that status never reads a store closed by a halt.
    const storeOpens = store.opens;
    // The signer and verifier may be restarted too: their refs are looked up again when one fails.
    let signer = await required(names.signer);
    let verifier = await required(names.verifier);

    let links: LinkFaults = HEALTHY;
    let halted: string | undefined;
    let mode: ByzantineMode | undefined;
    const prng = new Prng(args.seed);
    const random = (): number => prng.u32() / 2 ** 32;
    const peers = new PeerDirectory(ctx, names.replicas);
    const client = new PeerDirectory(ctx, [names.client]);
    const delayed = new Set<ReturnType<typeof setTimeout>>();
    const joiner = new PartJoiner();
    const cutter = new PartCutter();
    const deliver = (to: number, bytes: Uint8Array, urgent: boolean): void => {
      const parts = cutter.cut(bytes);
      if (parts.length === 1) return peers.tell(to, { type: 'peer', bytes }, urgent);
      for (const part of parts) peers.tell(to, { type: 'peer-part', ...part }, urgent);
    };

    const configuration = new ConfiguredState(machine, { cluster: args.clusterId, genesis: args.genesis, schemes: observedSchemes(args.cryptoBackend), policy: args.policy });
    // The configuration's list of migrations, read as it grows: each position's receipts are under the policy in force there.
    const context: LogContext = { cluster: args.clusterId, protocol: args.protocol, policy: args.policy, migrations: configuration.policyChanges() };
    /** Signs a tree head of the receipt log and hands it to the cluster's collector (a silent replica keeps quiet). */
    const signHead = async (head: TreeHead): Promise<void> => {
      if (mode === 'silent') return;
      await signAndReport(head);
      // A double-voting replica signs two values for everything, its receipt log included: a
      // second root for the same position, which the collector must expose as a fork.
      if (mode === 'double-vote') await signAndReport({ ...head, root: Uint8Array.from(head.root, (byte, i) => (i === 0 ? byte ^ 1 : byte)) });
    };
    const signAndReport = async (head: TreeHead): Promise<void> => {
      const { signature, keyId, scheme } = (await signer.ask({ type: 'sign-tree-head', head }, { timeoutMs: 60_000 })) as {
        signature?: Uint8Array;
        keyId: string;
        scheme: SchemeName;
      };
      // A signer that refused leaves this head unsigned here; the other replicas' signatures carry it.
      if (signature === undefined) return;
      agent.tell({ type: 'tree-head', node: nodeId, signed: { treeHead: head, signatures: [{ node: String(nodeId), keyId, scheme, signature }] } });
    };
    const pacer = new TreeHeadPacer(new TreeHeadSchedule(TREE_HEAD_PERIOD_MS, TREE_HEAD_IDLE_MS), realClock, (head) => void signHead(head).catch(() => undefined));
    let journal: ReceiptJournal;
    try {
      journal = await ReceiptJournal.open(store, context, (head) => pacer.executed(head), { nodeId, measure: ctx.measure });
    } catch (error) {
      return startHalted(error, store);
    }
    /** Carries `error` to this replica's mailbox: it crashes there, or halts on a halting error. */
    const fault = (error: unknown): void => ctx.self.tell({ type: 'fault', message: faultText(error), ...optional('halt', haltingCode(error)) }, { urgent: true });
    let stopped = false;
    let filling = false;
    /**
     * Fills the receipt log's gap after a state transfer from the peers' stores: the peers are
     * asked in turn, and positions are filled once enough of them agree (receipt-fill.ts).
     */
    const fillGap = async (): Promise<void> => {
      if (filling) return;
      filling = true;
      try {
        // A halted replica asks nothing more: its store stays as the halting step left it.
        while (!stopped && halted === undefined && journal.missing() !== undefined) {
          const wanted = journal.missing() as { from: number; to: number };
          const answers: Uint8Array[] = [];
          let filled = false;
          for (let k = 1; k < args.n && !filled && !stopped && halted === undefined; k++) {
            const ref = await ctx.lookup(names.replicas[(nodeId + k) % args.n] as string);
            const answer = ref && ((await ref.ask({ type: 'receipt-fill', ...wanted }, { timeoutMs: 10_000 }).catch(() => undefined)) as { bytes: Uint8Array } | undefined);
            if (answer === undefined) continue;
            answers.push(answer.bytes);
            const agreed = agreedBodies(answers, config.replyQuorum);
            if (agreed.length > 0) filled = await journal.fill(encode(agreed)).catch(() => false);
          }
          if (!filled) await new Promise((resolve) => setTimeout(resolve, 200));
        }
      } finally {
        filling = false;
      }
    };

    /** Rotations of the configuration already carried out by this incarnation. */
    let carriedOut = 0;
    /** The host once started: a rotation can be installed while it is starting (it executes what the store holds). Never, if it fails to start: the replica halts. */
    let started: (host: ReplicaHost<{ readonly type: string }>) => void = () => undefined;
    const hostStarted = new Promise<ReplicaHost<{ readonly type: string }>>((resolve) => (started = resolve));
    /**
     * Tells the verifier, then the cluster, that this replica's signer signs with `keyId` now, and
     * how far what it signed with the old key reaches: the core's reach once the signer answered,
     * which is at least its reach when the signer adopted (it only grows), after which nothing
     * was signed with the old key. The cluster hears it only once the verifier has retired the old
     * key (or could not be reached twice), so whoever learns of the adoption from the cluster
     * finds the old key refused.
     */
    const retireOldKey = async (keyId: string): Promise<void> => {
      const through = (await hostStarted).signedThrough();
      const report = { type: 'adopted', member: nodeId, keyId, through } as const;
      await verifier.ask(report, { timeoutMs: 10_000 }).catch(async () => {
        // A restarted verifier learns adoptions from the cluster agent, which has not heard of this one yet.
        verifier = await required(names.verifier);
        await verifier.ask(report, { timeoutMs: 10_000 });
      }).catch(() => undefined);
      agent.tell({ type: 'adopted', node: nodeId, keyId, through });
    };
    /**
     * Carries out the key rotations the replicated configuration installed since last time, up to
     * log position `upTo` (all of them when the replica starts): reported to the verifier and the
     * cluster (a policy migration's together, as one step), and for this replica's own key,
     * adopted by its signer before anything for a later position is signed (the signer handles
     * this replica's requests in order), then reported adopted. Rotations of a later position wait
     * for its report: the configuration may already hold them when a step went on into the next
     * batch (PBFT pauses part-way through one), and adopting the new key then could sign this
     * position's tree head with a key whose window opens only at the next.
     */
    const carryOutRotations = (trace?: Context, upTo = Number.POSITIVE_INFINITY): void => {
      const installed = configuration.installed();
      for (; carriedOut < installed.length; carriedOut++) {
        const { certificate, sequence } = installed[carriedOut] as (typeof installed)[number];
        if (sequence > upTo) return;
        const migration = configuration.migrationOf(carriedOut);
        if (migration === undefined) {
          // In the trace of the position that installed it: the rotation's, where the verifier records it.
          within(trace, () => verifier.tell({ type: 'installed', reporter: nodeId, certificate, sequence }));
          agent.tell({ type: 'rotation', node: nodeId, certificate, sequence });
        } else if (carriedOut === migration.first) {
          // A policy step is reported whole, once: the verifier and the cluster take every member's key at once.
          const certificates = installed.slice(migration.first, migration.end).map((rotation) => rotation.certificate);
          within(trace, () => verifier.tell({ type: 'migrated', reporter: nodeId, from: migration.from, to: migration.to, sequence, certificates }));
          agent.tell({ type: 'migration', node: nodeId, step: { from: migration.from, to: migration.to }, sequence, certificates });
        }
        if (decodeRotationCertificate(certificate).member !== nodeId) continue;
        void signer
          .ask({ type: 'adopt-rotation', certificate, sequence }, { timeoutMs: 60_000 })
          .then((answer) => {
            const adopted = answer as { type: string; key?: { keyId: string }; reason?: string };
            if (adopted.type !== 'key' || adopted.key === undefined) throw new Error(`the signer could not adopt the key installed at ${sequence}: ${adopted.reason ?? adopted.type}`);
            return retireOldKey(adopted.key.keyId);
          })
          // Signing with a key the configuration replaced would be refused: start again, and adopt then.
          .catch(fault);
      }
    };

    const hostOptions: ReplicaHostOptions<{ readonly type: string }> = {
      definition: replicaProtocol(args.protocol, args.tuning),
      config,
      stateMachine: configuration,
      store,
      clock: ctx.clock,
      seed: args.seed + 1,
      measure: ctx.measure,
      crypto: {
        async sign(digest) {
          const reply = (await signer.ask({ type: 'sign', digest }, { timeoutMs: 60_000 }).catch(async (error: unknown) => {
            signer = await required(names.signer);
            throw error;
          })) as { type: string; signature?: Uint8Array; code?: string; reason?: string };
          // A refusal (an expired or revoked key) stops the host, as a failed signature must.
          if (reply.signature === undefined) throw new CryptoError((reply.code ?? 'NO_VALID_KEY') as never, reply.reason ?? 'the signer refused');
          return reply.signature;
        },
        async verify(node, digest, signature, nested) {
          try {
            const reply = (await verifier.ask({ type: 'verify', checks: [{ node, digest, signature, nested }] }, { timeoutMs: 60_000 })) as { verdicts: boolean[] };
            return reply.verdicts[0] === true;
          } catch (error) {
            if (!unreachable(error)) throw error;
            // Restarting, most likely: the next check asks the new incarnation, once it runs.
            verifier = (await ctx.lookup(names.verifier)) ?? verifier;
            return undefined;
          }
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
        replies: (replies) => client.tell(0, { type: 'replies', node: nodeId, replies }),
        applied: (applied, trace) => {
          agent.tell({ type: 'applied', node: nodeId, applied: executed(applied) });
          carryOutRotations(trace, applied.position);
          if (applied.kind === 'snapshot') journal.skipTo(applied.position, applied.stateHash);
          else void journal.append(applied).catch(fault);
          if (journal.missing() !== undefined) void fillGap();
        },
        evidence: (evidence) => agent.tell({ type: 'evidence', node: nodeId, kind: evidence.kind, accused: evidence.node, detail: evidence.detail }),
        fault,
      },
    };
    let host: ReplicaHost<{ readonly type: string }>;
    try {
      host = await ReplicaHost.start(hostOptions);
      started(host);
    } catch (error) {
      return startHalted(error, store);
    }
    // Faults in force before this incarnation started still apply to it.
    const known = await hello();
    links = known.links;
    mode = known.byzantine;
    host.byzantine(mode ?? null);
    carryOutRotations();

    let released: Promise<void> | undefined;
    /** Stops everything that uses the store, then closes it: once, when the replica halts or stops. */
    const release = (): Promise<void> =>
      (released ??= (async () => {
        await host.stop();
        // The journal may still report a head, and the pacer then set a timer: the pacer stops last.
        await journal.close();
        pacer.stop();
        await store.close();
      })());
    /** Halts on an error of `code`: the cluster hears why, and the store, which may be what failed, is closed. */
    const halt = async (code: HaltingCode, reason: string): Promise<void> => {
      halted = reason;
      agent.tell({ type: 'halted', node: nodeId, code, reason });
      await release();
    };
    const status = (): ReplicaReport => {
      const status = host.status();
      return {
        node: nodeId,
        role: halted === undefined ? status.role : 'halted',
        view: status.view,
        commitIndex: status.commitIndex,
        ...(status.leader === null ? {} : { leader: status.leader }),
        stateHash: host.stateHash(),
        ...(mode === undefined ? {} : { byzantine: mode }),
        ...host.stats(),
        unsent: cutter.unsent,
        storeOpens,
        receiptLog: journal.size,
        receiptLogComplete: journal.complete,
        ...optional('halted', halted),
      };
    };
    const handle = async (msg: ReplicaMessage, from: Sender<ReplicaReply>): Promise<void> => {
      switch (msg.type) {
        // Not awaited: the host verifies envelopes concurrently and steps its core with every input
        // that arrived meanwhile as one group (one disk sync, one signing round). Holding the
        // mailbox per message would make every group a group of one.
        case 'peer':
          peers.heard(from.ref);
          void host.receive(msg.bytes);
          return;
        case 'peer-part': {
          peers.heard(from.ref);
          const envelope = from.ref === undefined ? undefined : joiner.accept(from.ref.name, msg);
          if (envelope !== undefined) void host.receive(envelope);
          return;
        }
        case 'request':
          void host.request(msg.command);
          return;
        case 'locate':
          return from.reply({ type: 'located', ...(optional('position', journal.positionOf(msg.client, msg.timestamp))) });
        case 'receipt': {
          const receipt = journal.receipt(msg.client, msg.timestamp, msg.signed);
          return from.reply({ type: 'receipt', ...(receipt === undefined ? {} : { json: JSON.stringify(receiptToJson(receipt)) }) });
        }
        case 'receipt-fill':
          return from.reply({ type: 'bodies', bytes: encode(journal.bodies(msg.from, msg.to)) });
        case 'receipts-at': {
          const receipts = journal.receiptsAt(msg.position, msg.signed);
          return from.reply({ type: 'receipt', ...(receipts === undefined ? {} : { json: JSON.stringify(receipts.map(receiptToJson)) }) });
        }
        case 'faults':
          links = msg.links;
          mode = msg.byzantine;
          host.byzantine(mode ?? null);
          return;
        case 'status':
          return from.reply({ type: 'status', ...status() });
        case 'fault':
          // The host stopped on the fault and has taken no input since.
          if (msg.halt === undefined) throw new Error(`replica ${nodeId} stopped: ${msg.message}`);
          return halt(msg.halt, msg.message);
      }
    };

    return {
      async receive(msg, from) {
        // A halted replica answers questions; what it would step its core with, it drops unread.
        if (halted !== undefined) return answerHalted(msg, from, status);
        try {
          await handle(msg, from);
        } catch (error) {
          // Answering a question met a damaged store (a receipt record that fails its checksum):
          // the replica halts, and answers as a halted replica does.
          const code = haltingCode(error);
          if (code === undefined) throw error;
          await halt(code, faultText(error));
          answerHalted(msg, from, status);
        }
      },
      signal(signal) {
        peers.signal(signal);
        client.signal(signal);
      },
      async stop() {
        stopped = true;
        for (const timer of delayed) clearTimeout(timer);
        await release();
      },
      inspect: () => ({ ...host.status(), ...host.stats() }),
    };
  },
});
