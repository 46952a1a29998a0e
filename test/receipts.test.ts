/**
 * Receipts end to end in one process, with real keys: replicas append each executed batch to
 * their receipt logs and sign the tree head, a collector gathers a quorum, receipts are built,
 * carried as JSON and verified offline against a trust description. Then tampering (property
 * tests), the quorum rules, the canonical bytes re-derived independently from the README's
 * layout, the JSON Schema files held to the runtime parser, tree-head consistency and forks.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import test from 'ava';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { verifyReceiptTask } from '../actors/receipt-tasks.js';
import { hashBytes } from '../protocols/consensus/codec.js';
import { SigningKey } from '../protocols/crypto/index.js';
import {
  ForkError,
  MerkleLog,
  ReceiptError,
  TREE_HEAD_CONTEXT,
  TreeHeadCollector,
  appendBatch,
  assertNoFork,
  buildReceipt,
  checkTrust,
  policyAt,
  compareTreeHeads,
  consistencyProofFromJson,
  consistencyProofToJson,
  encodeReceiptBody,
  encodeTreeHead,
  fromBase64Url,
  proveConsistency,
  receiptFromJson,
  receiptLeafHash,
  receiptToJson,
  signTreeHead,
  toBase64Url,
  treeHeadFromJson,
  treeHeadToJson,
  trustFromJson,
  trustKeyOf,
  trustQuorum,
  trustToJson,
  verifyConsistency,
  verifyReceipt,
  verifyTreeHead,
  type BatchRecord,
  type ExecutedBatch,
  type QuorumReport,
  type Receipt,
  type ReceiptBody,
  type SignedTreeHead,
  type TreeHead,
  type TreeHeadSignature,
  type Trust,
} from '../protocols/receipts/index.js';
import { CREATED, asFile, batch, execute, fixture, receiptsOf, registry, type Executed, type Fixture, type Member } from './helpers/receipts.js';
import { testSeed } from './helpers/seed.js';

test('test_receipt_generation_and_verification', (t) => {
  const fx = fixture();
  const batches = [batch(1, 3), batch(2, 1), batch(3, 0), batch(4, 5)];
  const executed = execute(fx, batches);
  const receipts = receiptsOf(fx, executed);
  t.is(receipts.length, 9, 'one receipt per committed command');
  t.is(executed.log.size, 9);

  // The collector turns the replicas' signatures into a signed tree head with exactly a quorum.
  const collector = new TreeHeadCollector(fx.trust, { registry });
  const { record, signatures } = executed.batches[0] as Executed['batches'][number];
  const updates = signatures.map((s) => collector.add(record.treeHead, s));
  t.deepEqual(updates.map((u) => u.kind), ['pending', 'pending', 'complete', 'ignored']);
  const complete = updates[2];
  if (complete?.kind !== 'complete') return t.fail();
  t.is(complete.signed.signatures.length, 3);

  receipts.forEach((receipt, i) => {
    const verdict = verifyReceipt(asFile(receipt), fx.trust, registry);
    if (!verdict.ok) return t.fail(`receipt ${i}: ${verdict.check}: ${verdict.reason}`);
    t.deepEqual(verdict.signers, ['r0', 'r1', 'r2']);
    t.is(verdict.quorum, 3);
    t.true(verifyReceipt(receipt, fx.trust, registry).ok, 'the in-memory form verifies too');
    t.deepEqual(receiptFromJson(asFile(receipt)), receipt, 'JSON round trip');
  });

  // What a body records: the batch's position, view and agreed time, the command, the state hashes around the batch.
  const fourth = batches[3] as ExecutedBatch;
  const body = (receipts[8] as Receipt).body;
  t.like(body, { version: 1, cluster: 'ledger-eu', protocol: 'pbft', sequence: 4, view: 3, batchIndex: 4, client: 'client-1', clientTimestamp: 404, timestamp: fourth.timestamp, policy: 'classical', leafIndex: 8 });
  t.deepEqual(body.commandHash, new Uint8Array(hashBytes((fourth.commands[4] as { payload: Uint8Array }).payload)));
  t.deepEqual(body.stateHashBefore, new Uint8Array(fourth.stateHashBefore));
  t.deepEqual(body.stateHashAfter, new Uint8Array(fourth.stateHash));
  // The tree head of a batch is the log after appending the batch; an empty batch restates it at its sequence.
  t.like(executed.batches.map((b) => b.record.treeHead), [{ size: 3, sequence: 1 }, { size: 4, sequence: 2 }, { size: 4, sequence: 3 }, { size: 9, sequence: 4 }]);

  // A replica rebuilds its log from the leaf hashes it persisted and gets the same heads and proofs.
  const rebuilt = MerkleLog.fromLeafHashes(executed.batches.flatMap((b) => b.record.leafHashes));
  t.deepEqual(rebuilt.root(), executed.log.root());
  t.deepEqual(buildReceipt(body, rebuilt, { treeHead: (executed.batches[3] as Executed['batches'][number]).record.treeHead, signatures: [] }).inclusionProof, (receipts[8] as Receipt).inclusionProof);

  // A receipt re-anchored to a later tree head (inclusion in the bigger tree) verifies as well.
  const later = executed.batches[3] as Executed['batches'][number];
  const reanchored = buildReceipt((receipts[0] as Receipt).body, executed.log, { treeHead: later.record.treeHead, signatures: later.signatures.slice(1) });
  t.true(verifyReceipt(asFile(reanchored), fx.trust, registry).ok);

  // buildReceipt refuses a body the log does not hold at its index.
  const stranger = { ...body, client: 'someone-else' };
  t.is(t.throws(() => buildReceipt(stranger, executed.log, { treeHead: later.record.treeHead, signatures: [] }), { instanceOf: ReceiptError })?.code, 'INCONSISTENT');
});

test('test_receipt_generation_and_verification: a hybrid (ML-DSA-65+Ed25519) receipt under the hybrid policy', (t) => {
  const fx = fixture({ scheme: 'ML-DSA-65+Ed25519', policy: 'hybrid' });
  const executed = execute(fx, [batch(7, 2)]);
  const receipts = receiptsOf(fx, executed);
  for (const receipt of receipts) {
    const verdict = verifyReceipt(asFile(receipt), fx.trust, registry);
    t.true(verdict.ok, verdict.ok ? '' : `${verdict.check}: ${verdict.reason}`);
    t.is(receipt.signatures[0]?.scheme, 'ML-DSA-65+Ed25519');
  }
  // The same receipt against a trust that requires another policy fails at 'policy', before any signature is checked.
  const classical = { ...fx.trust, policy: 'classical' as const };
  t.like(verifyReceipt(asFile(receipts[0] as Receipt), classical, registry), { ok: false, check: 'policy' });
  // Damage to either half of a composite signature loses it.
  const receipt = receipts[0] as Receipt;
  for (const at of [10, 3309 + 10]) {
    const signatures = receipt.signatures.map((s, i) => (i === 0 ? { ...s, signature: flipBit(s.signature, at * 8) } : s));
    t.like(verifyReceipt({ ...receipt, signatures }, fx.trust, registry), { ok: false, check: 'quorum' });
  }
});

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = bytes.slice();
  const i = Math.floor(bit / 8) % copy.length;
  copy[i] = (copy[i] as number) ^ (1 << (bit % 8));
  return copy;
}

type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
type Path = readonly (string | number)[];

function pathsOf(value: JsonValue, prefix: Path = []): Path[] {
  const here = [prefix];
  if (Array.isArray(value)) return [...here, ...value.flatMap((v, i) => pathsOf(v, [...prefix, i]))];
  if (value !== null && typeof value === 'object') return [...here, ...Object.entries(value).flatMap(([k, v]) => pathsOf(v, [...prefix, k]))];
  return here;
}

/** A copy of `root` with the value at `path` changed by mutation number `how` (with `bit` for bit flips). */
function mutate(root: JsonValue, path: Path, how: number, bit: number): JsonValue {
  const copy = structuredClone(root);
  const parentPath = path.slice(0, -1);
  const key = path[path.length - 1];
  const parent = parentPath.reduce<JsonValue>((v, k) => (v as Record<string | number, JsonValue>)[k] as JsonValue, copy) as Record<string | number, JsonValue> | JsonValue[];
  const value = path.length === 0 ? copy : (parent as Record<string | number, JsonValue>)[key as string | number];
  const set = (v: JsonValue): JsonValue => {
    if (path.length === 0) return v;
    (parent as Record<string | number, JsonValue>)[key as string | number] = v;
    return copy;
  };
  if (typeof value === 'string') {
    const bytes = fromBase64Url(value);
    if (bytes !== undefined && bytes.length > 0 && how % 2 === 0) return set(toBase64Url(flipBit(bytes, bit)));
    const chars = [...value];
    const options = [
      () => set(value + 'x'),
      () => set(value.length > 0 ? value.slice(0, -1) : 'y'),
      () => {
        const i = bit % Math.max(1, chars.length);
        chars[i] = chars[i] === 'A' ? 'B' : 'A';
        return set(chars.join(''));
      },
    ];
    return (options[how % options.length] as () => JsonValue)();
  }
  if (typeof value === 'number') {
    const options = [value + 1, value === 0 ? 2 : value - 1, value * 2 + 1, -1, 0.5, 2 ** 53, String(value)];
    return set(options[how % options.length] as JsonValue);
  }
  if (Array.isArray(value)) {
    const inProof = key === 'inclusionProof';
    const options = [
      () => set(value.length > 0 ? value.slice(1) : ['']),
      () => set(value.slice(0, -1).length === value.length ? [1] : value.slice(0, -1)),
      () => set([...value, inProof && value.length > 0 ? (value[0] as JsonValue) : 'not-a-signature']),
      () => set(value.length > 1 && inProof ? [value[1] as JsonValue, value[0] as JsonValue, ...value.slice(2)] : [...value, 7]),
    ];
    return (options[how % options.length] as () => JsonValue)();
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (how % 2 === 0 && keys.length > 0) {
      delete value[keys[bit % keys.length] as string];
      return copy;
    }
    value['extra'] = 1;
    return copy;
  }
  return set(null);
}

