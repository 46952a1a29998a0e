/**
 * Chained HotStuff rules, driven by hand on single cores: blocks, certificates and timeouts are
 * built here and fed to `step`; what the core asks its host to do is read from `ready`.
 */
import test from 'ava';
import fc from 'fast-check';
import { SchemaError } from '../schema/errors.js';
import {
  ConsensusError,
  KvStateMachine,
  Outputs,
  ReplicatedState,
  command,
  consensusConfig,
  decode,
  digestOf,
  encode,
  hashBytes,
  hex,
  kvPayload,
  sameBytes,
  archivedChangesKey,
  archivedSnapshotKey,
  type ArchivedChanges,
  type ArchivedSnapshot,
  type Command,
  type Digest,
  type QuorumCert,
  type Ready,
  type Signed,
} from '../protocols/consensus/index.js';
import { BlockTree } from '../protocols/hotstuff/block-tree.js';
import { Executor } from '../protocols/hotstuff/executor.js';
import {
  GENESIS,
  GENESIS_QC,
  HotStuffCore,
  Pacemaker,
  blockHash,
  hotStuffAdversary,
  hotStuffMessageSchema,
  hotstuff,
  leaderOf,
  makeBlock,
  nestedSignatures,
  safeNode,
  timeoutBody,
  voteBody,
  type Block,
  type HotStuffMessage,
  type HotStuffOptions,
  type TimeoutCert,
} from '../protocols/hotstuff/index.js';
import { MAX_FETCH_ROUNDS, MAX_ORPHANS, ORPHAN_VIEWS } from '../protocols/hotstuff/sync.js';
import { testSeed } from './helpers/seed.js';

const N = 4;

function signature(from: number, body: unknown): Uint8Array {
  const d = digestOf(body);
  const input = new Uint8Array(33);
  input[0] = from;
  input.set(d, 1);
  return hashBytes(input);
}

function signed<B>(from: number, body: B): Signed<B> {
  return { from, body, signature: signature(from, body) };
}

function core(id: number, durable: ReadonlyMap<string, unknown> = new Map(), tuning: HotStuffOptions = {}): HotStuffCore {
  return new HotStuffCore(
    { config: consensusConfig({ nodeId: id, n: N, algorithm: 'hotstuff' }), stateMachine: new KvStateMachine(), durable },
    { baseTimeoutMs: 100, ...tuning },
  );
}

function qcFor(block: Block, signers: readonly number[] = [0, 1, 2]): QuorumCert {
  const hash = blockHash(block);
  return { view: block.view, valueHash: hash, signatures: signers.map((node) => ({ node, signature: signature(node, voteBody(block.view, hash)) })) };
}

function tcFor(view: number, signers: readonly number[] = [0, 1, 2]): TimeoutCert {
  return { view, signatures: signers.map((node) => ({ node, signature: signature(node, timeoutBody(view)) })) };
}

function child(parent: Block, view: number, commands: readonly Command[] = [], justify: QuorumCert = parent === GENESIS ? GENESIS_QC : qcFor(parent)): Block {
  return makeBlock({ parent: blockHash(parent), height: parent.height + 1, view, proposer: leaderOf(view, N, parent), timestamp: view, commands, justify });
}

function proposal(block: Block, tc?: TimeoutCert): Signed<HotStuffMessage> {
  return signed(block.proposer, tc === undefined ? { type: 'proposal', block } : { type: 'proposal', block, tc });
}

function put(client: string, timestamp: number, key: string): Command {
  return command(client, timestamp, kvPayload({ type: 'put', key, value: key }));
}

/** Blocks in views 1 … k, each extending the one before (a chain of direct descendants); the first carries a command. */
function chainOf(k: number, commands = (view: number): Command[] => (view === 1 ? [put('client-0', 1, 'a')] : [])): Block[] {
  const blocks: Block[] = [];
  let parent = GENESIS;
  for (let view = 1; view <= k; view++) blocks.push((parent = child(parent, view, commands(view))));
  return blocks;
}

/** A structurally valid QC on any hash (the host checks signatures; a core checks structure). */
function qcOn(view: number, hash: Digest): QuorumCert {
  return { view, valueHash: hash, signatures: [0, 1, 2].map((node) => ({ node, signature: signature(node, voteBody(view, hash)) })) };
}

/** The block at `index` of `blocks` (a test's own array: present by construction). */
function at(blocks: readonly Block[], index: number): Block {
  const block = blocks[index];
  if (block === undefined) throw new RangeError(`no block at ${index}`);
  return block;
}

function sent(ready: Ready<HotStuffMessage>, type: HotStuffMessage['type']): { to: readonly number[]; body: HotStuffMessage }[] {
  return ready.messages.filter((m) => m.body.type === type);
}

function blocksPersisted(ready: Ready<HotStuffMessage>): number {
  return ready.persist.filter((p) => p.key.startsWith('block/') && p.value !== undefined).length;
}

/** Replicated-state bytes as a snapshot carries them. */
function stateBytes(key: string): Uint8Array {
  const state = new ReplicatedState(new KvStateMachine());
  state.execute(put('client-9', 1, key), 1, 0);
  return state.snapshot();
}

/** Feeds one message and returns what the core asks for. */
function deliver(c: HotStuffCore, message: Signed<HotStuffMessage>, now = 0): Ready<HotStuffMessage> {
  c.step({ kind: 'message', message }, now);
  return c.ready();
}

function votesIn(ready: Ready<HotStuffMessage>): { to: readonly number[]; view: number; block: Uint8Array }[] {
  return ready.messages.flatMap((m) => (m.body.type === 'vote' ? [{ to: m.to, view: m.body.view, block: m.body.block }] : []));
}

/** Writes persist ops into `durable` the way a host's store would: encoded, then read back. */
function persistInto(durable: Map<string, unknown>, ready: Ready<HotStuffMessage>): void {
  for (const op of ready.persist) {
    if (op.value === undefined) durable.delete(op.key);
    else durable.set(op.key, decode(encode(op.value)));
  }
}

test('test_hotstuff_three_chain_finality', (t) => {
  // Consecutive views: b1 ← b2 ← b3, then a QC on b3 commits b1 (Algorithm 3's decide phase).
  const c = core(0);
  const b1 = child(GENESIS, 1, [put('client-0', 1, 'a')]);
  const b2 = child(b1, 2);
  const b3 = child(b2, 3);
  deliver(c, proposal(b1));
  deliver(c, proposal(b2));
  t.is(c.committedBlock.height, 0, 'a one-chain commits nothing');
  const afterB3 = deliver(c, proposal(b3));
  t.is(c.committedBlock.height, 0, 'a two-chain b1 ← b2 with a QC on b2 does not commit');
  t.is(c.lockedQC.view, 1, 'but it locks on b1');
  t.deepEqual(afterB3.applied, []);
  // Node 0 leads view 4: the votes on b3 reach it and their QC completes the three-chain.
  let ready: Ready<HotStuffMessage> | undefined;
  for (const from of [1, 2, 3]) ready = deliver(c, signed(from, voteBody(3, blockHash(b3))));
  t.is(c.committedBlock.height, 1);
  t.true(sameBytes(c.committedBlock.hash, blockHash(b1)));
  const entry = ready?.applied[0];
  t.is(entry?.kind, 'entry');
  if (entry?.kind === 'entry') {
    t.is(entry.position, 1);
    t.deepEqual(entry.commands, b1.commands);
    t.true(sameBytes(entry.certificate?.valueHash ?? new Uint8Array(0), blockHash(b3)), 'the entry carries the QC that decided it: the one on b3');
  }
  t.deepEqual(ready?.replies.map((r) => [r.client, r.timestamp, r.position]), [['client-0', 1, 1]]);

  // A view that timed out breaks the chain: b1 ← b2 ← b4 (view 4 after TC(3)) ← b5 ← b6 has QCs on
  // every block but no three consecutive views until b4 ← b5 ← b6 is certified.
  const d = core(3);
  const c4 = child(b2, 4);
  const c5 = child(c4, 5);
  const c6 = child(c5, 6);
  for (const p of [proposal(b1), proposal(b2), proposal(c4, tcFor(3)), proposal(c5), proposal(c6)]) deliver(d, p);
  t.is(d.committedBlock.height, 0, 'QC(b5) on b5 ← b4 ← b2 (views 5, 4, 2) commits nothing');
  const decided = deliver(d, signed(1, { type: 'new-view', view: 6, highQC: qcFor(c6) }));
  t.is(d.committedBlock.height, 3, 'QC(b6) on b6 ← b5 ← b4 commits b4 and its ancestors');
  t.deepEqual(
    decided.applied.map((a) => a.position),
    [1, 2, 3],
  );
});

