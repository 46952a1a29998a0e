/**
 * Raft test helpers: a harness that drives n cores by hand (messages delivered and timers fired
 * explicitly, so a test stages exactly the situation a rule is about), builders of commands and
 * durable records, and the deliberately broken commit rule that the tests show is caught.
 */
import { command, consensusConfig, decode, encode, KvStateMachine, kvPayload, type Applied, type Command, type NodeId, type PersistOp, type ReadState, type Ready, type Reply, type Signed } from '../../protocols/consensus/index.js';
import { RaftCore, type RaftEntry, type RaftMessage, type RaftOptions } from '../../protocols/raft/index.js';

/** A message in flight between two cores. */
export interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly body: RaftMessage;
}

/** Builds a core (a subclass, in tests of broken variants). */
export type CoreFactory = (options: ConstructorParameters<typeof RaftCore>[0], raftOptions: RaftOptions) => RaftCore;

/**
 * A leader that commits entries of earlier terms by counting replicas: the bug §5.4.2 and
 * Figure 8 warn about.
 */
export class CountingRaft extends RaftCore {
  protected override mayCommit(): boolean {
    return true;
  }
}

/** Builds server `id` of a cluster of `n` from `durable` records, as a host would on restart. */
export function coreFrom(durable: ReadonlyMap<string, unknown>, id: NodeId = 0, n = 3, options: RaftOptions = {}): RaftCore {
  return new RaftCore({ config: consensusConfig({ nodeId: id, n, algorithm: 'raft' }), stateMachine: new KvStateMachine(), durable: new Map(durable) }, options);
}

/** Writes persist ops into `durable`, through msgpack as a real store would. */
function writeOps(durable: Map<string, unknown>, ops: readonly PersistOp[]): void {
  for (const op of ops) {
    if (op.value === undefined) durable.delete(op.key);
    else durable.set(op.key, decode(encode(op.value)));
  }
}

/** A copy of `durable` with persist ops written into it. */
export function applyOps(durable: ReadonlyMap<string, unknown>, ops: readonly PersistOp[]): Map<string, unknown> {
  const copy = new Map(durable);
  writeOps(copy, ops);
  return copy;
}

/**
 * n cores, a FIFO of messages in flight, durable maps that persist ops are written to, and
 * per-node records of timers, applied steps, reads and replies.
 */
export class Harness {
  readonly cores: RaftCore[];
  readonly durable: Map<string, unknown>[];
  readonly inflight: Envelope[] = [];
  readonly timers: Set<string>[];
  readonly applied: Applied[][];
  readonly reads: ReadState[][];
  readonly replies: Reply[][];
  readonly readies: Ready<RaftMessage>[][];
  /** Nodes whose messages, in and out, are dropped. */
  readonly cut = new Set<NodeId>();
  readonly #options: (id: NodeId) => RaftOptions;
  readonly #create: CoreFactory;
  #now = 0;