function immutability(t: import('ava').ExecutionContext, fx: Fixture, receipt: Receipt, numRuns: number): void {
  const seed = testSeed(t);
  const original = asFile(receipt) as JsonValue;
  t.true(verifyReceipt(original, fx.trust, registry).ok, 'the untouched receipt verifies');
  const paths = pathsOf(original);
  const checks = new Map<string, number>();
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.nat(paths.length - 1), fc.nat(20), fc.nat(1 << 16), (p, how, bit) => {
        const mutated = mutate(original, paths[p] as Path, how, bit);
        fc.pre(JSON.stringify(mutated) !== JSON.stringify(original));
        const verdict = verifyReceipt(mutated, fx.trust, registry);
        if (!verdict.ok) checks.set(verdict.check, (checks.get(verdict.check) ?? 0) + 1);
        return !verdict.ok;
      }),
      { seed, numRuns },
    ),
  );
  // Any bit of the JSON text, flipped, as a file would be damaged.
  const text = new TextEncoder().encode(JSON.stringify(original));
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.nat(text.length * 8 - 1), (bit) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(new TextDecoder().decode(flipBit(text, bit)));
        } catch {
          return true;
        }
        return !verifyReceipt(parsed, fx.trust, registry).ok;
      }),
      { seed, numRuns },
    ),
  );
  t.log(`failed checks: ${[...checks].map(([c, k]) => `${c} ${k}`).join(', ')}`);
  t.deepEqual(asFile(receipt), original, 'verification never mutates its input');
}