test('safeNode: a block is safe when it extends the lock or its justify is newer than the lock', (t) => {
  const qc = (view: number): QuorumCert => ({ ...GENESIS_QC, view });
  t.true(safeNode(qc(1), qc(3), true), 'extends the locked block');
  t.true(safeNode(qc(4), qc(3), false), 'newer justify (liveness)');
  t.false(safeNode(qc(3), qc(3), false), 'same view, other branch');
  t.false(safeNode(qc(2), qc(3), false), 'older justify, other branch');
});

test('locking: a locked replica refuses a fork with an older justify and follows one with a newer', (t) => {
  const c = core(3);
  const b1 = child(GENESIS, 1, [put('client-0', 1, 'a')]);
  const b2 = child(b1, 2);
  const b3 = child(b2, 3);
  for (const b of [b1, b2, b3]) deliver(c, proposal(b));
  t.is(c.lockedQC.view, 1, 'locked on b1 once the two-chain b1 ← b2 is certified');

  // View 3 times out; the leader of view 4 forks from genesis: its justify (view 0) is older than the lock.
  const fork = child(GENESIS, 4, [put('client-1', 1, 'b')]);
  const refused = deliver(c, proposal(fork, tcFor(3)));
  t.is(c.view, 4);
  t.deepEqual(votesIn(refused), [], 'no vote for a block that conflicts with the lock');
  t.is(c.lastVotedView, 3);

  // The fork gathered a QC elsewhere (view 4 > lock view 1): a block on it is voted for.
  const next = child(fork, 5);
  const followed = deliver(c, proposal(next));
  t.is(c.view, 5);
  t.deepEqual(votesIn(followed).map((v) => v.view), [5], 'a newer justify overrides the lock');
});

test('a vote goes to the next view\'s leader as a QC on its block would name it, and only that leader\'s proposal is voted for', (t) => {
  const c = core(1);
  const b1 = child(GENESIS, 1);
  t.deepEqual(votesIn(deliver(c, proposal(b1))), [{ to: [2], view: 1, block: blockHash(b1) }], 'the genesis QC names no signers: round robin');
  const b2 = child(b1, 2);
  t.deepEqual(votesIn(deliver(c, proposal(b2))), [{ to: [0], view: 2, block: blockHash(b2) }], '3 signed no QC in b2: view 3 goes to the next signer, 0');
  const fromRoundRobin = makeBlock({ ...child(b2, 3), proposer: 3 });
  t.deepEqual(votesIn(deliver(c, proposal(fromRoundRobin))), [], 'the round-robin leader does not lead a view entered on a QC that leaves it out');
  const b3 = child(b2, 3, [], qcFor(b2, [1, 2, 3]));
  t.is(b3.proposer, 0);
  t.deepEqual(votesIn(deliver(c, proposal(b3))), [{ to: [1], view: 3, block: blockHash(b3) }], 'b3\'s QC leaves 0 out: view 4 goes to 1');
});

test('the leader of a view entered on a QC is the first signer of its certified block\'s justify from round-robin order on', (t) => {
  const certified = (view: number, signers: readonly number[]): Block => child(GENESIS, view, [], qcFor(GENESIS, signers));
  t.is(leaderOf(5, N), 1, 'round robin without a QC');
  t.is(leaderOf(7, N, certified(6, [0, 1, 2])), 0, 'view 7 would be 3\'s, which signed nothing: the next signer');
  t.is(leaderOf(7, N, certified(6, [1, 2, 3])), 3, 'a signer keeps its turn');
  t.is(leaderOf(6, N, certified(6, [0, 1, 3])), 2, 'a block of another view names nobody: round robin');
  t.is(leaderOf(1, N, GENESIS), 1, 'the genesis QC has no signers: round robin');
});

test('a vote goes to everyone while the next leader\'s last view ended in a TC, to it alone again once one ended in a QC', (t) => {
  const c = core(1);
  deliver(c, signed(2, { type: 'new-view', view: 3, highQC: GENESIS_QC, tc: tcFor(3) }));
  t.is(c.view, 4, 'view 3, led by 3, ended in a TC');
  const b6 = child(GENESIS, 6);
  t.deepEqual(votesIn(deliver(c, proposal(b6, tcFor(5)))).map((v) => [v.view, v.to]), [[6, [0, 1, 2, 3]]], 'the QC on view 6 completes whatever three-chain there is: every replica gets the votes');
  const b7 = child(b6, 7);
  t.deepEqual(votesIn(deliver(c, proposal(b7))).map((v) => [v.view, v.to]), [[7, [0]]]);
  const b8 = child(b7, 8);
  deliver(c, proposal(b8));
  t.is(c.view, 8, 'view 7, led by 3, ended in a QC');
  const b9 = child(b8, 9);
  const b10 = child(b9, 10, [], qcFor(b9, [1, 2, 3]));
  deliver(c, proposal(b9));
  t.deepEqual(votesIn(deliver(c, proposal(b10))).map((v) => [v.view, v.to]), [[10, [3]]], 'and 3 gets the votes for view 10 alone again');
});

test('a QC with a repeated signer or too few signers is rejected', (t) => {
  const b1 = child(GENESIS, 1);
  for (const signers of [[0, 0, 1], [0, 1], [0, 1, 9]]) {
    const c = core(3);
    deliver(c, proposal(b1));
    const bad = child(b1, 2, [], qcFor(b1, signers));
    const ready = deliver(c, proposal(bad));
    t.deepEqual(votesIn(ready), [], `signers ${signers.join(',')}`);
    t.is(c.highQC.view, 0, 'the certificate does not count');
    t.deepEqual(ready.evidence.map((e) => [e.kind, e.node]), [['invalid-certificate', leaderOf(2, N)]]);
  }
});

test('a timeout certificate advances the view', (t) => {
  const c = core(0);
  t.is(c.view, 1);
  // f+1 = 2 timeouts: the replica joins with its own (so a TC forms even where it saw nothing wrong).
  deliver(c, signed(1, timeoutBody(1)));
  const joined = deliver(c, signed(2, timeoutBody(1)));
  t.true(joined.messages.some((m) => m.body.type === 'timeout' && m.body.view === 1));
  t.is(c.view, 1, 'two timeouts are not a quorum');
  deliver(c, signed(0, timeoutBody(1)));
  t.is(c.view, 2, 'a quorum of timeouts is a TC for view 1');

  // A TC carried by a proposal moves a replica that saw none of the timeouts.
  const d = core(3);
  const b6 = child(GENESIS, 6);
  const ready = deliver(d, proposal(b6, tcFor(5)));
  t.is(d.view, 6);
  t.deepEqual(votesIn(ready).map((v) => v.view), [6]);
  // A proposal that skips views without a TC is refused, with evidence.
  const e = core(3);
  const skip = deliver(e, proposal(child(GENESIS, 6)));
  t.is(e.view, 1);
  t.deepEqual(skip.evidence.map((x) => x.kind), ['invalid-proposal']);
});

test('pacemaker back-off doubles per failed view and resets after progress', (t) => {
  const p = new Pacemaker(100, 1_000);
  t.is(p.timeoutMs, 100);
  p.failed(1);
  t.is(p.timeoutMs, 200);
  p.failed(1);
  t.is(p.timeoutMs, 200, 'a view fails once');
  p.failed(2);
  p.failed(3);
  t.is(p.timeoutMs, 800);
  p.failed(4);
  t.is(p.timeoutMs, 1_000, 'capped');
  p.progressed();
  t.is(p.timeoutMs, 100);

  // The same in a core: its view timer is re-armed longer after each failed view, and back at
  // the base once a QC shows progress.
  const c = core(3);
  c.step({ kind: 'request', command: put('client-0', 1, 'a') }, 0);
  const armed = (r: Ready<HotStuffMessage>): number[] => r.timers.flatMap((x) => (x.kind === 'set' && x.timer === 'view' ? [x.afterMs] : []));
  t.deepEqual(armed(c.ready()), [100]);
  c.step({ kind: 'timeout', timer: 'view' }, 100);
  t.deepEqual(armed(c.ready()), [200]);
  for (const from of [3, 0, 1]) deliver(c, signed(from, timeoutBody(1)));
  t.is(c.view, 2, 'its own timeout (looped back by the host) and two more make a TC');
  c.step({ kind: 'timeout', timer: 'view' }, 300);
  t.deepEqual(armed(c.ready()), [400]);
  const b3 = child(GENESIS, 3, [], GENESIS_QC);
  const progress = deliver(c, signed(2, { type: 'new-view', view: 3, highQC: qcFor(child(b3, 4)) }));
  t.is(c.view, 5);
  t.deepEqual(armed(progress), [100]);
});

