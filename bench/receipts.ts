/**
 * The receipts benchmark: what a receipt costs per committed command when one tree head is signed
 * per batch of B commands (classical Ed25519 and hybrid ML-DSA-65+Ed25519, for several B), what a
 * receipt costs to verify offline, and how proofs grow with the log (10^3 to 10^6 leaves).
 *
 * Generation is split the way a cluster spends it: each replica appends the batch's leaves and
 * signs one tree head (its own work, paid on every replica); the collector verifies a quorum of
 * signatures once per batch and builds one receipt per command (inclusion proof, JSON form).
 */
import { hashBytes } from '../protocols/consensus/codec.js';
import { command } from '../protocols/consensus/command.js';
import { SchemeRegistry, SigningKey, type SchemeName, type SignaturePolicy } from '../protocols/crypto/index.js';
import {
  MerkleLog,
  appendBatch,
  buildReceipt,
  leafHash,
  receiptToJson,
  signTreeHead,
  treeHeadSignatureProblem,
  trustKeyOf,
  trustQuorum,
  verifyInclusion,
  verifyReceipt,
  type ExecutedBatch,
  type Receipt,
  type Trust,
} from '../protocols/receipts/index.js';
import type { BenchResult, Metric } from './report.js';
import { percentile, sample } from './stats.js';

const registry = SchemeRegistry.create();
const CREATED = 1_700_000_000_000;

interface Cluster {
  readonly trust: Trust;
  readonly keys: readonly SigningKey[];
  readonly policy: SignaturePolicy;
}

function cluster(scheme: SchemeName, policy: SignaturePolicy): Cluster {
  const keys = [0, 1, 2, 3].map((i) => SigningKey.generate(registry.get(scheme), CREATED + i));
  const trust: Trust = { version: 1, cluster: 'bench', n: 4, f: 1, policy, members: keys.map((key, i) => ({ node: `r${i}`, keys: [trustKeyOf(key, 0)] })) };
  return { trust, keys, policy };
}

function batchAt(position: number, size: number): ExecutedBatch {
  return {
    position,
    view: 1,
    timestamp: CREATED + position,
    commands: Array.from({ length: size }, (_, i) => command(`client-${i % 16}`, position * 4096 + i, new Uint8Array(64).fill(i & 0xff))),
    stateHashBefore: hashBytes(Uint8Array.of(position & 0xff, 0)),
    stateHash: hashBytes(Uint8Array.of(position & 0xff, 1)),
  };
}

/** Leaf hashes of a synthetic log, produced on the fly (a million of them would be 100 MB as objects). */
function* syntheticLeaves(count: number): Generator<Uint8Array> {
  const leaf = new Uint8Array(8);
  const view = new DataView(leaf.buffer);
  for (let i = 0; i < count; i++) {
    view.setFloat64(0, i);
    yield leafHash(leaf);
  }
}

interface Generation {
  /** µs per command: append the batch and sign its tree head. */
  readonly replica: number;
  /** µs per command: verify a quorum of signatures, build the receipts and their JSON. */
  readonly collector: number;
  /** µs per batch: `appendBatch` alone, the synchronous part of a replica's work (signing goes to the pool). */
  readonly append: number;
}

/** Median µs per command of the replica's and the collector's work for batches of `size` commands. */
function generation(c: Cluster, size: number, budgetMs: number): Generation {
  const log = MerkleLog.fromLeafHashes(syntheticLeaves(10_000));
  const context = { cluster: 'bench', protocol: 'pbft', policy: c.policy } as const;
  const quorum = trustQuorum(c.trust);
  const replica: number[] = [];
  const collector: number[] = [];
  const append: number[] = [];
  let position = 1;
  const started = performance.now();
  while (replica.length < 3 || (replica.length < 200 && performance.now() - started < budgetMs)) {
    const batch = batchAt(position++, size);
    const t0 = performance.now();
    const record = appendBatch(log, batch, context);
    append.push(performance.now() - t0);
    const own = signTreeHead(record.treeHead, 'r0', c.keys[0] as SigningKey);
    const t1 = performance.now();
    // The other members' signatures arrive from their replicas; signing them is their own replica cost.
    const signatures = [own, ...c.keys.slice(1, quorum).map((key, i) => signTreeHead(record.treeHead, `r${i + 1}`, key))];
    const t2 = performance.now();
    for (const s of signatures) if (treeHeadSignatureProblem(record.treeHead, s, c.trust, registry) !== undefined) throw new Error('bench signature rejected');
    for (const body of record.bodies) JSON.stringify(receiptToJson(buildReceipt(body, log, { treeHead: record.treeHead, signatures })));
    const t3 = performance.now();
    replica.push((t1 - t0) / size);
    collector.push((t3 - t2) / size);
  }
  return { replica: percentile(replica, 50) * 1000, collector: percentile(collector, 50) * 1000, append: percentile(append, 50) * 1000 };
}