test('test_receipt_immutability', (t) => {
  const fx = fixture();
  const executed = execute(fx, [batch(1, 5), batch(2, 6), batch(3, 2)]);
  // Leaf 6 of 13: a proof of four hashes, three signatures — exactly a quorum, none to spare.
  const receipt = receiptsOf(fx, executed)[6] as Receipt;
  t.is(receipt.inclusionProof.length, 4);
  immutability(t, fx, receipt, 600);
});

test('test_receipt_immutability: hybrid signatures', (t) => {
  const fx = fixture({ scheme: 'ML-DSA-65+Ed25519', policy: 'hybrid' });
  const receipt = receiptsOf(fx, execute(fx, [batch(1, 3)]))[1] as Receipt;
  immutability(t, fx, receipt, 40);
});

test('test_receipt_consensus_quorum', (t) => {
  const fx = fixture({ n: 4 });
  const executed = execute(fx, [batch(1, 2), batch(2, 1)]);
  const { record, signatures } = executed.batches[1] as Executed['batches'][number];
  const body = record.bodies[0] as Receipt['body'];
  const [s0, s1, s2, s3] = signatures as [TreeHeadSignature, TreeHeadSignature, TreeHeadSignature, TreeHeadSignature];
  const verify = (set: readonly TreeHeadSignature[], trust: Trust = fx.trust) =>
    verifyReceipt(asFile(buildReceipt(body, executed.log, { treeHead: record.treeHead, signatures: set })), trust, registry);

  t.is(trustQuorum(fx.trust), 3, 'n = 4, f = 1: 2f+1');
  t.like(verify([s0, s1]), { ok: false, check: 'quorum' }, '2f signatures fail');
  t.like(verify([s0, s1, s2]), { ok: true, signers: ['r0', 'r1', 'r2'] }, '2f+1 distinct members pass');
  t.like(verify([s3, s1, s2]), { ok: true });
  const duplicate = verify([s0, s1, s0]);
  t.like(duplicate, { ok: false, check: 'quorum', signers: ['r0', 'r1'] }, '2f+1 with a duplicate fail');
  t.regex(duplicate.ok ? '' : duplicate.reason, /r0: the member was already counted/);

  // A non-member's signature does not count, whatever name it claims.
  const outsider = SigningKey.generate(registry.get('Ed25519'), CREATED + 99);
  const intruder = signTreeHead(record.treeHead, 'r9', outsider);
  t.like(verify([s0, s1, intruder]), { ok: false, check: 'quorum', rejected: [{ node: 'r9', reason: 'not a member' }] });
  t.like(verify([s0, s1, s2, intruder]), { ok: true, signers: ['r0', 'r1', 'r2'] }, 'an extra non-member signature is ignored');
  t.like(verify([s0, s1, signTreeHead(record.treeHead, 'r3', outsider)]), { ok: false, check: 'quorum' }, "a member's name with another key");

  // A signature over another tree head, or labelled with the wrong scheme, does not count.
  const otherHead = (executed.batches[0] as Executed['batches'][number]).signatures[2] as TreeHeadSignature;
  t.like(verify([s0, s1, otherHead]), { ok: false, check: 'quorum' });
  t.like(verify([s0, s1, { ...s2, scheme: 'ML-DSA-44' }]), { ok: false, check: 'quorum' });

  // Larger clusters: ⌈(n+f+1)/2⌉ distinct members.
  const seven = fixture({ n: 7 });
  const sevenRun = execute(seven, [batch(1, 1)]);
  const head = (sevenRun.batches[0] as Executed['batches'][number]);
  const verifySeven = (k: number) => verifyReceipt(asFile(buildReceipt(head.record.bodies[0] as Receipt['body'], sevenRun.log, { treeHead: head.record.treeHead, signatures: head.signatures.slice(0, k) })), seven.trust, registry);
  t.is(trustQuorum(seven.trust), 5);
  t.like(verifySeven(4), { ok: false, check: 'quorum' });
  t.like(verifySeven(5), { ok: true });
  t.is(trustQuorum({ n: 5, f: 1 }), 4, 'n = 5, f = 1 needs 4: two sets of 3 could meet only in the faulty member');
});