test('equivocation and double votes are reported with the signed messages that prove them', (t) => {
  const c = core(3);
  const cmds = [put('client-0', 1, 'a'), put('client-1', 1, 'b')];
  const first = proposal(child(GENESIS, 1, cmds));
  const other = hotStuffAdversary.conflicting(first.body, 7);
  t.truthy(other);
  if (other === undefined) return;
  const second = signed(first.from, other);
  deliver(c, first);
  const ready = deliver(c, second);
  t.deepEqual(ready.evidence.map((e) => [e.kind, e.node]), [['equivocation', 1]]);
  t.deepEqual(ready.evidence[0]?.messages, [first, second]);
  t.deepEqual(votesIn(ready), [], 'no second vote in the view');

  const hash = blockHash(child(GENESIS, 1));
  const vote = signed(2, voteBody(1, hash));
  const conflicting = hotStuffAdversary.conflicting(vote.body, 3);
  if (conflicting === undefined) return t.fail();
  const leader = core(2);
  deliver(leader, vote);
  t.deepEqual(deliver(leader, vote).evidence, [], 'a repeated vote is a duplicate, not a double vote');
  const double = deliver(leader, signed(2, conflicting));
  t.deepEqual(double.evidence.map((e) => [e.kind, e.node, e.messages.length]), [['double-vote', 2, 2]]);
});

test('a restarted replica does not vote twice in a view', (t) => {
  const durable = new Map<string, unknown>();
  const c = core(2, durable);
  const b1 = child(GENESIS, 1, [put('client-0', 1, 'a')]);
  const ready = deliver(c, proposal(b1));
  persistInto(durable, ready);
  t.is(votesIn(ready).length, 1);
  t.is(durable.get('voted'), 1, 'the vote is durable before it leaves');

  const restarted = core(2, durable);
  t.is(restarted.lastVotedView, 1);
  const variant = hotStuffAdversary.conflicting(proposal(b1).body, 1);
  if (variant === undefined) return t.fail();
  t.deepEqual(votesIn(deliver(restarted, signed(1, variant))), [], 'no vote for another block in view 1');
  t.deepEqual(votesIn(deliver(restarted, proposal(b1))), [], 'nor again for the same block');
  t.is(votesIn(deliver(restarted, proposal(child(b1, 2)))).length, 1, 'it votes in the next view');
});

test('property: across crashes and restarts a replica votes at most once per view', (t) => {
  const seed = testSeed(t);
  const step = fc.record({ view: fc.integer({ min: 1, max: 8 }), variant: fc.nat(3), crash: fc.boolean() });
  let votes = 0;
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 30, size: 'max' }), (steps) => {
        const durable = new Map<string, unknown>();
        let c = core(0, durable);
        const votedFor = new Map<number, string>();
        for (const s of steps) {
          const base = child(GENESIS, s.view, [put('client-0', s.view, `k${s.view}`)]);
          const body = s.variant === 0 ? proposal(base).body : hotStuffAdversary.conflicting(proposal(base).body, s.variant);
          if (body === undefined) return false;
          const tc = s.view > 1 ? tcFor(s.view - 1) : undefined;
          const message = body.type === 'proposal' && tc !== undefined ? { ...body, tc } : body;
          const ready = deliver(c, signed(leaderOf(s.view, N), message));
          persistInto(durable, ready);
          for (const v of votesIn(ready)) {
            const key = Buffer.from(v.block).toString('hex');
            if (votedFor.has(v.view)) return false;
            votedFor.set(v.view, key);
            votes++;
          }
          if (s.crash) c = core(0, durable);
        }
        return true;
      }),
      { seed },
    ),
  );
  t.true(votes > 0, 'the runs voted at all');
});

test('a replica missing an ancestor fetches it from the proposer, then votes', (t) => {
  const c = core(3);
  const b1 = child(GENESIS, 1, [put('client-0', 1, 'a')]);
  const b2 = child(b1, 2);
  const asked = deliver(c, proposal(b2));
  const request = asked.messages.find((m) => m.body.type === 'block-request');
  t.deepEqual(request?.to, [b2.proposer]);
  t.true(request?.body.type === 'block-request' && sameBytes(request.body.hash, blockHash(b1)));
  t.deepEqual(votesIn(asked), []);
  // The proposer answers with the block; the waiting proposal is voted for.
  const server = core(2);
  deliver(server, proposal(b1));
  if (request === undefined) return t.fail();
  const answer = deliver(server, signed(3, request.body)).messages.find((m) => m.body.type === 'block-response');
  if (answer === undefined) return t.fail();
  t.deepEqual(answer.to, [3]);
  const voted = deliver(c, signed(2, answer.body));
  t.deepEqual(votesIn(voted).map((v) => v.view), [2]);
  t.truthy(c.block(blockHash(b1)));
});

test('messages that fail the schema are rejected', (t) => {
  const hash = new Uint8Array(32);
  const good = hotStuffMessageSchema.parse({ type: 'vote', view: 1, block: hash });
  t.is(good.type, 'vote');
  const bad: unknown[] = [
    { type: 'vote', view: 1, block: new Uint8Array(31) },
    { type: 'vote', view: -1, block: hash },
    { type: 'vote', view: 1, block: hash, extra: true },
    { type: 'vote', view: 1.5, block: hash },
    { type: 'commit', view: 1 },
    { type: 'timeout' },
    { type: 'proposal', block: { ...GENESIS, height: 'one' } },
    { type: 'proposal', block: GENESIS, tc: { view: 1, signatures: [{ node: 1 }] } },
    { type: 'new-view', view: 1, highQC: { view: 1, valueHash: hash } },
    { type: 'block-request', hash, height: 1, count: 10_000 },
    null,
    'vote',
  ];
  for (const value of bad) t.throws(() => hotStuffMessageSchema.parse(value), { instanceOf: SchemaError });
});

test('nested signatures rebuild the exact bodies replicas signed', (t) => {
  const c = core(0);
  const b1 = child(GENESIS, 1);
  const vote = votesIn(deliver(c, proposal(b1)))[0];
  if (vote === undefined) return t.fail();
  const qc: QuorumCert = { view: vote.view, valueHash: vote.block, signatures: [{ node: 0, signature: signature(0, voteBody(vote.view, vote.block)) }] };
  const [rebuilt] = nestedSignatures({ type: 'proposal', block: child(b1, 2, [], qc), tc: tcFor(1, [3]) });
  t.deepEqual(digestOf(rebuilt?.body), digestOf({ type: 'vote', view: vote.view, block: vote.block }));
  const all = nestedSignatures({ type: 'new-view', view: 2, highQC: qc, tc: tcFor(1, [3]) });
  t.deepEqual(all.map((s) => [s.from, (s.body as { type: string }).type]), [[0, 'vote'], [3, 'timeout']]);
  t.true(all.every((s) => sameBytes(s.signature, signature(s.from, s.body))));
  t.is(hotstuff().algorithm, 'hotstuff');
});

test('a restarted replica re-executes its committed blocks with the QC that decided them', (t) => {
  const durable = new Map<string, unknown>();
  const c = core(1, durable);
  const [b1, b2, b3, b4] = chainOf(4);
  for (const b of [b1, b2, b3, b4]) if (b !== undefined) persistInto(durable, deliver(c, proposal(b)));
  t.is(c.committedBlock.height, 1, 'QC(b3), carried by b4, commits b1');
  const replayed = core(1, durable).ready().applied;
  t.deepEqual(replayed.map((a) => a.position), [1]);
  const entry = replayed[0];
  t.true(entry?.kind === 'entry' && b3 !== undefined && sameBytes(entry.certificate?.valueHash ?? new Uint8Array(0), blockHash(b3)), 'the QC on b3, persisted with the committed block');
});

