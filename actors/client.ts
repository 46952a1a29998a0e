/**
 * The client actor: submits commands to a cluster and accepts a result only with the protocol's
 * proof — `replyQuorum` matching replies from distinct replicas: f+1 for the Byzantine-tolerant
 * protocols (at least one is from a correct replica, PBFT §4.1; the same rule serves HotStuff,
 * whose replies each come from a replica that saw the commit certificate), one for Raft, where
 * only the leader answers, and only for an entry it knows committed (Raft §8). Replies match when
 * they give the same response at the same log position: correct replicas agree on both, since a
 * retry is answered from the client table, which records where its command executed. A reply
 * counts for the replica that sent it (the runtime names the sender, not the message), and only a
 * replica's first answer to a command counts: a faulty one can neither speak for others nor vote
 * for every response.
 *
 * Each command goes out under a session of its own: a session has at most one command in flight
 * and its timestamps only grow, which is what the replicas' client table needs to execute each
 * command once (PBFT §4.1: a request with a timestamp not above the last one is answered from
 * the table). A command goes first to the replica believed to lead, and to every replica on
 * each retry, so that a new leader learns of it too; retries back off exponentially. Configuration
 * commands (a key rotation, protocols/consensus/configuration.ts) go out under one session of
 * their own, named with the configuration prefix, one at a time.
 *
 * It measures `consensus.latency`: from a command's submission to its accepted result, proof
 * included, which is the latency a user of the cluster sees. Each command is a `consensus.command`
 * span, the root of its trace unless it was submitted inside one: its requests (retries too) go out
 * in it, so the replicas' work on the command continues that trace (consensus-telemetry.ts).
 */
import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { defineBehavior, INSTRUMENTED, instrumentsOf, t, tracerOf, within, type Sender } from '../runtime/index.js';
import { CONFIGURATION_SESSION_PREFIX, MAX_BATCH_COMMANDS, replyKey, signaturePolicySchema, type Command, type ConsensusAlgorithm, type Reply } from '../protocols/consensus/index.js';
import type { SignaturePolicy } from '../protocols/crypto/index.js';
import { CONSENSUS_SCOPE } from './consensus-telemetry.js';
import { PeerDirectory } from './peer-directory.js';

/** Start arguments of a client. */
export interface ClientArgs {
  /** Replica i's actor name at index i. */
  readonly replicas: readonly string[];
  /** Matching replies from distinct replicas needed to accept a result. */
  readonly replyQuorum: number;
  /** How long to wait for a result before sending the command to every replica again, ms. */
  readonly retryMs: number;
  /** Prefix of this client's session ids, unique per client (commands of two clients must not collide). */
  readonly sessionPrefix: string;
  /** Maps a reply's view (or term) and sender to the replica believed to lead. */
  readonly leaderOf: 'view-primary' | 'sender' | 'none';
  /** The cluster's protocol; `consensus.latency` is recorded only when it is given, as the metric requires it. */
  readonly algorithm?: ConsensusAlgorithm;
  /**
   * The cluster's signature policy, an attribute of `consensus.latency` for commands submitted
   * without one (a cluster names the policy in force with each command: a migration changes it).
   */
  readonly policy?: SignaturePolicy;
}

const tracer = tracerOf(CONSENSUS_SCOPE);

const instruments = instrumentsOf(CONSENSUS_SCOPE, (meter) => ({
  latency: meter.createHistogram('consensus.latency', { description: "Time from a client's submission of a command to its accepted, proved result.", unit: 'ms' }),
}));

const resultSchema = t.object({
  response: t.bytes({ maxLength: 1 << 20 }),
  /** The log position the command executed at, as the proof's replies agree. */
  position: t.uint(),
  /** The lowest view (term) among the proof's replies: replicas report the one they were in. */
  view: t.uint(),
  /** The replicas whose matching replies were the proof. */
  replicas: t.array(t.uint(), { maxLength: 1024 }),
  /** The session and timestamp the command was submitted under. */
  client: t.string({ maxLength: 128 }),
  timestamp: t.uint(),
});