test('with a memo, the receipts of one tree head check its signatures once; another signature list, or a receipt failing an earlier check, gains nothing from it', (t) => {
  const fx = fixture({ n: 4 });
  const executed = execute(fx, [batch(1, 5)]);
  const { record, signatures } = executed.batches[0] as Executed['batches'][number];
  let verifications = 0;
  const counting = new Proxy(registry, {
    get: (target, property) =>
      property === 'get'
        ? (name: Parameters<typeof registry.get>[0]) => {
            const scheme = target.get(name);
            return { ...scheme, verify: (...args: Parameters<typeof scheme.verify>) => (verifications++, scheme.verify(...args)) };
          }
        : Reflect.get(target, property, target),
  });
  const memo = new Map<string, QuorumReport>();
  const quorum = signatures.slice(0, 3);
  const receipts = record.bodies.map((body) => asFile(buildReceipt(body, executed.log, { treeHead: record.treeHead, signatures: quorum })));
  for (const receipt of receipts) t.like(verifyReceipt(receipt, fx.trust, counting, memo), { ok: true, signers: ['r0', 'r1', 'r2'] });
  t.is(verifications, 3, 'five receipts, one tree head: its three signatures checked once');
  t.is(memo.size, 1);
  for (const receipt of receipts) t.true(verifyReceipt(receipt, fx.trust, counting).ok);
  t.is(verifications, 18, 'without a memo, once per receipt');

  const [s0, s1, s2] = quorum as [TreeHeadSignature, TreeHeadSignature, TreeHeadSignature];
  const forged = { ...s2, signature: flipBit(s2.signature, 7) };
  const body = record.bodies[0] as Receipt['body'];
  t.like(verifyReceipt(asFile(buildReceipt(body, executed.log, { treeHead: record.treeHead, signatures: [s0, s1, forged] })), fx.trust, counting, memo), { ok: false, check: 'quorum' }, 'a forged signature in place of a counted one');
  t.like(verifyReceipt(asFile(buildReceipt(body, executed.log, { treeHead: record.treeHead, signatures: [s0, s1, s0] })), fx.trust, counting, memo), { ok: false, check: 'quorum' }, 'a duplicate in place of a counted one');
  t.is(memo.size, 3, 'each signature list is counted on its own');
  const misplaced = receiptFromJson(receipts[1] as ReturnType<typeof asFile>);
  t.like(verifyReceipt({ ...misplaced, body: { ...misplaced.body, leafIndex: 0 } }, fx.trust, counting, memo), { ok: false, check: 'inclusion' }, 'a receipt of a counted tree head is still checked for inclusion');
  t.like(verifyTreeHead({ treeHead: record.treeHead, signatures: quorum }, fx.trust, counting, memo), { ok: true }, 'the tree head alone takes the report too');
  t.is(verifications, 18 + 3 + 2, 'only the two new lists were checked (a member\'s second signature never is)');
});

test('the pool task keeps tree heads\' quorum reports per trust: a receipt verified under one trust is judged afresh under another', async (t) => {
  const fx = fixture({ n: 4 });
  const executed = execute(fx, [batch(1, 2)]);
  const { record, signatures } = executed.batches[0] as Executed['batches'][number];
  const receipt = receiptToJson(buildReceipt(record.bodies[0] as Receipt['body'], executed.log, { treeHead: record.treeHead, signatures: signatures.slice(0, 3) }));
  t.like(await verifyReceiptTask.run({ receipt, trust: trustToJson(fx.trust) }), { ok: true });
  t.like(await verifyReceiptTask.run({ receipt, trust: trustToJson(fx.trust) }), { ok: true }, 'and again, from what the task kept');
  const stranger = SigningKey.generate(registry.get('Ed25519'), CREATED + 50);
  const replaced = checkTrust({ ...fx.trust, members: fx.trust.members.map((m) => (m.node === 'r2' ? { node: 'r2', keys: [trustKeyOf(stranger, 0)] } : m)) });
  t.like(await verifyReceiptTask.run({ receipt, trust: trustToJson(replaced) }), { ok: false, check: 'quorum' }, "r2's signature no longer counts under a trust that gives r2 another key");
});

test('test_receipt_consensus_quorum: a key counts only within its sequence range, and only under the policy', (t) => {
  const fx = fixture({ n: 4 });
  const [m0, m1, m2] = fx.members as [Member, Member, Member];
  const successor = SigningKey.generate(registry.get('Ed25519'), CREATED + 50);
  // r2 rotated at sequence 10: its first key signs sequences 0..9, its successor 10 onwards.
  const trust = checkTrust({
    ...fx.trust,
    members: fx.trust.members.map((m) => (m.node === 'r2' ? { node: 'r2', keys: [trustKeyOf(m2.key, 0, 9), trustKeyOf(successor, 10)] } : m)),
  });
  const log = new MerkleLog();
  const heads = new Map<number, { record: BatchRecord }>();
  for (const position of [5, 9, 10, 12]) heads.set(position, { record: appendBatch(log, batch(position, 1), fx.context) });
  const verifyAt = (position: number, r2Key: SigningKey) => {
    const { record } = heads.get(position) as { record: BatchRecord };
    const signatures = [signTreeHead(record.treeHead, 'r0', m0.key), signTreeHead(record.treeHead, 'r1', m1.key), signTreeHead(record.treeHead, 'r2', r2Key)];
    return verifyReceipt(asFile(buildReceipt(record.bodies[0] as Receipt['body'], log, { treeHead: record.treeHead, signatures })), trust, registry);
  };
  t.like(verifyAt(5, m2.key), { ok: true });
  t.like(verifyAt(9, m2.key), { ok: true }, 'validUntil is inclusive');
  t.like(verifyAt(10, m2.key), { ok: false, check: 'quorum' }, 'an expired key does not count');
  t.like(verifyAt(12, m2.key), { ok: false, check: 'quorum' });
  t.like(verifyAt(12, successor), { ok: true });
  t.like(verifyAt(9, successor), { ok: false, check: 'quorum' }, 'a key not yet valid does not count');

  // A member whose key is of a category the policy does not admit: its (valid) signature does not count.
  const quantum = SigningKey.generate(registry.get('ML-DSA-44'), CREATED + 60);
  const mixed = checkTrust({ ...fx.trust, members: fx.trust.members.map((m) => (m.node === 'r3' ? { node: 'r3', keys: [trustKeyOf(quantum, 0)] } : m)) });
  const { record } = heads.get(5) as { record: BatchRecord };
  const signatures = [signTreeHead(record.treeHead, 'r0', m0.key), signTreeHead(record.treeHead, 'r1', m1.key), signTreeHead(record.treeHead, 'r3', quantum)];
  const verdict = verifyReceipt(asFile(buildReceipt(record.bodies[0] as Receipt['body'], log, { treeHead: record.treeHead, signatures })), mixed, registry);
  t.like(verdict, { ok: false, check: 'quorum', rejected: [{ node: 'r3', reason: 'policy classical does not admit ML-DSA-44' }] });
});