test('the state is stored whole at the first snapshot height, then as the changes of each later one, and a restart rebuilds and checks it', (t) => {
  const durable = new Map<string, unknown>();
  const c = core(1, durable, { snapshotInterval: 2 });
  // A large first block, then one put per block: later snapshots change a few keys of many.
  const blocks = chainOf(11, (view) => (view === 1 ? Array.from({ length: 200 }, (_, i) => put('loader', i + 1, `bulk-${i}`)) : [put('writer', view, `k${view}`)]));
  const hashes = new Map<number, string>();
  for (const b of blocks) {
    const ready = deliver(c, proposal(b));
    persistInto(durable, ready);
    for (const a of ready.applied) if (a.kind === 'entry') hashes.set(a.position, hex(a.stateHash));
  }
  t.is(c.committedBlock.height, 8);
  const snapshot = durable.get(archivedSnapshotKey(2)) as ArchivedSnapshot;
  t.is(snapshot.position, 2, 'the first snapshot height stores the whole state');
  t.deepEqual([...durable.keys()].filter((k) => k.startsWith('state-changes/')), [4, 6, 8].map((h) => archivedChangesKey(h)));
  const changes = durable.get(archivedChangesKey(8)) as ArchivedChanges;
  t.true(changes.changes.length * 10 < snapshot.snapshot.length, `changes of ${changes.changes.length} bytes against a snapshot of ${snapshot.snapshot.length}`);
  t.like(durable.get('state-block'), { block: { height: 8 } });

  const restarted = core(1, durable, { snapshotInterval: 2 }).ready().applied[0];
  t.like(restarted, { kind: 'snapshot', position: 8 }, 'the state comes back at the last snapshot height');
  t.is(restarted === undefined ? undefined : hex(restarted.stateHash), hashes.get(8), 'as it was there');

  const tampered = (key: string, value: unknown): Map<string, unknown> => new Map([...durable, [key, value]]);
  const cases: [string, Map<string, unknown>][] = [
    ['changes that restore to another digest than their own', tampered(archivedChangesKey(8), { ...changes, digest: new Uint8Array(32).fill(1) })],
    ['changes without the snapshot before them', new Map([...durable].filter(([k]) => k !== archivedSnapshotKey(2)))],
    ['a record beside the stored state', tampered(archivedChangesKey(10), { ...changes, position: 10 })],
    ['a stored state without the block it is at', new Map([...durable].filter(([k]) => k !== 'state-block'))],
    ['a stored state at another block than the one stored with it', tampered('state-block', { block: at(blocks, 5) })],
    ['a stored state short of the block stored with it', tampered('state-block', { block: at(blocks, 9) })],
    ['a stored state whose last changes are missing', new Map([...durable].filter(([k]) => k !== archivedChangesKey(8)))],
    ['a snapshot that does not restore to its digest', tampered(archivedSnapshotKey(2), { ...snapshot, digest: new Uint8Array(32) })],
  ];
  for (const [what, records] of cases) t.is(t.throws(() => core(1, records, { snapshotInterval: 2 }), { instanceOf: ConsensusError }, what)?.code, 'CORRUPT_STATE', what);
});

/**
 * Replica 3 of a chain that a TC breaks: b1 ← b2 ← c4 ← c5 ← c6, then a QC on c6, whose three-chain
 * decides c4 and with it b1 and b2: eight commands in three blocks, executed by one decision.
 */
function decideThreeBlocks(c: HotStuffCore): Ready<HotStuffMessage>[] {
  const cmds = (from: number, count: number): Command[] => Array.from({ length: count }, (_, i) => put(`client-${from + i}`, 1, `k${from + i}`));
  const b1 = child(GENESIS, 1, cmds(0, 3));
  const b2 = child(b1, 2, cmds(3, 3));
  const c4 = child(b2, 4, cmds(6, 2));
  const c5 = child(c4, 5);
  const c6 = child(c5, 6);
  for (const p of [proposal(b1), proposal(b2), proposal(c4, tcFor(3)), proposal(c5), proposal(c6)]) deliver(c, p);
  const outputs = [deliver(c, signed(1, { type: 'new-view', view: 6, highQC: qcFor(c6) }))];
  while (c.executionPaused) {
    c.step({ kind: 'resume' }, 0);
    outputs.push(c.ready());
  }
  return outputs;
}

test('HotStuff: with an execution slice, a decided chain executes a slice per step, even part of a block, resumed until done, as at once', (t) => {
  const whole = decideThreeBlocks(core(3, new Map(), { snapshotInterval: 2 }));
  t.is(whole.length, 1);
  const c = core(3, new Map(), { snapshotInterval: 2, executionSlice: 2 });
  const sliced = decideThreeBlocks(c);
  t.is(sliced.length, 4, 'eight commands, two per step: the decision and three resumes');
  t.deepEqual(sliced[0]?.applied, [], 'nothing is reported of a block half executed');
  t.true(sliced[0]?.persist.some((op) => op.key === 'committed'), 'the decision itself is persisted at once');
  const all = <T>(outputs: Ready<HotStuffMessage>[], pick: (ready: Ready<HotStuffMessage>) => readonly T[]): T[] => outputs.flatMap(pick);
  t.deepEqual(all(sliced, (r) => r.applied), all(whole, (r) => r.applied), 'the same execution: responses, state hashes, certificates');
  t.deepEqual(all(sliced, (r) => r.replies), all(whole, (r) => r.replies));
  const records = (outputs: Ready<HotStuffMessage>[]): string[] => all(outputs, (r) => r.persist.map((op) => `${op.key} ${op.value === undefined ? 'erased' : hex(digestOf(op.value))}`)).sort();
  t.deepEqual(records(sliced), records(whole), 'the same records written and erased');
  t.true(sliced.slice(1).some((r) => r.persist.some((op) => op.key === archivedSnapshotKey(2))), 'the snapshot at height 2 was taken in a resumed step, once b2 was executed whole');
  t.is(c.committedBlock.height, 3);
});

test('HotStuff: any input other than resume while execution is paused finishes the decided chain first', (t) => {
  const c = core(3, new Map(), { executionSlice: 1 });
  const cmds = Array.from({ length: 3 }, (_, i) => put(`client-${i}`, 1, `k${i}`));
  const blocks = chainOf(4, (view) => (view === 1 ? cmds : []));
  for (const b of blocks) deliver(c, proposal(b));
  t.true(c.executionPaused, 'QC(b3), carried by b4, decides b1: one of its three commands executed');
  t.is(c.committedBlock.height, 1, 'b1 is committed…');
  t.is(c.status().commitIndex, 0, '…and not yet executed');
  // A client retries the last command of b1, decided but not yet executed.
  c.step({ kind: 'request', command: cmds[2] as Command }, 0);
  const ready = c.ready();
  t.false(c.executionPaused);
  t.deepEqual(ready.applied.map((a) => a.position), [1], 'b1 was executed before the request was taken…');
  t.deepEqual(
    ready.replies.map((r) => [r.client, r.position]),
    [['client-0', 1], ['client-1', 1], ['client-2', 1], ['client-2', 1]],
    '…so the retry is answered from the client table, not kept to be proposed again',
  );
  t.is(c.stats().pending, 0);
  for (const executionSlice of [0, 1.5, Number.NaN]) t.is(t.throws(() => core(0, new Map(), { executionSlice }), { instanceOf: ConsensusError })?.code, 'INVALID_CONFIG');
});