  constructor(n: number, options: RaftOptions | ((id: NodeId) => RaftOptions) = {}, create: CoreFactory = (o, r) => new RaftCore(o, r), durable?: Map<string, unknown>[]) {
    this.#options = typeof options === 'function' ? options : () => options;
    this.#create = create;
    this.durable = durable ?? Array.from({ length: n }, () => new Map());
    this.timers = Array.from({ length: n }, () => new Set());
    this.applied = Array.from({ length: n }, () => []);
    this.reads = Array.from({ length: n }, () => []);
    this.replies = Array.from({ length: n }, () => []);
    this.readies = Array.from({ length: n }, () => []);
    this.cores = Array.from({ length: n }, (_, id) => this.#boot(id));
  }

  #boot(id: NodeId): RaftCore {
    const core = this.#create(
      { config: consensusConfig({ nodeId: id, n: this.durable.length, algorithm: 'raft' }), stateMachine: new KvStateMachine(), durable: new Map(this.durable[id]) },
      this.#options(id),
    );
    this.#collect(id, core);
    return core;
  }

  /** Replaces node `id` with a fresh core built from its durable records (a crash and restart). */
  restart(id: NodeId): RaftCore {
    this.inflight.splice(0, this.inflight.length, ...this.inflight.filter((m) => m.to !== id && m.from !== id));
    this.timers[id]!.clear();
    this.applied[id] = [];
    this.replies[id] = [];
    const core = this.#boot(id);
    this.cores[id] = core;
    return core;
  }

  #collect(id: NodeId, core: RaftCore): Ready<RaftMessage> {
    const ready = core.ready();
    this.readies[id]!.push(ready);
    writeOps(this.durable[id]!, ready.persist);
    for (const out of ready.messages) {
      for (const to of out.to) if (!this.cut.has(id) && !this.cut.has(to)) this.inflight.push({ from: id, to, body: out.body });
    }
    for (const op of ready.timers) {
      if (op.kind === 'set') this.timers[id]!.add(op.timer);
      else this.timers[id]!.delete(op.timer);
    }
    this.applied[id]!.push(...ready.applied);
    this.reads[id]!.push(...ready.reads);
    this.replies[id]!.push(...ready.replies);
    return ready;
  }

  /** Steps node `id` with `input` and returns what it asked for. */
  step(id: NodeId, input: Parameters<RaftCore['step']>[0]): Ready<RaftMessage> {
    this.#now += 1;
    this.cores[id]!.step(input, this.#now);
    return this.#collect(id, this.cores[id]!);
  }

  /** Takes the outputs of a direct call on node `id` (a read, a membership change). */
  flush(id: NodeId): Ready<RaftMessage> {
    return this.#collect(id, this.cores[id]!);
  }

  /** Fires a timer on node `id`. */
  fire(id: NodeId, timer: 'election' | 'heartbeat'): Ready<RaftMessage> {
    return this.step(id, { kind: 'timeout', timer });
  }

  /** Delivers one message from outside the FIFO. */
  send(from: NodeId, to: NodeId, body: RaftMessage): Ready<RaftMessage> {
    const signed: Signed<RaftMessage> = { from, body, signature: new Uint8Array(0) };
    return this.step(to, { kind: 'message', message: signed });
  }

  /** Removes and returns the first in-flight message that matches `match`, undelivered. */
  take(match: (m: Envelope) => boolean): Envelope | undefined {
    const at = this.inflight.findIndex(match);
    return at < 0 ? undefined : this.inflight.splice(at, 1)[0];
  }

  /** Delivers the first in-flight message that matches `match`. */
  deliverOne(match: (m: Envelope) => boolean = () => true): Envelope | undefined {
    const m = this.take(match);
    if (m !== undefined && !this.cut.has(m.to)) this.send(m.from, m.to, m.body);
    return m;
  }

  /** Delivers messages (and those they cause) until none that matches is in flight; returns them. */
  deliverAll(match: (m: Envelope) => boolean = () => true): Envelope[] {
    const delivered: Envelope[] = [];
    for (let m = this.deliverOne(match); m !== undefined; m = this.deliverOne(match)) {
      delivered.push(m);
      if (delivered.length > 100_000) throw new Error('message storm');
    }
    return delivered;
  }

  /** Submits a client command to every node (or to `ids`). */
  request(cmd: Command, ids: readonly NodeId[] = this.cores.map((_, id) => id)): void {
    for (const id of ids) this.step(id, { kind: 'request', command: cmd });
  }

  /** Submits put(`${prefix}${i}`) for each i in [from, to) to `ids`, delivering every message after each. */
  submitEach(prefix: string, from: number, to: number, ids?: readonly NodeId[]): void {
    for (let i = from; i < to; i++) {
      this.request(put(`${prefix}${i}`), ids);
      this.deliverAll();
    }
  }

  /** Elects `id`: its election timer fires and every message is delivered. */
  elect(id: NodeId): void {
    this.fire(id, 'election');
    this.deliverAll();
  }

  /**
   * Drops what is in flight, cuts leader `old` off and elects `next` in its place; `witness`'s
   * election timer fires first, so that it has stopped hearing from `old` and grants the pre-vote.
   */
  depose(old: NodeId, next: NodeId, witness: NodeId): void {
    this.inflight.length = 0;
    this.cut.add(old);
    this.fire(witness, 'election');
    this.deliverAll();
    this.elect(next);
  }

  /** A heartbeat of `id` and everything it causes. */
  beat(id: NodeId): void {
    this.fire(id, 'heartbeat');
    this.deliverAll();
  }

  /**
   * Gets `commands` committed through `leader`, which must already lead: submits them in order to
   * `ids` (every node by default), delivers everything, then has `leader` send a heartbeat and
   * delivers what that causes.
   *
   * On return, if no message was dropped, every command `leader` appended is committed, and
   * executed on `leader` and on every member it replicates to (unless execution is sliced).
   * Delivering is enough for `leader` to commit, commands that waited for a window included,
   * since the acknowledgements that commit an entry also open the windows; the heartbeat is there
   * because a follower learns that an entry is committed only from an AppendEntries sent after it
   * was. A command `leader` refused (over a budget, a retry of one it holds) is not appended, so
   * not committed either.
   */
  commit(leader: NodeId, commands: readonly Command[], ids?: readonly NodeId[]): void {
    for (const cmd of commands) this.request(cmd, ids);
    this.deliverAll();
    this.beat(leader);
  }

  /** The leader, if exactly one node claims to be. */
  leader(): NodeId | undefined {
    const leaders = this.cores.map((c, id) => (c.status().role === 'leader' ? id : -1)).filter((id) => id >= 0);
    return leaders.length === 1 ? leaders[0] : undefined;
  }
}

let nextTimestamp = 0;

/** A put of `key` by `client`, with a timestamp newer than any before it. */
export function put(key: string, value = `v-${key}`, client = 'client'): Command {
  return command(client, ++nextTimestamp, kvPayload({ type: 'put', key, value }));
}

/** Durable records holding `term`, an optional vote, and a log whose entries have `terms`. */
export function durableWith(term: number, terms: readonly number[], vote?: NodeId): Map<string, unknown> {
  const durable = new Map<string, unknown>([['raft/term', term]]);
  if (vote !== undefined) durable.set('raft/vote', { term, node: vote });
  terms.forEach((entryTerm, i) => {
    const entry: RaftEntry = { type: 'commands', term: entryTerm, timestamp: i, commands: [command(`c${entryTerm}`, i + 1, kvPayload({ type: 'put', key: `k${i}`, value: `t${entryTerm}` }))] };
    durable.set(`raft/log/${i + 1}`, entry);
  });
  return durable;
}

/** The bodies of the messages of `type` among `ready`'s. */
export function sent<K extends RaftMessage['type']>(ready: Ready<RaftMessage>, type: K): Extract<RaftMessage, { type: K }>[] {
  return ready.messages.filter((m) => m.body.type === type).map((m) => m.body as Extract<RaftMessage, { type: K }>);
}