test('verification names the first failed check: schema, cluster, policy, inclusion, quorum', (t) => {
  const fx = fixture();
  const executed = execute(fx, [batch(1, 4)]);
  const receipt = receiptsOf(fx, executed, 2)[1] as Receipt; // only 2 signatures: quorum would fail too
  const json = asFile(receipt) as { body: Record<string, unknown>; treeHead: Record<string, unknown> };
  t.like(verifyReceipt({ ...json, extra: true }, fx.trust, registry), { ok: false, check: 'schema' });
  t.like(verifyReceipt('not a receipt', fx.trust, registry), { ok: false, check: 'schema' });
  t.like(verifyReceipt({ ...json, body: { ...json.body, cluster: 'other' } }, fx.trust, registry), { ok: false, check: 'cluster' });
  t.like(verifyReceipt(json, { ...fx.trust, cluster: 'other' }, registry), { ok: false, check: 'cluster' });
  t.like(verifyReceipt({ ...json, treeHead: { ...json.treeHead, policy: 'hybrid' } }, fx.trust, registry), { ok: false, check: 'policy' });
  t.like(verifyReceipt({ ...json, body: { ...json.body, leafIndex: 2 } }, fx.trust, registry), { ok: false, check: 'inclusion' });
  t.like(verifyReceipt({ ...json, body: { ...json.body, sequence: 2 } }, fx.trust, registry), { ok: false, check: 'inclusion' }, 'a batch after its tree head');
  t.like(verifyReceipt(json, fx.trust, registry), { ok: false, check: 'quorum' });
});

/** The canonical bytes, re-derived from the README's byte-by-byte description with nothing but Buffer. */
function readmeBytes(fields: readonly (['u64', number] | ['bytes', Uint8Array] | ['text', string])[]): Buffer {
  return Buffer.concat(
    fields.map(([kind, value]) => {
      if (kind === 'u64') {
        const b = Buffer.alloc(8);
        b.writeBigUInt64BE(BigInt(value));
        return b;
      }
      const bytes = kind === 'text' ? Buffer.from(value, 'utf8') : Buffer.from(value);
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      return Buffer.concat([length, bytes]);
    }),
  );
}

test('the canonical encodings are exactly the documented layouts', (t) => {
  const digest = (n: number) => new Uint8Array(32).fill(n);
  const body = {
    version: 1,
    cluster: 'ledger-eu',
    protocol: 'hotstuff',
    sequence: 42,
    view: 7,
    batchIndex: 2,
    client: 'clïent-😀',
    clientTimestamp: 2 ** 53 - 1,
    commandHash: digest(1),
    stateHashBefore: digest(2),
    stateHashAfter: digest(3),
    timestamp: CREATED,
    policy: 'hybrid',
    leafIndex: 1000,
  } as const;
  const expectedBody = readmeBytes([
    ['text', 'knhk.receipt.v1'], ['u64', 1], ['text', 'ledger-eu'], ['text', 'hotstuff'], ['u64', 42], ['u64', 7], ['u64', 2],
    ['text', 'clïent-😀'], ['u64', 2 ** 53 - 1], ['bytes', digest(1)], ['bytes', digest(2)], ['bytes', digest(3)], ['u64', CREATED],
    ['text', 'hybrid'], ['u64', 1000],
  ]);
  t.is(Buffer.from(encodeReceiptBody(body)).toString('hex'), expectedBody.toString('hex'));
  t.is(expectedBody.subarray(0, 19).toString('hex'), '0000000f6b6e686b2e726563656970742e7631', 'u32 length 15, then "knhk.receipt.v1"');
  const head: TreeHead = { version: 1, cluster: 'ledger-eu', size: 1001, root: digest(4), sequence: 42, view: 7, timestamp: CREATED, policy: 'hybrid' };
  const expectedHead = readmeBytes([
    ['text', 'knhk.tree-head.v1'], ['u64', 1], ['text', 'ledger-eu'], ['u64', 1001], ['bytes', digest(4)], ['u64', 42], ['u64', 7], ['u64', CREATED], ['text', 'hybrid'],
  ]);
  t.is(Buffer.from(encodeTreeHead(head)).toString('hex'), expectedHead.toString('hex'));
  t.is(TREE_HEAD_CONTEXT, 'knhk/tree-head/v1');
  // The README's worked example.
  const example: TreeHead = { version: 1, cluster: 'demo', size: 3, root: digest(0xab), sequence: 7, view: 1, timestamp: CREATED, policy: 'hybrid' };
  t.is(
    Buffer.from(encodeTreeHead(example)).toString('hex'),
    `000000116b6e686b2e747265652d686561642e763100000000000000010000000464656d6f000000000000000300000020${'ab'.repeat(32)}` +
      '000000000000000700000000000000010000018bcfe5680000000006687962726964',
  );
  const exampleBody = { version: 1, cluster: 'demo', protocol: 'pbft', sequence: 7, view: 1, batchIndex: 0, client: 'alice', clientTimestamp: 5, commandHash: digest(1), stateHashBefore: digest(2), stateHashAfter: digest(3), timestamp: CREATED, policy: 'hybrid', leafIndex: 2 } as const;
  t.is(encodeReceiptBody(exampleBody).length, 218);
  t.is(Buffer.from(receiptLeafHash(exampleBody)).toString('hex'), '92f4d62be968f527e5af9eedb04f137c6ec824f4b201b4f3703f72a206453f6a');
  for (const bad of [{ ...body, sequence: 2 ** 53 }, { ...body, view: -1 }, { ...body, client: 'lone \ud800' }]) {
    t.is(t.throws(() => encodeReceiptBody(bad as typeof body), { instanceOf: ReceiptError })?.code, 'NOT_ENCODABLE');
  }
});