test('HotStuff: a replica catching up on many blocks in one step executes one slice in it, the rest in resumed steps', (t) => {
  const blocks = chainOf(12, (view) => Array.from({ length: 4 }, (_, i) => put(`client-${view}-${i}`, 1, `k${view}-${i}`)));
  const top = at(blocks, 11);
  const run = (tuning: HotStuffOptions): { first: Ready<HotStuffMessage>; later: Ready<HotStuffMessage>[] } => {
    const c = core(3, new Map(), tuning);
    const asked = deliver(c, proposal(top));
    const request = asked.messages.find((m) => m.body.type === 'block-request');
    t.truthy(request, 'the missing ancestors are asked for');
    const first = deliver(c, signed(request?.to[0] ?? 0, { type: 'block-response', blocks: blocks.slice(0, 11).reverse() }));
    const later: Ready<HotStuffMessage>[] = [];
    while (c.executionPaused) {
      c.step({ kind: 'resume' }, 0);
      later.push(c.ready());
    }
    t.is(c.status().commitIndex, 9, 'QC(b11) decides b9');
    return { first, later };
  };
  const whole = run({});
  const sliced = run({ executionSlice: 6 });
  const commands = (ready: Ready<HotStuffMessage>): number => ready.applied.reduce((sum, a) => sum + (a.kind === 'entry' ? a.commands.length : 0), 0);
  t.is(commands(whole.first), 36, 'unsliced, nine decisions execute 36 commands in the step that brought the blocks');
  t.true(commands(sliced.first) <= 6, `sliced, that step executes at most one slice (${commands(sliced.first)} commands reported)`);
  t.is(sliced.later.length, 5, '36 commands, 6 per step: that one and five resumed');
  t.deepEqual([sliced.first, ...sliced.later].flatMap((r) => r.applied), whole.first.applied, 'the same entries, each with the QC that decided it');
});

test('HotStuff: a leader proposing while its decided chain still executes does not propose the decided commands again', (t) => {
  const c = core(0, new Map(), { executionSlice: 1 });
  const cmds = [put('client-0', 1, 'a'), put('client-1', 1, 'b'), put('client-2', 1, 'c')];
  for (const command of cmds) c.step({ kind: 'request', command }, 0);
  c.ready();
  const b1 = child(GENESIS, 1, cmds);
  const b2 = child(b1, 2);
  const b3 = child(b2, 3);
  for (const b of [b1, b2, b3]) deliver(c, proposal(b));
  // Node 0 leads view 4: the third vote on b3 forms the QC that decides b1, and node 0 proposes in that step.
  let ready: Ready<HotStuffMessage> | undefined;
  for (const from of [1, 2, 3]) ready = deliver(c, signed(from, voteBody(3, blockHash(b3))));
  t.true(c.executionPaused, 'one of the three commands of b1 executed');
  const proposed = (ready?.messages ?? []).flatMap((m) => (m.body.type === 'proposal' ? m.body.block.commands : []));
  t.deepEqual(proposed, [], 'decided commands no longer wait to be proposed, though not yet executed');
});

test('committing a block off the committed chain throws DOUBLE_COMMIT rather than dropping it', (t) => {
  const tree = new BlockTree(GENESIS, blockHash(GENESIS));
  const executor = new Executor(new KvStateMachine(), tree, new Outputs<HotStuffMessage>(), { batchSize: 8, snapshotInterval: 64, maxPending: 8 }, undefined);
  const b1 = child(GENESIS, 1, [put('client-0', 1, 'a')]);
  const fork = child(GENESIS, 2, [put('client-1', 1, 'b')]);
  const committed = tree.add(b1, blockHash(b1));
  const other = tree.add(fork, blockHash(fork));
  t.true(executor.commit(committed, undefined));
  t.false(executor.commit(committed, undefined), 'deciding a committed block again changes nothing');
  const error = t.throws(() => executor.commit(other, undefined), { instanceOf: ConsensusError });
  t.is(error?.code, 'DOUBLE_COMMIT', 'a second block decided at height 1');
});

test('a restarted replica holding an uncommitted batch arms its view timer', (t) => {
  const durable = new Map<string, unknown>();
  const c = core(1, durable);
  const [b1, b2] = chainOf(2);
  for (const b of [b1, b2]) if (b !== undefined) persistInto(durable, deliver(c, proposal(b)));
  t.is(c.committedBlock.height, 0);
  const restarted = core(1, durable).ready();
  t.deepEqual(
    restarted.timers.map((x) => [x.kind, x.timer]),
    [['set', 'view'], ['set', 'announce']],
    'with no client retrying, the view timer is what gets the batch committed',
  );
  t.deepEqual(core(2).ready().timers, [], 'a replica with nothing to do stays idle');
});

test('a restarted replica tells the others its view and high QC, again ever more rarely until it enters a newer view', (t) => {
  const durable = new Map<string, unknown>();
  const before = core(1, durable);
  for (const b of chainOf(3)) persistInto(durable, deliver(before, proposal(b)));
  const announcements = (ready: Ready<HotStuffMessage>): (readonly [readonly number[], number])[] =>
    sent(ready, 'new-view').map((m) => [m.to, m.body.type === 'new-view' ? m.body.highQC.view : -1] as const);
  const waits = (ready: Ready<HotStuffMessage>): number[] => ready.timers.flatMap((op) => (op.kind === 'set' && op.timer === 'announce' ? [op.afterMs] : []));

  const alone = core(1, durable);
  const first = alone.ready();
  t.deepEqual(announcements(first), [[[0, 2, 3], 2]], 'to every other member, with its high QC');
  const seen = [waits(first)];
  for (let k = 1; k <= 4; k++) {
    alone.step({ kind: 'timeout', timer: 'announce' }, 100 * k);
    const again = alone.ready();
    seen.push(waits(again));
    t.is(announcements(again).length, k < 4 ? 1 : 0, `announcement ${k + 1}`);
  }
  t.deepEqual(seen, [[100], [200], [400], [], []], 'four in all, each wait twice the last, from the base timeout');

  const answered = core(1, durable);
  answered.ready();
  const moved = deliver(answered, signed(2, { type: 'new-view', view: 8, highQC: GENESIS_QC, tc: tcFor(8) }));
  t.is(answered.view, 9);
  t.true(moved.timers.some((op) => op.kind === 'cancel' && op.timer === 'announce'), 'a newer view ends the announcements');
  answered.step({ kind: 'timeout', timer: 'announce' }, 100);
  t.deepEqual(announcements(answered.ready()), []);

  t.deepEqual(announcements(core(2).ready()), [], 'a replica starting afresh has nothing to announce');
});

test('a leader whose batch was committed on a fork keeps its view timer until the chain itself commits it', (t) => {
  // b1 (a command) ← b2 ← b3 in views 1–3: a QC on b3 commits b1. The chain then goes on from b2
  // (view 5, entered on a TC), so no QC on it commits b1: a replica that never saw b3's QC still
  // waits for b1. The leader of view 6 proposes to fix that; if its proposal is lost, its own
  // timeout must join that replica's, or the replica would time out alone for ever.
  const blocks = chainOf(3);
  const [b1, b2, b3] = [at(blocks, 0), at(blocks, 1), at(blocks, 2)];
  const b5 = child(b2, 5, [], qcFor(b2));
  const run = (id: number): { c: HotStuffCore; last: Ready<HotStuffMessage> } => {
    const c = core(id);
    for (const b of [b1, b2, b3]) deliver(c, proposal(b));
    deliver(c, signed(0, { type: 'new-view', view: 4, highQC: qcFor(b3) }));
    t.is(c.committedBlock.height, 1, 'b1 committed by the QC on b3');
    deliver(c, proposal(b5, tcFor(4)));
    const last = deliver(c, signed(0, { type: 'new-view', view: 6, highQC: qcFor(b5) }));
    t.is(c.view, 6);
    return { c, last };
  };
  t.is(leaderOf(6, N), 2);
  const leader = run(2).last;
  t.is(sent(leader, 'proposal').length, 1, 'the leader proposes on b5 although it has nothing to commit');
  t.true(leader.timers.some((op) => op.kind === 'set' && op.timer === 'view'), 'and keeps its view timer running');
  const follower = run(1).last;
  t.false(follower.timers.some((op) => op.kind === 'set' && op.timer === 'view'), 'a follower with nothing to commit stays idle');
});

test('a replica answers a lagging peer each time it shows up, at most once per base timeout', (t) => {
  const c = core(0);
  const blocks = chainOf(10);
  for (const b of blocks) deliver(c, proposal(b));
  t.is(c.view, 10);
  const answers = (now: number): (readonly number[])[] => sent(deliver(c, signed(3, timeoutBody(5)), now), 'new-view').map((m) => m.to);
  t.deepEqual(answers(1_000), [[3]]);
  t.deepEqual(answers(1_050), [], 'not twice within the base timeout (100 ms)');
  t.deepEqual(answers(1_100), [[3]], 'but again after it: one lost answer costs the laggard one retry');
  // A peer in this view whose high QC is older hears the newer one.
  const older = deliver(c, signed(2, { type: 'new-view', view: 10, highQC: qcFor(at(blocks, 4)) }), 2_000);
  t.deepEqual(
    sent(older, 'new-view').map((m) => [m.to, m.body.type === 'new-view' ? m.body.highQC.view : -1]),
    [[[2], 9]],
  );
});