const replySchema = t.object({ client: t.string({ maxLength: 128 }), timestamp: t.uint(), position: t.uint(), view: t.uint(), response: t.bytes({ maxLength: 1 << 20 }) });

/** A command's accepted result. */
export type ClientResult = ReturnType<typeof resultSchema.parse>;

/** The replicas that gave one response at one position, each with the view (term) its reply named. */
type Voters = Map<number, number>;

interface InFlight {
  readonly command: Command;
  readonly sender: Sender<ClientResult>;
  /** Position and response (hex) → the replicas that answered them; a replica is in one entry at most (its first answer). */
  readonly votes: Map<string, Voters>;
  sends: number;
  /** When it was submitted (`performance.now()`). */
  readonly submitted: number;
  /** The attributes of its `consensus.latency` (none when the metric is not recorded). */
  readonly labels: Attributes | undefined;
  /** Its `consensus.command` span and the context its requests go out in (none with instrumentation compiled out). */
  readonly span: Span | undefined;
  readonly trace: Context | undefined;
}

/** A cluster's client. */
export const Client = defineBehavior({
  module: import.meta.url,
  export: 'Client',
  messages: t.variants({
    /** A command, and the signature policy in force as it was submitted (for telemetry; default the client's). */
    submit: { payload: t.bytes({ maxLength: 1 << 20 }), policy: t.optional(signaturePolicySchema) },
    /** A configuration command; the owner sends one at a time. */
    configure: { payload: t.bytes({ maxLength: 1 << 20 }), policy: t.optional(signaturePolicySchema) },
    /** Replica `node`'s replies for one log position: one message for a whole batch. */
    replies: { node: t.uint(), replies: t.array(replySchema, { maxLength: MAX_BATCH_COMMANDS }) },
    retry: { session: t.string({ maxLength: 128 }) },
  }),
  replies: resultSchema,
  start(ctx, args: ClientArgs) {
    const n = args.replicas.length;
    const configurationSession = `${CONFIGURATION_SESSION_PREFIX}${args.sessionPrefix}`;
    const replicas = new PeerDirectory(ctx, args.replicas);
    const free: string[] = [];
    const timestamps = new Map<string, number>();
    const inFlight = new Map<string, InFlight>();
    let sessions = 0;
    // PBFT's first primary is replica 0 (view 0); the others are learnt from replies.
    let leader: number | undefined = args.leaderOf === 'view-primary' ? 0 : undefined;
    /** `consensus.algorithm` and `crypto.policy`, of the latency metric and of each command's span, per policy. */
    const labelled = new Map<SignaturePolicy | undefined, { readonly latency: Attributes; readonly command: Attributes }>();
    const labelsOf = (policy: SignaturePolicy | undefined): { readonly latency: Attributes; readonly command: Attributes } | undefined => {
      if (args.algorithm === undefined || !INSTRUMENTED) return undefined;
      let labels = labelled.get(policy);
      if (labels === undefined) {
        const latency = { 'consensus.algorithm': args.algorithm, ...(policy === undefined ? {} : { 'crypto.policy': policy }) };
        labelled.set(policy, (labels = { latency, command: { ...latency, 'consensus.quorum_size': args.replyQuorum } }));
      }
      return labels;
    };

    const send = (flight: InFlight): void => {
      const everyone = flight.sends > 0 || leader === undefined;
      flight.sends++;
      within(flight.trace, () => {
        for (let i = 0; i < n; i++) if (everyone || i === leader) replicas.tell(i, { type: 'request', command: flight.command });
      });
      // Retries back off (up to 8×), so that an overloaded cluster is not buried under copies.
      const wait = args.retryMs * 2 ** Math.min(3, flight.sends - 1);
      ctx.timers.start(flight.command.client, wait, { type: 'retry', session: flight.command.client });
    };

    /** Counts replica `node`'s reply; the command is accepted once `replyQuorum` replicas gave the same one. */
    const accept = (node: number, reply: Reply): void => {
      const flight = inFlight.get(reply.client);
      if (flight === undefined || flight.command.timestamp !== reply.timestamp) return;
      for (const voters of flight.votes.values()) if (voters.has(node)) return;
      const key = replyKey(reply);
      const voters: Voters = flight.votes.get(key) ?? new Map();
      voters.set(node, reply.view);
      flight.votes.set(key, voters);
      if (voters.size < args.replyQuorum) return;
      const { position } = reply;
      // The lowest view of the proof is reported: a faulty replica cannot raise it past a correct
      // one's. Only a view they all agree on names a leader, so that a faulty replica's does not
      // steer the next send.
      const views = [...voters.values()];
      const view = Math.min(...views);
      const agreed = views.every((v) => v === view);
      if (args.leaderOf === 'view-primary' && agreed) leader = view % n;
      else if (args.leaderOf === 'sender') leader = node;
      inFlight.delete(reply.client);
      ctx.timers.cancel(reply.client);
      if (reply.client !== configurationSession) free.push(reply.client);
      if (flight.labels !== undefined) instruments().latency.record(performance.now() - flight.submitted, flight.labels);
      if (flight.span?.isRecording() === true) {
        flight.span.setAttributes({
          'consensus.sequence': position,
          'consensus.view': view,
          'consensus.received_votes': voters.size,
          'consensus.command.attempts': flight.sends,
        });
      }
      flight.span?.end();
      // The asker may have given up (its ask timed out); the answer is then a dead letter.
      if (flight.sender.expectsReply) {
        flight.sender.reply({ response: reply.response, position, view, replicas: [...voters.keys()], client: reply.client, timestamp: reply.timestamp });
      }
    };

    return {
      receive(msg, from) {
        switch (msg.type) {
          case 'submit':
          case 'configure': {
            const session = msg.type === 'configure' ? configurationSession : (free.pop() ?? `${args.sessionPrefix}-${sessions++}`);
            const timestamp = (timestamps.get(session) ?? 0) + 1;
            timestamps.set(session, timestamp);
            // One configuration command at a time: one sent again replaces the one in flight.
            const replaced = inFlight.get(session);
            replaced?.span?.setStatus({ code: SpanStatusCode.ERROR, message: 'replaced by another command of its session' });
            replaced?.span?.end();
            const labels = labelsOf(msg.policy ?? args.policy);
            const span = INSTRUMENTED ? tracer().startSpan('consensus.command', { kind: SpanKind.CLIENT, attributes: labels?.command }, context.active()) : undefined;
            const flight: InFlight = {
              command: { client: session, timestamp, payload: msg.payload },
              sender: from,
              votes: new Map(),
              sends: 0,
              submitted: performance.now(),
              labels: labels?.latency,
              span,
              trace: span === undefined ? undefined : trace.setSpan(context.active(), span),
            };
            inFlight.set(session, flight);
            send(flight);
            return;
          }
          case 'retry': {
            const flight = inFlight.get(msg.session);
            if (flight !== undefined) send(flight);
            return;
          }
          case 'replies': {
            // Replica `node` is the actor of that name, whatever incarnation: no other may speak for it.
            if (from.ref === undefined || from.ref.name !== args.replicas[msg.node]) return;
            replicas.heard(from.ref);
            for (const reply of msg.replies) accept(msg.node, reply);
            return;
          }
        }
      },
      signal: (signal) => replicas.signal(signal),
      stop() {
        for (const flight of inFlight.values()) {
          flight.span?.setStatus({ code: SpanStatusCode.ERROR, message: 'the client stopped before the command was accepted' });
          flight.span?.end();
        }
      },
      inspect: () => ({ inFlight: inFlight.size, sessions, leader }),
    };
  },
});