test('a receipt leaf hash is SHA-256 of 0x00 and the canonical body, whatever length the bodies before it had', (t) => {
  const seed = testSeed(t);
  const text = fc.string({ unit: 'grapheme', maxLength: 300 });
  const u = fc.nat({ max: Number.MAX_SAFE_INTEGER });
  const bytes = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const body = fc.record({
    version: fc.constant(1 as const), cluster: text, protocol: fc.constantFrom('pbft' as const, 'hotstuff' as const, 'raft' as const), sequence: u, view: u, batchIndex: u,
    client: text, clientTimestamp: u, commandHash: bytes, stateHashBefore: bytes, stateHashAfter: bytes, timestamp: u,
    policy: fc.constantFrom('classical' as const, 'hybrid' as const, 'quantum' as const), leafIndex: u,
  });
  // Leaves are hashed from one reused buffer: a long body followed by short ones must leave no trace.
  const expected = (b: ReceiptBody): string => createHash('sha256').update(Uint8Array.of(0)).update(encodeReceiptBody(b)).digest('hex');
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(body, { minLength: 1, maxLength: 8 }), (bodies) => bodies.every((b) => Buffer.from(receiptLeafHash(b)).toString('hex') === expected(b))),
      { seed, numRuns: 200 },
    ),
  );
});

function schemaValidators(): Record<'receipt' | 'tree-head' | 'trust' | 'consistency-proof', ValidateFunction> {
  const load = (name: string): object => JSON.parse(readFileSync(new URL(`../../protocols/receipts/${name}.schema.json`, import.meta.url), 'utf8')) as object;
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  ajv.addSchema(load('common'));
  const compile = (name: string) => ajv.compile(load(name));
  return { receipt: compile('receipt'), 'tree-head': compile('tree-head'), trust: compile('trust'), 'consistency-proof': compile('consistency-proof') };
}

test('the JSON Schema files accept what the code writes and agree with the runtime parser on malformed input', (t) => {
  const seed = testSeed(t);
  const validators = schemaValidators();
  const fx = fixture({ n: 4 });
  const executed = execute(fx, [batch(1, 3), batch(2, 2)]);
  const receipt = receiptsOf(fx, executed)[3] as Receipt;
  const heads = executed.batches.map((b) => ({ treeHead: b.record.treeHead, signatures: b.signatures }));
  const trust = checkTrust({
    ...fx.trust,
    members: fx.trust.members.map((m, i) => (i === 0 ? { node: m.node, keys: [...m.keys, trustKeyOf(SigningKey.generate(registry.get('Ed25519'), 5), 3, 9)] } : m)),
    migrations: [{ policy: 'hybrid', sequence: 40 }],
  });
  const proof = proveConsistency(executed.log, (heads[0] as SignedTreeHead).treeHead, (heads[1] as SignedTreeHead).treeHead);
  const samples = [
    ['receipt', JSON.parse(JSON.stringify(receiptToJson(receipt))), receiptFromJson],
    ['tree-head', JSON.parse(JSON.stringify(treeHeadToJson(heads[1] as SignedTreeHead))), treeHeadFromJson],
    ['trust', JSON.parse(JSON.stringify(trustToJson(trust))), (v: unknown) => trustFromJson(v)],
    ['consistency-proof', JSON.parse(JSON.stringify(consistencyProofToJson(proof))), consistencyProofFromJson],
  ] as const;
  for (const [name, value, parse] of samples) {
    t.true(validators[name](value), `${name}: ${JSON.stringify(validators[name].errors)}`);
    t.notThrows(() => parse(value), name);
  }
  t.deepEqual(trustFromJson(JSON.parse(JSON.stringify(trustToJson(trust)))), trust);
  t.deepEqual(consistencyProofFromJson(JSON.parse(JSON.stringify(consistencyProofToJson(proof)))), proof);
  t.deepEqual(treeHeadFromJson(JSON.parse(JSON.stringify(treeHeadToJson(heads[1] as SignedTreeHead)))), heads[1]);

  // Random damage: the schema file and the parser must say the same thing about every variant.
  let rejected = 0;
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.nat(samples.length - 1), fc.nat(10_000), fc.nat(20), fc.nat(1 << 16), (s, p, how, bit) => {
        const [name, value, parse] = samples[s] as (typeof samples)[number];
        const paths = pathsOf(value as JsonValue);
        const mutated = mutate(value as JsonValue, paths[p % paths.length] as Path, how, bit);
        const bySchema = validators[name](mutated);
        let byParser = true;
        try {
          parse(mutated);
        } catch (error) {
          // Trust rules beyond the shape (n ≥ 3f+1, n members) are the parser's alone; see the README.
          if (error instanceof ReceiptError && error.code === 'INVALID_TRUST') return true;
          byParser = false;
        }
        if (!bySchema) rejected++;
        return bySchema === byParser;
      }),
      { seed, numRuns: 800 },
    ),
  );
  t.true(rejected > 100, `${rejected} malformed variants rejected by both`);
  for (const bad of ['AB', 'AAA=', 'A+B/', 'AAE']) t.false(validators['consistency-proof']({ ...samples[3][1], proof: [bad] }), bad);
  t.false(validators.trust({ ...samples[2][1], members: [{ node: 'x', keys: [{ keyId: 'A'.repeat(64), scheme: 'Ed25519', publicKey: '', validFrom: 0 }] }] }));
});

