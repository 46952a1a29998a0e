/**
 * Chained HotStuff rules, driven by hand on single cores: blocks, certificates and timeouts are
 * built here and fed to `step`; what the core asks its host to do is read from `ready`.
 */
import test from 'ava';
import fc from 'fast-check';
import { SchemaError } from '../schema/errors.js';
import {
  KvStateMachine,
  command,
  consensusConfig,
  decode,
  digestOf,
  encode,
  hashBytes,
  kvPayload,
  sameBytes,
  type Command,
  type QuorumCert,
  type Ready,
  type Signed,
} from '../protocols/consensus/index.js';
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
  type TimeoutCert,
} from '../protocols/hotstuff/index.js';
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

function core(id: number, durable: ReadonlyMap<string, unknown> = new Map()): HotStuffCore {
  return new HotStuffCore(
    { config: consensusConfig({ nodeId: id, n: N, algorithm: 'hotstuff' }), stateMachine: new KvStateMachine(), durable },
    { baseTimeoutMs: 100 },
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
  return makeBlock({ parent: blockHash(parent), height: parent.height + 1, view, proposer: leaderOf(view, N), timestamp: view, commands, justify });
}

function proposal(block: Block, tc?: TimeoutCert): Signed<HotStuffMessage> {
  return signed(block.proposer, tc === undefined ? { type: 'proposal', block } : { type: 'proposal', block, tc });
}

function put(client: string, timestamp: number, key: string): Command {
  return command(client, timestamp, kvPayload({ type: 'put', key, value: key }));
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
    t.true(sameBytes(entry.certificate?.valueHash ?? new Uint8Array(0), blockHash(b1)), 'the entry carries the QC on b1');
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

test('a vote goes to the next view\'s leader', (t) => {
  const c = core(0);
  const b1 = child(GENESIS, 1);
  const b2 = child(b1, 2);
  const first = votesIn(deliver(c, proposal(b1)));
  t.deepEqual(first, [{ to: [leaderOf(2, N)], view: 1, block: blockHash(b1) }]);
  const second = votesIn(deliver(c, proposal(b2)));
  t.deepEqual(second, [{ to: [leaderOf(3, N)], view: 2, block: blockHash(b2) }]);
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
      fc.property(fc.array(step, { minLength: 1, maxLength: 30 }), (steps) => {
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