test('a leader stops waiting for a QC\'s block once fetching it gives up', (t) => {
  const c = core(3);
  c.step({ kind: 'request', command: put('client-0', 1, 'a') }, 0);
  c.ready();
  // A QC on a block nobody will send: the leader waits for it rather than extend an older QC...
  const unseen = child(child(GENESIS, 4), 5);
  deliver(c, signed(1, { type: 'new-view', view: 5, highQC: qcFor(unseen) }));
  const entered = deliver(c, signed(2, { type: 'new-view', view: 6, highQC: GENESIS_QC, tc: tcFor(6) }));
  t.is(c.view, 7);
  t.is(leaderOf(7, N), 3);
  t.deepEqual(sent(entered, 'proposal'), []);
  // ...until the fetch gives up, after which it proposes on its high QC with the TC it entered on.
  let rounds = 0;
  let proposed: HotStuffMessage | undefined;
  while (proposed === undefined && rounds < 2 * MAX_FETCH_ROUNDS) {
    rounds++;
    c.step({ kind: 'timeout', timer: 'fetch' }, 50 * rounds);
    proposed = sent(c.ready(), 'proposal')[0]?.body;
  }
  t.is(rounds, MAX_FETCH_ROUNDS + 1);
  t.true(proposed?.type === 'proposal' && proposed.tc?.view === 6 && proposed.block.justify.view === 0);
});

test('a leader stops waiting for a QC\'s block once fetching it gives up, though orphans keep it asked for', (t) => {
  const c = core(3, new Map(), { fetchRetryMs: 50 });
  c.step({ kind: 'request', command: put('client-0', 1, 'a') }, 0);
  c.ready();
  const unseen = child(child(GENESIS, 4), 5);
  // An orphan proves the block exists, so it is asked for as long as the orphan is kept; the QC on
  // it must not hold the leader for as long: an idle cluster would never move on.
  deliver(c, proposal(child(unseen, 6)));
  deliver(c, signed(1, { type: 'new-view', view: 5, highQC: qcFor(unseen) }));
  deliver(c, signed(2, { type: 'new-view', view: 6, highQC: GENESIS_QC, tc: tcFor(6) }));
  t.is(c.view, 7);
  t.is(c.stats().orphans, 1);
  let rounds = 0;
  let proposed = false;
  while (!proposed && rounds < 2 * MAX_FETCH_ROUNDS) {
    rounds++;
    c.step({ kind: 'timeout', timer: 'fetch' }, 50 * rounds);
    proposed = sent(c.ready(), 'proposal').length > 0;
  }
  t.is(rounds, MAX_FETCH_ROUNDS + 1);
  t.is(c.stats().waitingCertificates, 0);
  const asked = [];
  for (let round = rounds + 1; round <= rounds + 8; round++) {
    c.step({ kind: 'timeout', timer: 'fetch' }, 50 * round);
    asked.push(...sent(c.ready(), 'block-request').map((m) => m.body.type === 'block-request' && hex(m.body.hash)));
  }
  t.deepEqual(asked, [hex(blockHash(unseen)), hex(blockHash(unseen))], 'still asked for, every fourth period');
});

test('orphans on a fork off the committed chain are dropped with every orphan above them, and their parents are not asked for', (t) => {
  // Orphans in views 8, 9 and 10 above a fork block of view 7; the chain commits its own block at
  // the fork's height.
  const { c, fork } = forkAboveOrphans(1);
  t.deepEqual([c.stats().orphans, c.stats().missing], [3, 1], 'the fork block below them wanted');
  commitAtHeight7(c, at(fork, 0));
  t.is(c.committedBlock.height, at(fork, 1).height, 'the chain committed a block at the fork\'s height');
  t.deepEqual([c.stats().orphans, c.stats().missing], [0, 0], 'the walk up from the forked orphan reaches the top');
  t.deepEqual(requestsInRounds(c, 8), []);
});

test('orphans waiting for a block that arrives off the committed chain are dropped, and it is not asked for again', (t) => {
  // The orphans' own heights are above the committed one, so they look joinable until the block
  // they wait for arrives: its parent, not held, is at the committed height.
  const { c, fork } = forkAboveOrphans(2);
  commitAtHeight7(c, at(fork, 0));
  t.deepEqual([c.stats().orphans, c.stats().missing], [2, 1], 'still waiting for the fork\'s top block');
  deliver(c, signed(1, { type: 'block-response', blocks: fork.slice(1).reverse() }));
  t.deepEqual([c.stats().orphans, c.stats().missing], [0, 0]);
  t.deepEqual(requestsInRounds(c, 8), []);
});

test('an orphan whose parent expired asks for it again, though the parent arrived after it', (t) => {
  // Orphans are grouped by parent in arrival order: the child's group comes before the parent's.
  // Whether the parent is still held may be decided only once every expired orphan is gone.
  const blocks = chainOf(12);
  const parent = at(blocks, 9);
  const c = core(3, new Map(), { fetchRetryMs: 50 });
  for (const b of blocks.slice(0, 5)) deliver(c, proposal(b));
  deliver(c, proposal(at(blocks, 10)));
  deliver(c, signed(1, { type: 'block-response', blocks: [parent] }));
  t.is(c.stats().orphans, 2);
  const kept = c.view;
  // A sibling kept 19 views later outlives them both.
  deliver(c, proposal(child(parent, kept + 19), tcFor(kept + 18)));
  for (let v = kept + 19; v <= kept + ORPHAN_VIEWS; v++) deliver(c, signed(1, { type: 'new-view', view: v + 1, highQC: GENESIS_QC, tc: tcFor(v) }));
  t.is(c.stats().orphans, 1, 'the first two expired');
  c.step({ kind: 'timeout', timer: 'fetch' }, 50);
  t.deepEqual(
    sent(c.ready(), 'block-request').map((m) => m.body.type === 'block-request' && [hex(m.body.hash), m.body.height]),
    [[hex(blockHash(parent)), parent.height]],
  );
});

/**
 * A replica holding blocks of views 1 … 6 and, above them, a fork of views 7 … 10 whose first
 * `missing` blocks it lacks and the rest it holds as orphans. `fork` is the base (view 6), then
 * the fork's blocks.
 */
function forkAboveOrphans(missing: number): { c: HotStuffCore; fork: Block[] } {
  const common = chainOf(6);
  const fork = [at(common, 5)];
  for (const view of [7, 8, 9, 10]) fork.push(child(at(fork, fork.length - 1), view));
  const c = core(3, new Map(), { fetchRetryMs: 50 });
  for (const b of [...common, ...fork.slice(1 + missing)]) deliver(c, proposal(b));
  return { c, fork };
}

/** From `base` (height 6, view 6), the chain of views 11 … 14 (entered by a TC for view 10): it commits its block of view 11, at height 7, the fork's first. */
function commitAtHeight7(c: HotStuffCore, base: Block): void {
  let tip = child(base, 11);
  deliver(c, proposal(tip, tcFor(10)));
  for (const view of [12, 13, 14]) deliver(c, proposal((tip = child(tip, view))));
}

/** The block requests `c` sends in `rounds` fetch-timer rounds. */
function requestsInRounds(c: HotStuffCore, rounds: number): HotStuffMessage[] {
  const asked: HotStuffMessage[] = [];
  for (let round = 1; round <= rounds; round++) {
    c.step({ kind: 'timeout', timer: 'fetch' }, 50 * round);
    asked.push(...sent(c.ready(), 'block-request').map((m) => m.body));
  }
  return asked;
}