test('trust files: rules beyond the shape are refused with INVALID_TRUST', (t) => {
  const fx = fixture();
  const json = trustToJson(fx.trust) as unknown as { members: { node: string }[] } & Record<string, unknown>;
  const bad = [
    { ...json, f: 2 },
    { ...json, n: 5 },
    { ...json, members: [json.members[0], json.members[0], json.members[1], json.members[2]] },
    { ...json, migrations: [{ policy: 'quantum', sequence: 5 }] },
    { ...json, migrations: [{ policy: 'classical', sequence: 5 }] },
    { ...json, migrations: [{ policy: 'hybrid', sequence: 9 }, { policy: 'quantum', sequence: 9 }] },
  ];
  for (const value of bad) t.is(t.throws(() => trustFromJson(value), { instanceOf: ReceiptError })?.code, 'INVALID_TRUST');
  const key = trustKeyOf((fx.members[0] as Member).key, 9, 3);
  t.is(t.throws(() => checkTrust({ ...fx.trust, members: [{ node: 'r0', keys: [key] }, ...fx.trust.members.slice(1)] }))?.message, `node r0's key ${key.keyId} is valid until 3, before it is valid from 9`);
  t.like(trustFromJson({ ...json, f: 0 }), { f: 0 }, 'f = 0 (a Raft cluster): a majority');
  const migrated = trustFromJson({ ...json, migrations: [{ policy: 'hybrid', sequence: 9 }, { policy: 'quantum', sequence: 20 }] });
  t.deepEqual([0, 8, 9, 19, 20, 1e9].map((sequence) => policyAt(migrated, sequence)), ['classical', 'classical', 'hybrid', 'hybrid', 'quantum', 'quantum']);
  t.is(trustQuorum({ n: 3, f: 0 }), 2);
});

test('signed tree heads verify on their own, and consistency between two of them is checked', (t) => {
  const fx = fixture();
  const executed = execute(fx, [batch(1, 3), batch(2, 4), batch(3, 1)]);
  const [a, b, c] = executed.batches.map((x) => ({ treeHead: x.record.treeHead, signatures: x.signatures.slice(0, 3) })) as unknown as [SignedTreeHead, SignedTreeHead, SignedTreeHead];
  t.like(verifyTreeHead(JSON.parse(JSON.stringify(treeHeadToJson(c))), fx.trust, registry), { ok: true, signers: ['r0', 'r1', 'r2'] });
  t.like(verifyTreeHead({ ...c, signatures: c.signatures.slice(1) }, fx.trust, registry), { ok: false, check: 'quorum' });
  t.like(verifyTreeHead({ ...c, treeHead: { ...c.treeHead, size: 7 } }, fx.trust, registry), { ok: false, check: 'quorum' });
  t.like(verifyTreeHead({ treeHead: c.treeHead }, fx.trust, registry), { ok: false, check: 'schema' });
  t.like(verifyTreeHead(c, { ...fx.trust, policy: 'hybrid' }, registry), { ok: false, check: 'policy' });

  const ac = proveConsistency(executed.log, a.treeHead, c.treeHead);
  t.deepEqual(ac.proof, executed.log.consistencyProof(3, 8));
  t.deepEqual(verifyConsistency(a.treeHead, c.treeHead, ac), { ok: true });
  t.like(verifyConsistency(b.treeHead, c.treeHead, ac), { ok: false, check: 'consistency' }, 'a proof for other sizes');
  t.like(verifyConsistency(c.treeHead, a.treeHead, { ...ac, firstSize: 8, secondSize: 3 }), { ok: false, check: 'consistency' });
  t.like(verifyConsistency(a.treeHead, { ...c.treeHead, root: a.treeHead.root }, ac), { ok: false, check: 'consistency' });
  t.like(verifyConsistency(a.treeHead, { ...c.treeHead, cluster: 'other' }, ac), { ok: false, check: 'cluster' });
  t.is(t.throws(() => proveConsistency(executed.log, c.treeHead, a.treeHead), { instanceOf: ReceiptError })?.code, 'INCONSISTENT');
});

