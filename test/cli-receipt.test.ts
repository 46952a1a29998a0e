/**
 * `knhk receipt verify` and `knhk log verify` end to end: files written by this process, checked
 * by a fresh `node dist/cli/knhk.js` that has nothing but those files; exit codes and messages.
 * And `npm run bench -- receipts --json` (quick) prints one JSON object with its metrics.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { command } from '../protocols/consensus/command.js';
import { SchemeRegistry, SigningKey } from '../protocols/crypto/index.js';
import {
  MerkleLog,
  appendBatch,
  buildReceipt,
  consistencyProofToJson,
  proveConsistency,
  receiptToJson,
  signTreeHead,
  treeHeadToJson,
  trustKeyOf,
  trustToJson,
  type SignedTreeHead,
  type Trust,
} from '../protocols/receipts/index.js';

const run = promisify(execFile);
const script = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const knhk = script('../cli/knhk.js');
const dir = mkdtempSync(join(tmpdir(), 'knhk-receipt-'));
const file = (name: string, value: unknown): string => {
  const path = join(dir, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  return path;
};

// A cluster of four with Ed25519 keys: two batches, their signed tree heads, a receipt, a proof.
const ed25519 = SchemeRegistry.create().get('Ed25519');
const keys = [0, 1, 2, 3].map((i) => SigningKey.generate(ed25519, 1_700_000_000_000 + i));
const trust: Trust = { version: 1, cluster: 'cli-demo', n: 4, f: 1, policy: 'classical', members: keys.map((key, i) => ({ node: `n${i}`, keys: [trustKeyOf(key, 1)] })) };
const log = new MerkleLog();
const context = { cluster: 'cli-demo', protocol: 'raft', policy: 'classical' } as const;
const digest = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const records = [1, 2].map((position) =>
  appendBatch(log, { position, view: 1, timestamp: 1_700_000_100_000 + position, commands: [command('alice', position, Uint8Array.of(position)), command('bob', position, Uint8Array.of(9))], stateHashBefore: digest(position - 1), stateHash: digest(position) }, context),
);
const signed = records.map((r): SignedTreeHead => ({ treeHead: r.treeHead, signatures: keys.slice(0, 3).map((key, i) => signTreeHead(r.treeHead, `n${i}`, key)) }));
const [first, second] = signed as [SignedTreeHead, SignedTreeHead];
const receipt = receiptToJson(buildReceipt(records[1]?.bodies[0] as Parameters<typeof buildReceipt>[0], log, second));
const paths = {
  trust: file('trust.json', trustToJson(trust)),
  otherTrust: file('other-trust.json', trustToJson({ ...trust, cluster: 'elsewhere' })),
  receipt: file('receipt.json', receipt),
  tampered: file('tampered.json', { ...receipt, signatures: receipt.signatures.map((s, i) => (i === 1 ? { ...s, signature: `${s.signature[0] === 'A' ? 'B' : 'A'}${s.signature.slice(1)}` } : s)) }),
  garbled: file('garbled.json', '{"body": '),
  sth1: file('sth1.json', treeHeadToJson(first)),
  sth2: file('sth2.json', treeHeadToJson(second)),
  thin: file('thin.json', treeHeadToJson({ ...second, signatures: second.signatures.slice(0, 2) })),
  proof: file('proof.json', consistencyProofToJson(proveConsistency(log, first.treeHead, second.treeHead))),
  badProof: file('bad-proof.json', consistencyProofToJson({ ...proveConsistency(log, first.treeHead, second.treeHead), proof: [digest(7)] })),
  notTrust: file('not-trust.json', { cluster: 'cli-demo' }),
};

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(...args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await run(process.execPath, [knhk, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test('knhk receipt verify: a valid receipt exits 0, in a process that has only the trust file', async (t) => {
  const plain = await cli('receipt', 'verify', paths.receipt, '--trust', paths.trust);
  t.is(plain.code, 0, plain.stderr);
  t.regex(plain.stdout, /^valid: receipt of cluster cli-demo, command 0 of sequence 2 \(view 1\), leaf 2 of 4, signed by n0, n1, n2 \(3 needed\)\n$/);
  const json = await cli('receipt', 'verify', paths.receipt, '--trust', paths.trust, '--json');
  t.is(json.code, 0);
  t.deepEqual(JSON.parse(json.stdout), { valid: true, cluster: 'cli-demo', sequence: 2, view: 1, leafIndex: 2, treeSize: 4, signers: ['n0', 'n1', 'n2'], quorum: 3 });
});

test('knhk receipt verify: an invalid receipt exits 1 and names the failed check', async (t) => {
  const tampered = await cli('receipt', 'verify', paths.tampered, '--trust', paths.trust);
  t.is(tampered.code, 1);
  t.regex(tampered.stdout, /^invalid: quorum: 2 valid signatures of distinct members, 3 needed \(not counted: n1: the signature does not verify\)/);
  const cluster = await cli('receipt', 'verify', paths.receipt, '--trust', paths.otherTrust, '--json');
  t.is(cluster.code, 1);
  t.like(JSON.parse(cluster.stdout), { valid: false, check: 'cluster' });
  const garbled = await cli('receipt', 'verify', paths.garbled, '--trust', paths.trust);
  t.is(garbled.code, 1);
  t.regex(garbled.stdout, /^invalid: schema: receipt .* is not JSON/);
  const notReceipt = await cli('receipt', 'verify', paths.sth1, '--trust', paths.trust);
  t.is(notReceipt.code, 1);
  t.regex(notReceipt.stdout, /^invalid: schema: \$\.body: expected object/);
});

test('knhk receipt: bad arguments and unreadable files exit 2', async (t) => {
  for (const args of [
    ['receipt', 'verify', paths.receipt],
    ['receipt', 'check', paths.receipt, '--trust', paths.trust],
    ['receipt', 'verify', '--trust', paths.trust],
    ['receipt', 'verify', paths.receipt, '--trust', paths.trust, '--bogus'],
  ]) {
    const result = await cli(...args);
    t.is(result.code, 2, args.join(' '));
    t.regex(result.stderr, /usage: knhk receipt verify/);
  }
  const missing = await cli('receipt', 'verify', join(dir, 'nope.json'), '--trust', paths.trust);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /cannot read the receipt .*nope\.json/);
  const badTrust = await cli('receipt', 'verify', paths.receipt, '--trust', paths.notTrust);
  t.is(badTrust.code, 2);
  t.regex(badTrust.stderr, /the trust file .* is not valid/);
  const help = await cli('receipt', '--help');
  t.is(help.code, 0);
  t.regex(help.stdout, /usage: knhk receipt verify/);
});

test('knhk log verify: consistent tree heads exit 0; an inconsistent proof, a fork or a thin quorum exit 1', async (t) => {
  const ok = await cli('log', 'verify', '--from', paths.sth1, '--to', paths.sth2, '--proof', paths.proof, '--trust', paths.trust);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /^consistent: cluster cli-demo, the log of 4 leaves \(sequence 2\) extends the log of 2 leaves \(sequence 1\); both tree heads signed by a quorum\n$/);
  const unsigned = await cli('log', 'verify', '--from', paths.sth1, '--to', paths.sth2, '--proof', paths.proof, '--json');
  t.is(unsigned.code, 0);
  t.like(JSON.parse(unsigned.stdout), { valid: true, firstSize: 2, secondSize: 4, signaturesChecked: false });
  const same = await cli('log', 'verify', '--from', paths.sth2, '--to', paths.sth2);
  t.is(same.code, 0, 'equal tree heads need no proof');

  const bad = await cli('log', 'verify', '--from', paths.sth1, '--to', paths.sth2, '--proof', paths.badProof);
  t.is(bad.code, 1);
  t.regex(bad.stdout, /^invalid: consistency: /);
  const noProof = await cli('log', 'verify', '--from', paths.sth1, '--to', paths.sth2);
  t.is(noProof.code, 1);
  t.regex(noProof.stdout, /^invalid: consistency: the proof is from size 2 to 4|^invalid: consistency: the tree of 4 leaves/);
  const backwards = await cli('log', 'verify', '--from', paths.sth2, '--to', paths.sth1, '--proof', paths.proof);
  t.is(backwards.code, 1);
  const thin = await cli('log', 'verify', '--from', paths.sth1, '--to', paths.thin, '--proof', paths.proof, '--trust', paths.trust);
  t.is(thin.code, 1);
  t.regex(thin.stdout, /^invalid: quorum: second tree head: 2 valid signatures/);
  const garbled = await cli('log', 'verify', '--from', paths.garbled, '--to', paths.sth2);
  t.is(garbled.code, 1);
  t.regex(garbled.stdout, /^invalid: schema: first tree head .* is not JSON/);
});

test('knhk log: bad arguments and unreadable files exit 2', async (t) => {
  for (const args of [['log', 'verify', '--from', paths.sth1], ['log', 'check', '--from', paths.sth1, '--to', paths.sth2], ['log', 'verify', '--from', paths.sth1, '--to', paths.sth2, '--nope']]) {
    const result = await cli(...args);
    t.is(result.code, 2, args.join(' '));
    t.regex(result.stderr, /usage: knhk log verify/);
  }
  const missing = await cli('log', 'verify', '--from', paths.sth1, '--to', paths.sth2, '--proof', join(dir, 'absent.json'));
  t.is(missing.code, 2);
  t.regex(missing.stderr, /cannot read the consistency proof/);
});

test('bench receipts --json prints exactly one JSON object with generation, verification and proof-size metrics', async (t) => {
  const { stdout } = await run(process.execPath, [script('../bench/run.js'), 'receipts', '--json', '--quick'], { timeout: 300_000 });
  const lines = stdout.trim().split('\n');
  t.is(lines.length, 1, 'nothing but the JSON object on stdout');
  const result = JSON.parse(lines[0] as string) as { bench: string; metrics: Record<string, { value: number; unit: string }> };
  t.is(result.bench, 'receipts');
  for (const key of ['generate_classical_b1_us_per_command', 'generate_hybrid_b64_us_per_command', 'verify_classical_us_p50', 'verify_hybrid_us_p50', 'inclusion_proof_hashes_1e3', 'inclusion_proof_bytes_1e4', 'consistency_proof_hashes_1e4', 'receipt_json_bytes_classical']) {
    t.true(Number.isFinite(result.metrics[key]?.value) && (result.metrics[key]?.value ?? 0) > 0, key);
  }
  t.is(result.metrics.inclusion_proof_hashes_1e3?.value, 10);
});