test('old-view forks, equivocations and blocks at or below the committed height stay out of the tree and off the disk', (t) => {
  const c = core(1);
  const blocks = chainOf(10);
  for (const b of blocks) deliver(c, proposal(b));
  t.deepEqual([c.view, c.committedBlock.height], [10, 7]);
  const held = c.stats().blocks;
  let persisted = 0;
  // 10 000 variants of the blocks of views 7 and 8, signed by their leaders: views two and three
  // back, the one below the committed height, the other above it.
  for (let i = 1; i <= 5_000; i++) {
    persisted += blocksPersisted(deliver(c, proposal(makeBlock({ ...at(blocks, 6), timestamp: 7 + i }))));
    persisted += blocksPersisted(deliver(c, proposal(makeBlock({ ...at(blocks, 7), timestamp: 8 + i }))));
  }
  t.is(persisted, 0);
  t.is(c.stats().blocks, held);
  // The leader of the current view (10) sends variants of its block: the first one stays.
  const ready: Ready<HotStuffMessage>[] = [];
  for (let i = 1; i <= 1_000; i++) ready.push(deliver(c, proposal(makeBlock({ ...at(blocks, 9), timestamp: 10 + i }))));
  t.is(c.stats().blocks, held);
  t.deepEqual(ready.flatMap((r) => r.evidence.map((e) => e.kind)), ['equivocation'], 'reported once');
  t.is(ready.reduce((sum, r) => sum + blocksPersisted(r), 0), 0);
  // A proposal of the next view forking below the committed block (height 7 on block 6).
  const low = deliver(c, proposal(child(at(blocks, 5), 11), tcFor(10)));
  t.is(c.view, 11);
  t.is(blocksPersisted(low), 0);
  t.is(c.stats().blocks, held);
});

test('votes and timeouts for future views are kept one view per sender, within a window', (t) => {
  const c = core(0);
  for (let i = 0; i < 10_000; i++) {
    deliver(c, signed(3, voteBody(2 + (i % 200), digestOf(['junk', i]))));
    deliver(c, signed(3, timeoutBody(2 + (i % 200))));
  }
  t.is(c.view, 1);
  t.true(c.stats().votes <= 1, `${c.stats().votes} votes kept`);
  t.true(c.stats().timeouts <= 1, `${c.stats().timeouts} timeouts kept`);
  // What is kept is the sender's newest view in the window, where the others can join it.
  deliver(c, signed(1, timeoutBody(65)));
  deliver(c, signed(2, timeoutBody(65)));
  t.is(c.view, 66, 'three timeouts for view 65, one of them kept from the flood, make a TC');
});

test('block requests are answered within a per-peer budget, with a snapshot only below the pruned root', (t) => {
  const c = core(0, new Map(), { snapshotInterval: 4, fetchRetryMs: 50 });
  for (const b of chainOf(8, (view) => [put(`client-${view}`, 1, `k${view}`)])) deliver(c, proposal(b));
  t.is(c.committedBlock.height, 5, 'root (the snapshot) at height 4');
  const ask = (hash: Digest, height: number, now: number): string[] =>
    deliver(c, signed(3, { type: 'block-request', hash, height, count: 16 }), now).messages.map((m) => m.body.type);
  const junk = digestOf(['junk']);
  const answered: string[] = [];
  for (let i = 0; i < 100; i++) answered.push(...ask(junk, 1, 1_000));
  t.deepEqual(answered, ['snapshot'], 'one snapshot for a hundred requests');
  t.deepEqual(ask(junk, 1, 1_500), [], 'none within the snapshot period (20 fetch retries)');
  t.deepEqual(ask(junk, 1, 2_000), ['snapshot']);
  t.deepEqual(ask(junk, 6, 10_000), [], 'an unknown block at a height not pruned: nothing to send');
  const responses: string[] = [];
  for (let i = 0; i < 100; i++) responses.push(...ask(c.committedBlock.hash, 5, 20_000));
  t.is(responses.length, 8, 'block responses: a burst of 8 per peer');
});

test('junk orphans stay within their sender\'s quota, height bound and age, and block sync still works', (t) => {
  const c = core(0);
  const honest = chainOf(12);
  for (const b of honest) deliver(c, proposal(b));
  t.is(c.view, 12);
  // A block of the Byzantine replica 3 whose parent is `parent`, with a (structurally valid) QC on it.
  const junk = (parent: Digest, height: number, view: number, salt: number): Block =>
    makeBlock({ parent, height, view, proposer: leaderOf(view, N), timestamp: salt, commands: [], justify: qcOn(2, parent) });
  // A block claiming a height far above any known to exist is not kept, nor its parent fetched.
  const high = deliver(c, signed(3, { type: 'proposal', block: junk(digestOf(['high']), 1_000_000, 15, 0), tc: tcFor(14) }));
  t.is(c.view, 15);
  t.deepEqual([c.stats().orphans, sent(high, 'block-request').length], [0, 0]);
  // Replica 3 leads every fourth view; each time it proposes a block above a 64-block junk chain,
  // then answers the fetch with the chain.
  let view = 19;
  for (let round = 0; round < 200; round++, view += 4) {
    const chain: Block[] = [];
    let parent = digestOf(['junk root', round]);
    for (let k = 0; k < 64; k++) {
      const block = junk(parent, 100 + k, 3, round);
      chain.push(block);
      parent = blockHash(block);
    }
    deliver(c, signed(3, { type: 'proposal', block: junk(parent, 164, view, round), tc: tcFor(view - 1) }));
    deliver(c, signed(3, { type: 'block-response', blocks: chain.reverse() }));
  }
  const quota = MAX_ORPHANS / N;
  const stats = c.stats();
  t.true(stats.orphans <= quota, `${stats.orphans} orphans kept, quota ${quota}`);
  t.true(stats.missing <= 2 * stats.orphans + 1, `${stats.missing} blocks wanted`);
  // An honest leader's proposal above 16 blocks this replica lacks: fetched and voted for.
  const next = view + 2;
  t.not(leaderOf(next, N), 3);
  const lacking: Block[] = [];
  let parent = at(honest, 11);
  for (let v = next - 16; v < next; v++) lacking.push((parent = child(parent, v)));
  const top = child(parent, next);
  const leader = top.proposer;
  const asked = deliver(c, proposal(top));
  t.true(sent(asked, 'block-request').some((m) => m.to.includes(leader)));
  const voted = deliver(c, signed(leader, { type: 'block-response', blocks: [...lacking].reverse() }));
  t.deepEqual(votesIn(voted).map((v) => v.view), [next]);
  // Orphans expire by age: ORPHAN_VIEWS views later none is left.
  for (let v = next; v <= next + ORPHAN_VIEWS; v++) deliver(c, signed(leaderOf(v + 1, N), { type: 'new-view', view: v + 1, highQC: GENESIS_QC, tc: tcFor(v) }));
  t.is(c.stats().orphans, 0);
});

test('an invalid proposal is not kept waiting for a parent', (t) => {
  const c = core(0);
  const blocks = chainOf(10);
  for (const b of blocks) deliver(c, proposal(b));
  const held = c.stats().blocks;
  deliver(c, proposal(makeBlock({ ...child(at(blocks, 9), 11), height: 99 })));
  t.is(c.stats().waitingProposals, 0);
  t.is(c.stats().blocks, held);
});

test('nested signatures list each certificate signer once', (t) => {
  const b1 = child(GENESIS, 1);
  const qc = qcFor(b1, Array.from({ length: 1_000 }, (_, i) => i % 3));
  const nested = nestedSignatures({ type: 'proposal', block: child(b1, 2, [], qc), tc: tcFor(1, [0, 0, 0, 1, 1, 2]) });
  t.deepEqual(nested.map((s) => [s.from, (s.body as { type: string }).type]), [[0, 'vote'], [1, 'vote'], [2, 'vote'], [0, 'timeout'], [1, 'timeout'], [2, 'timeout']]);
  // The core refuses such a certificate whole, so the repeats it did not verify are never trusted.
  const c = core(3);
  deliver(c, proposal(b1));
  const refused = deliver(c, proposal(child(b1, 2, [], qc)));
  t.deepEqual(refused.evidence.map((e) => e.kind), ['invalid-certificate']);
  t.is(c.highQC.view, 0);
});

test('a TC with a repeated signer is rejected', (t) => {
  for (const signers of [[0, 0, 1], [1, 2, 2, 2]]) {
    const c = core(3);
    const ready = deliver(c, proposal(child(GENESIS, 6), tcFor(5, signers)));
    t.is(c.view, 1, `signers ${signers.join(',')}`);
    t.deepEqual(ready.evidence.map((e) => [e.kind, e.node]), [['invalid-certificate', leaderOf(6, N)]]);
    deliver(c, signed(2, { type: 'new-view', view: 5, highQC: GENESIS_QC, tc: tcFor(5, signers) }));
    t.is(c.view, 1);
  }
});