function receiptFor(c: Cluster): Receipt {
  const log = MerkleLog.fromLeafHashes(syntheticLeaves(1000));
  const record = appendBatch(log, batchAt(1, 8), { cluster: 'bench', protocol: 'pbft', policy: c.policy });
  const signatures = c.keys.slice(0, trustQuorum(c.trust)).map((key, i) => signTreeHead(record.treeHead, `r${i}`, key));
  return buildReceipt(record.bodies[3] as Receipt['body'], log, { treeHead: record.treeHead, signatures });
}

/** Builds a log of 10^exponent synthetic leaves (each hashed, then appended) and measures its proofs. */
function proofSizes(metrics: Record<string, Metric>, exponent: number, budgetMs: number): void {
  const n = 10 ** exponent;
  const t0 = performance.now();
  const log = MerkleLog.fromLeafHashes(syntheticLeaves(n));
  metrics[`log_build_ms_1e${exponent}`] = { value: performance.now() - t0, unit: 'ms' };
  const root = log.root();
  const deepest = log.inclusionProof(0);
  metrics[`inclusion_proof_hashes_1e${exponent}`] = { value: deepest.length, unit: '{hash}' };
  metrics[`inclusion_proof_bytes_1e${exponent}`] = { value: deepest.length * 32, unit: 'By' };
  const consistency = log.consistencyProof(Math.floor(n / 2) + 3);
  metrics[`consistency_proof_hashes_1e${exponent}`] = { value: consistency.length, unit: '{hash}' };
  metrics[`consistency_proof_bytes_1e${exponent}`] = { value: consistency.length * 32, unit: 'By' };
  let i = 0;
  const indices = (): number => (i = (i * 7919 + 104_729) % n);
  metrics[`inclusion_proof_generate_us_p50_1e${exponent}`] = { value: percentile(sample(() => log.inclusionProof(indices()), { budgetMs }), 50) * 1000, unit: 'us' };
  metrics[`consistency_proof_generate_us_p50_1e${exponent}`] = { value: percentile(sample(() => log.consistencyProof(1 + indices()), { budgetMs }), 50) * 1000, unit: 'us' };
  const leaf = log.leafHash(n - 1);
  const proof = log.inclusionProof(n - 1);
  metrics[`inclusion_proof_verify_us_p50_1e${exponent}`] = { value: percentile(sample(() => verifyInclusion(n - 1, n, leaf, proof, root), { budgetMs }), 50) * 1000, unit: 'us' };
  const extra = new Uint8Array(32);
  metrics[`append_and_root_us_p50_1e${exponent}`] = { value: percentile(sample(() => (log.appendLeafHashes([extra]), log.root()), { budgetMs }), 50) * 1000, unit: 'us' };
}

/** Runs the receipts benchmark; `quick` shortens it (and stops at 10^4 leaves) for smoke tests. */
export async function receiptsBench(options: { quick?: boolean } = {}): Promise<BenchResult> {
  const budgetMs = options.quick ? 30 : 600;
  const metrics: Record<string, Metric> = {};
  const clusters = { classical: cluster('Ed25519', 'classical'), hybrid: cluster('ML-DSA-65+Ed25519', 'hybrid') } as const;
  for (const [policy, c] of Object.entries(clusters)) {
    for (const size of options.quick ? [1, 64] : [1, 16, 64, 256]) {
      const g = generation(c, size, budgetMs);
      metrics[`generate_${policy}_b${size}_us_per_command`] = { value: g.replica + g.collector, unit: 'us' };
      metrics[`generate_${policy}_b${size}_replica_us_per_command`] = { value: g.replica, unit: 'us' };
      metrics[`generate_${policy}_b${size}_collector_us_per_command`] = { value: g.collector, unit: 'us' };
      if (policy === 'classical') metrics[`append_batch_b${size}_us`] = { value: g.append, unit: 'us' };
    }
    const receipt = receiptFor(c);
    const json = JSON.parse(JSON.stringify(receiptToJson(receipt))) as unknown;
    if (!verifyReceipt(json, c.trust, registry).ok) throw new Error('bench receipt does not verify');
    const times = sample(() => verifyReceipt(json, c.trust, registry), { budgetMs });
    metrics[`verify_${policy}_us_p50`] = { value: percentile(times, 50) * 1000, unit: 'us' };
    metrics[`verify_${policy}_us_p99`] = { value: percentile(times, 99) * 1000, unit: 'us' };
    metrics[`receipt_json_bytes_${policy}`] = { value: JSON.stringify(json).length, unit: 'By' };
  }
  for (const exponent of options.quick ? [3, 4] : [3, 4, 5, 6]) proofSizes(metrics, exponent, budgetMs);
  return { bench: 'receipts', metrics };
}