test('forks: two tree heads that cannot both be honest are reported with transferable evidence', (t) => {
  const fx = fixture();
  const honest = execute(fx, [batch(1, 3), batch(2, 2)]);
  const forked = execute(fx, [batch(1, 3), batch(2, 2, 9)]); // same positions, other commands at position 2
  const head = (e: Executed, i: number): SignedTreeHead => {
    const x = e.batches[i] as Executed['batches'][number];
    return { treeHead: x.record.treeHead, signatures: x.signatures.slice(0, 1) };
  };
  t.deepEqual(compareTreeHeads(head(honest, 0), head(forked, 0)), { kind: 'consistent' });
  const sameSequence = compareTreeHeads(head(honest, 1), head(forked, 1));
  t.like(sameSequence, { kind: 'fork', evidence: { kind: 'same-sequence', cluster: 'ledger-eu' } });
  // The same size at two sequences with different roots.
  const shifted = { ...head(forked, 1), treeHead: { ...head(forked, 1).treeHead, sequence: 5 } };
  t.like(compareTreeHeads(head(honest, 1), shifted), { kind: 'fork', evidence: { kind: 'same-size' } });
  // Sizes differ: decided only with a proof; the honest log's proof exposes the forked head.
  const longer = execute(fx, [batch(1, 3), batch(2, 2, 9), batch(3, 4)]);
  t.like(compareTreeHeads(head(honest, 0), head(longer, 2)), { kind: 'undecided' });
  const ownProof = proveConsistency(honest.log, head(honest, 0).treeHead, head(honest, 1).treeHead);
  t.deepEqual(compareTreeHeads(head(honest, 0), head(honest, 1), ownProof), { kind: 'consistent' });
  const fromLonger = proveConsistency(longer.log, head(longer, 0).treeHead, head(longer, 2).treeHead);
  t.deepEqual(compareTreeHeads(head(honest, 0), head(longer, 2), fromLonger), { kind: 'consistent' }, 'the first batch is shared');
  const honestMid = proveConsistency(honest.log, head(honest, 1).treeHead, head(honest, 1).treeHead);
  t.deepEqual(honestMid.proof, []);
  const crossed = { ...proveConsistency(longer.log, head(longer, 1).treeHead, head(longer, 2).treeHead) };
  t.like(compareTreeHeads(head(honest, 1), head(longer, 2), crossed), { kind: 'fork', evidence: { kind: 'inconsistent' } });
  t.like(compareTreeHeads(head(honest, 1), { ...head(longer, 0), treeHead: { ...head(longer, 0).treeHead, sequence: 9 } }), { kind: 'fork', evidence: { kind: 'out-of-order' } });
  const error = t.throws(() => assertNoFork(head(honest, 1), head(forked, 1)), { instanceOf: ForkError });
  t.is(error?.code, 'FORK');
  t.deepEqual(error?.evidence.first, head(honest, 1));

  // The collector reports a member that signs a different head for a sequence, once, and still completes the honest one.
  const collector = new TreeHeadCollector(fx.trust, { registry });
  const h = honest.batches[1] as Executed['batches'][number];
  const f = forked.batches[1] as Executed['batches'][number];
  t.like(collector.add(h.record.treeHead, h.signatures[0] as TreeHeadSignature), { kind: 'pending', signatures: 1 });
  const fork = collector.add(f.record.treeHead, f.signatures[1] as TreeHeadSignature);
  t.like(fork, { kind: 'fork', evidence: { kind: 'same-sequence' } });
  t.like(collector.add(h.record.treeHead, h.signatures[2] as TreeHeadSignature), { kind: 'pending', signatures: 2 });
  t.like(fork, { accused: [] }, 'before a quorum, two heads do not say which one lies');
  const completed = collector.add(h.record.treeHead, h.signatures[3] as TreeHeadSignature);
  t.like(completed, { kind: 'complete' });
  t.deepEqual(completed.kind === 'complete' ? completed.accused : undefined, [f.signatures[1]?.node], 'the quorum accuses who signed the other head');
  t.like(collector.add(h.record.treeHead, h.signatures[1] as TreeHeadSignature), { kind: 'ignored' });
  const late = collector.add(f.record.treeHead, f.signatures[3] as TreeHeadSignature);
  t.like(late, { kind: 'fork' });
  t.deepEqual(late.kind === 'fork' ? late.accused : undefined, [f.signatures[3]?.node], 'after the quorum, a different head accuses its signer at once');
  t.like(collector.add(f.record.treeHead, { ...(f.signatures[3] as TreeHeadSignature), node: 'r7' }), { kind: 'ignored', reason: 'r7: not a member' });
  t.like(collector.add({ ...f.record.treeHead, cluster: 'other' }, f.signatures[3] as TreeHeadSignature), { kind: 'ignored' });
  t.like(collector.add(h.record.treeHead, h.signatures[0] as TreeHeadSignature), { kind: 'ignored', reason: 'sequence 2 already has its quorum' });
  collector.forget(2);
  t.like(collector.add(h.record.treeHead, h.signatures[0] as TreeHeadSignature), { kind: 'ignored' }, 'forget keeps the sequence it is given');
  collector.forget(3);
  t.like(collector.add(h.record.treeHead, h.signatures[1] as TreeHeadSignature), { kind: 'pending', signatures: 1 }, 'forgotten sequences start afresh');

  // A member that signs two heads for one sequence proves its own equivocation; the second head is not kept.
  const twice = new TreeHeadCollector(fx.trust, { registry });
  t.like(twice.add(h.record.treeHead, h.signatures[0] as TreeHeadSignature), { kind: 'pending', signatures: 1 });
  const equivocation = twice.add(f.record.treeHead, f.signatures[0] as TreeHeadSignature);
  t.like(equivocation, { kind: 'fork', accused: [f.signatures[0]?.node], evidence: { kind: 'same-sequence' } });
  t.deepEqual(
    equivocation.kind === 'fork' ? [equivocation.evidence.first.signatures, equivocation.evidence.second.signatures] : undefined,
    [[h.signatures[0]], [f.signatures[0]]],
    'the two signatures of the one member are the proof',
  );
  const next = twice.add(f.record.treeHead, f.signatures[1] as TreeHeadSignature);
  t.deepEqual(next.kind === 'fork' ? next.evidence.second.signatures : undefined, [f.signatures[1]], 'the other head holds no signature of the member that signed both');
});