test('a snapshot or block response nobody asked for is ignored', (t) => {
  const blocks = chainOf(70);
  const c = core(3);
  const state = stateBytes('x');
  for (const from of [0, 1, 2]) deliver(c, signed(from, { type: 'snapshot', block: at(blocks, 63), state }));
  t.is(c.committedBlock.height, 0, 'three matching offers, but no block of known height was asked for');
  const response = deliver(c, signed(1, { type: 'block-response', blocks: blocks.slice(0, 8).reverse() }));
  t.is(blocksPersisted(response), 0);
  t.is(c.stats().blocks, 1);
});

test('a snapshot is installed once f+1 peers offer the same one, and written before blocks are erased', (t) => {
  const blocks = chainOf(70);
  const c = core(3);
  deliver(c, proposal(at(blocks, 69)));
  t.true(c.stats().missing > 0, 'fetching the ancestors of a proposal far ahead');
  const offer = (from: number, state: Uint8Array): Ready<HotStuffMessage> => deliver(c, signed(from, { type: 'snapshot', block: at(blocks, 63), state }));
  t.deepEqual(offer(1, stateBytes('x')).applied, [], 'one offer (a Byzantine replica\'s, perhaps) is not enough');
  t.deepEqual(offer(2, stateBytes('y')).applied, [], 'nor two that differ');
  const installed = offer(0, stateBytes('x'));
  t.is(c.committedBlock.height, 64);
  t.deepEqual(installed.applied.map((a) => [a.kind, a.position]), [['snapshot', 64]]);
  const ops = installed.persist.map((p) => (p.value === undefined ? 'erase' : p.key));
  const [firstErase, snapshotAt, committedAt] = ['erase', archivedSnapshotKey(64), 'committed'].map((op) => ops.indexOf(op)) as [number, number, number];
  t.true(snapshotAt >= 0 && committedAt >= 0 && firstErase > snapshotAt && firstErase > committedAt, ops.join(' '));
});

test('a replica fetching history asks again at doubling gaps, and for a block an orphan waits for, for as long as the orphan is kept', (t) => {
  // Peers send a snapshot at most once per 20 fetch retries (see the block-request test above). A
  // laggard asking every period would send each peer a request per period while answers are on
  // their way over a slow link. The orphan (the proposal far ahead) proves its parent exists: were
  // the parent given up, an idle cluster would leave the laggard behind for good (in stop 28's
  // chaos runs, peers' snapshots at different heights under load agreed only once the load stopped,
  // and by then nothing asked for them).
  const c = core(3, new Map(), { fetchRetryMs: 50 });
  deliver(c, proposal(at(chainOf(70), 69)));
  const asked: number[] = [];
  let armed = true;
  for (let round = 1; round <= 3 * MAX_FETCH_ROUNDS && armed; round++) {
    c.step({ kind: 'timeout', timer: 'fetch' }, 50 * round);
    const ready = c.ready();
    if (sent(ready, 'block-request').length > 0) asked.push(round);
    armed = ready.timers.some((op) => op.kind === 'set' && op.timer === 'fetch');
  }
  t.true(armed, 'never given up while the orphan is kept');
  t.deepEqual(asked.slice(0, 16), [1, 3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47, 51, 55, 59]);
  t.deepEqual(asked.slice(16), Array.from({ length: (3 * MAX_FETCH_ROUNDS - 59) / 4 }, (_, k) => 63 + 4 * k), 'every fourth period after the gaps stopped growing');
  // The requests a peer answers with a snapshot, at most one per 20 periods.
  const answered = asked.reduce<number[]>((kept, round) => (kept.length === 0 || round - (kept[kept.length - 1] as number) >= 20 ? [...kept, round] : kept), []);
  t.deepEqual(answered.slice(0, 5), [1, 23, 43, 63, 83]);
  t.is(c.stats().orphans, 1);
});

test('a block first named by a QC is asked for with its height at the next period once a child reveals it, however far apart its requests had grown', (t) => {
  const c = core(3, new Map(), { fetchRetryMs: 50 });
  const blocks = chainOf(12);
  const named = at(blocks, 9);
  deliver(c, signed(1, { type: 'new-view', view: named.view + 1, highQC: qcFor(named) }));
  const requestsFor = (ready: Ready<HotStuffMessage>): number[] =>
    sent(ready, 'block-request').flatMap(({ body }) => (body.type === 'block-request' && hex(body.hash) === hex(blockHash(named)) ? [body.height] : []));
  const rounds: number[][] = [];
  for (let round = 1; round <= 8; round++) {
    c.step({ kind: 'timeout', timer: 'fetch' }, 50 * round);
    rounds.push(requestsFor(c.ready()));
  }
  t.deepEqual(rounds.map((heights) => heights.length > 0), [true, false, true, false, false, false, true, false], 'asked at rounds 1, 3 and 7, with no height');
  deliver(c, proposal(at(blocks, 10)), 50 * 8);
  c.step({ kind: 'timeout', timer: 'fetch' }, 50 * 9);
  t.deepEqual(requestsFor(c.ready()), [named.height], 'asked again at once, with the height a peer that pruned it answers');
});

test('a stale or repeated command in a block does not replace its client\'s recorded reply', (t) => {
  const c = core(0);
  const fresh = put('client-0', 2, 'x');
  const blocks = chainOf(5, (view) => (view === 1 ? [fresh, put('client-0', 1, 'y'), fresh] : []));
  const ready = blocks.map((b) => deliver(c, proposal(b)));
  t.is(c.committedBlock.height, 2);
  t.deepEqual(
    ready.flatMap((r) => r.replies.map((x) => [x.client, x.timestamp, x.position])),
    [['client-0', 2, 1]],
    'one answer, for the one fresh execution',
  );
  c.step({ kind: 'request', command: fresh }, 0);
  t.deepEqual(c.ready().replies.map((x) => [x.timestamp, x.position]), [[2, 1]], 'a retry is answered with the position it executed at');
});

test('blocks held as orphans are not asked for again: overlapping responses leave one block wanted, and a fetch round asks for it alone', (t) => {
  // Found with worker threads (stop 23): every block of a fetched chain stayed wanted while it
  // waited for its ancestors, so each fetch round asked every peer for each of them again, and
  // the round limit gave them up before the chain reached a block this replica held.
  const blocks = chainOf(40);
  const c = core(3);
  deliver(c, proposal(at(blocks, 39)));
  const respond = (from: number, top: number): Ready<HotStuffMessage> => deliver(c, signed(from, { type: 'block-response', blocks: blocks.slice(top - 15, top + 1).reverse() }));
  const first = respond(0, 38);
  t.like(sent(first, 'block-request').map((m) => m.body), [{ type: 'block-request', height: 23 }], 'the chain continues below its lowest block');
  t.is(sent(respond(1, 38), 'block-request').length, 0, 'the same chain from another peer asks for nothing more');
  respond(2, 37);
  t.deepEqual([c.stats().orphans, c.stats().missing], [18, 1], 'blocks 23 … 40 held (the proposal too), only block 22 wanted');
  c.step({ kind: 'timeout', timer: 'fetch' }, 1_000);
  t.deepEqual(
    sent(c.ready(), 'block-request').map((m) => m.body.type === 'block-request' && m.body.height),
    [22],
    'a fetch round asks every peer for that block alone',
  );
});

test('the orphans above a snapshot f+1 peers offer join the tree once it is installed', (t) => {
  const blocks = chainOf(40);
  const c = core(3);
  deliver(c, proposal(at(blocks, 39)));
  deliver(c, signed(0, { type: 'block-response', blocks: blocks.slice(23, 39).reverse() }));
  t.is(c.status().commitIndex, 0);
  // Blocks 24 … 40 wait for block 23, which the peers pruned: they answer with their snapshot there.
  const snapshot = { type: 'snapshot' as const, block: at(blocks, 22), state: stateBytes('pruned') };
  deliver(c, signed(0, snapshot));
  const installed = deliver(c, signed(1, snapshot));
  t.like(installed.applied[0], { kind: 'snapshot', position: 23 });
  t.is(c.status().commitIndex, 37, 'block 24, child of the snapshot\'s block, joined with the chain above it: QC(39) in block 40 decides block 37');
});
