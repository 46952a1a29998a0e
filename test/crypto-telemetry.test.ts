/**
 * Crypto and receipt telemetry against registry/crypto.yaml and the crypto.* / receipt.* metrics
 * of registry/metrics.yaml: spans crypto.sign, crypto.verify, crypto.keygen and
 * crypto.hybrid.breakdown; events crypto.policy.check, crypto.key.rotation and
 * crypto.receipt.generated; the duration, tick and receipt metrics. Pool threads get an in-memory
 * tracer through `workerPreload`; everything run in this process reports to the in-memory SDK
 * registered below, and every span, event and metric point is checked against the registry.
 * Serial: the tests share this process's SDK and count its metric points exactly.
 */
import test, { type ExecutionContext } from 'ava';
import { context, metrics, trace, type Attributes } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, MetricReader, type DataPoint, type Histogram, type MetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { signAsync, verifyBatchTask, type VerifyJob } from '../actors/crypto-pool.js';
import { applyKeyRotation, applyPolicyStep } from '../actors/crypto-telemetry.js';
import { POOL_KEYS, PoolKeyTable } from '../actors/pool-keys.js';
import { ReceiptJournal } from '../actors/receipt-journal.js';
import { ReplicaStore } from '../actors/replica-store.js';
import { Signer, type SignerArgs } from '../actors/signer.js';
import { Verifier } from '../actors/verifier.js';
import { encode, hashBytes, type AppliedEntry } from '../protocols/consensus/index.js';
import { executed, stateAt } from './helpers/executed.js';
import { CryptoError, DEFAULT_KEY_LIFETIME_MS, describeKey, KeyDirectory, KeyManager, MLDSA44_ED25519, SchemeRegistry, SigningKey, type KeyId } from '../protocols/crypto/index.js';
import type { LogContext, SignedTreeHead, TreeHead } from '../protocols/receipts/index.js';
import { Prng } from '../protocols/sim/prng.js';
import { PoolSpans } from './fixtures/actors.js';
import { testSeed } from './helpers/seed.js';
import { startSystem } from './helpers/system.js';
import { undeclaredTelemetry } from './helpers/telemetry.js';
import { tempDir } from './helpers/temp.js';

class TestReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
const reader = new TestReader();
const meterProvider = new MeterProvider({ readers: [reader] });
metrics.setGlobalMeterProvider(meterProvider);

const tracer = trace.getTracer('knhk.test');
const schemes = SchemeRegistry.create();
const T0 = 1_700_000_000_000;
const message = new TextEncoder().encode('commit 7 at view 2');

/** A finished span, as this process's exporter and the pool fixture (otel-preload.ts) both give it. */
interface SpanRecord {
  readonly name: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | null;
  readonly attributes: Attributes;
  /** `SpanStatusCode`: 0 unset, 1 ok, 2 error. */
  readonly status: number;
  readonly events: readonly { readonly name: string; readonly attributes: Attributes }[];
}

function record(span: ReadableSpan): SpanRecord {
  return {
    name: span.name,
    traceId: span.spanContext().traceId,
    spanId: span.spanContext().spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? null,
    attributes: span.attributes,
    status: span.status.code,
    events: span.events.map((e) => ({ name: e.name, attributes: e.attributes ?? {} })),
  };
}

/** Spans finished in this process since the last call. */
function takeSpans(): SpanRecord[] {
  const spans = exporter.getFinishedSpans().map(record);
  exporter.reset();
  return spans;
}

/** The metrics of knhk's crypto and receipt scopes that `from` collects. */
async function cryptoMetrics(from: MetricReader = reader): Promise<MetricData[]> {
  const { resourceMetrics, errors } = await from.collect();
  if (errors.length > 0) throw new Error(`metric collection failed: ${errors.map(String).join('; ')}`);
  return resourceMetrics.scopeMetrics.filter((s) => s.scope.name === 'knhk.crypto' || s.scope.name === 'knhk.receipts').flatMap((s) => s.metrics);
}

/** The point of metric `name` whose attributes include `labels`. */
function point(data: readonly MetricData[], name: string, labels: Attributes): DataPoint<unknown> | undefined {
  const metric = data.find((m) => m.descriptor.name === name);
  const points = (metric?.dataPoints ?? []) as DataPoint<unknown>[];
  return points.find((p) => Object.entries(labels).every(([key, value]) => p.attributes[key] === value));
}

const count = (p: DataPoint<unknown> | undefined): number | undefined => (p?.value as Histogram | undefined)?.count;

/** Spans the tests open themselves (`test.*`) are theirs, not knhk's. */
function ownSpansDropped(spans: readonly SpanRecord[]): SpanRecord[] {
  return spans.filter((span) => !span.name.startsWith('test.'));
}

/** The breakdown spans of `parent`, by component. */
function componentsOf(spans: readonly SpanRecord[], parent: SpanRecord): Map<unknown, SpanRecord> {
  const parts = spans.filter((s) => s.name === 'crypto.hybrid.breakdown' && s.parentSpanId === parent.spanId && s.traceId === parent.traceId);
  return new Map(parts.map((s) => [s.attributes['crypto.algorithm'], s]));
}

/** Checks that `span` states its time, in µs and in ticks of 125 µs. */
function timed(t: ExecutionContext, span: SpanRecord | undefined): void {
  const us = span?.attributes['crypto.duration_us'] as number;
  t.true(us >= 0, `${span?.name} has a duration`);
  t.true(Math.abs((span?.attributes['crypto.chatman_ticks'] as number) - us / 125) <= 1e-9 * us, `${span?.name}: ticks of 125 µs`);
}

test.serial('pool threads: crypto.sign, and the verifier\'s crypto.verify with its policy check, each with one crypto.hybrid.breakdown child per component; a released key fails with KEY_DISPOSED', async (t) => {
  const table = new PoolKeyTable(1);
  t.teardown(() => table.dispose());
  const system = await startSystem(t, {
    cryptoThreads: 1,
    workerPreload: [new URL('./fixtures/otel-preload.js', import.meta.url).href],
    poolShared: { [POOL_KEYS]: table.buffer },
  });
  const scheme = schemes.get('ML-DSA-44+Ed25519');
  using key = SigningKey.generate(scheme, T0);
  const handle = table.register(key);
  const signature = await signAsync(system, handle, message);
  // A window around now: the verifier takes an envelope only while its key is in force.
  const member = { ...describeKey(key, { notBefore: Date.now() - 60_000, notAfter: Date.now() + DEFAULT_KEY_LIFETIME_MS }), epoch: 0, fromSequence: 0 };
  const verifier = await system.spawn(Verifier, { name: 'verifier', args: { cluster: 'test', policy: 'hybrid', members: [member], replicas: ['replica-0'] } });
  t.like(await verifier.ask({ type: 'verify', checks: [{ node: 0, digest: message, signature }] }), { verdicts: [true] });
  table.release(handle);
  await t.throwsAsync(signAsync(system, handle, message));

  const spans = (await system.runTask(PoolSpans, null)) as SpanRecord[];
  const [sign, failed] = spans.filter((s) => s.name === 'crypto.sign');
  const verify = spans.find((s) => s.name === 'crypto.verify');
  if (!sign || !failed || !verify) return t.fail(`spans: ${spans.map((s) => s.name).join(', ')}`);
  for (const [span, operation] of [[sign, 'sign'], [verify, 'verify']] as const) {
    t.like(span.attributes, { 'crypto.algorithm': 'ML-DSA-44+Ed25519', 'crypto.backend': scheme.backend });
    t.true((span.attributes['crypto.duration_us'] as number) > 0);
    timed(t, span);
    const parts = componentsOf(spans, span);
    t.deepEqual([...parts.keys()].sort(), ['Ed25519', 'ML-DSA-44'], `${operation}: one child per component`);
    for (const part of parts.values()) {
      t.is(part.attributes['crypto.operation'], operation);
      timed(t, part);
      if (operation === 'verify') t.is(part.attributes['crypto.verified'], true);
    }
  }
  t.is(verify.attributes['crypto.verified'], true);
  t.deepEqual(verify.events, [
    { name: 'crypto.policy.check', attributes: { 'crypto.policy': 'hybrid', 'crypto.algorithm': 'ML-DSA-44+Ed25519', 'crypto.signature_type': 'hybrid', 'crypto.verified': true } },
  ]);
  t.like(failed, { status: 2, attributes: { 'crypto.algorithm': 'ML-DSA-44+Ed25519', 'crypto.failure_reason': 'KEY_DISPOSED' } });
  t.false('crypto.duration_us' in failed.attributes, 'no duration for a signature that was not made');
  t.deepEqual(undeclaredTelemetry(ownSpansDropped(spans)), []);
});

test.serial('the signer reports generating its key on first start, and every signature with its hybrid components', async (t) => {
  takeSpans();
  const system = await startSystem(t);
  const args: SignerArgs = { cluster: 'test', replica: 'replica', directory: await tempDir(t, 'knhk-signer-'), member: 0, scheme: 'ML-DSA-65+Ed25519', passphrase: 'telemetry', kdfLog2N: 10 };
  const signer = await system.spawn(Signer, { name: 'signer', args });
  const traceId = await tracer.startActiveSpan('test.request', async (root) => {
    await signer.ask({ type: 'sign', digest: hashBytes(message) });
    await signer.ask({ type: 'sign-tree-head', head: { version: 1, cluster: 'test', size: 1, root: hashBytes(message), sequence: 1, view: 0, timestamp: 0, policy: 'hybrid' } });
    root.end();
    return root.spanContext().traceId;
  });
  await system.root.stopChild('signer');
  // Started again over the same directory, it loads the key it sealed: nothing is generated.
  const again = await system.spawn(Signer, { name: 'signer-again', args });
  await again.ask({ type: 'sign', digest: hashBytes(message) });

  const spans = takeSpans();
  const backend = schemes.get('ML-DSA-65+Ed25519').backend;
  const keygens = spans.filter((s) => s.name === 'crypto.keygen');
  t.is(keygens.length, 1, 'one key generated, on the first start only');
  t.like(keygens[0]?.attributes, { 'crypto.algorithm': 'ML-DSA-65+Ed25519', 'crypto.backend': backend });
  timed(t, keygens[0]);
  t.is(spans.filter((s) => s.name === 'crypto.hybrid.breakdown' && s.parentSpanId === keygens[0]?.spanId).length, 0, 'components are reported for sign and verify only');
  const signs = spans.filter((s) => s.name === 'crypto.sign');
  t.is(signs.length, 3);
  const traced = signs.filter((s) => s.traceId === traceId);
  t.is(traced.length, 2, 'signatures are children of the request that asked for them');
  for (const sign of signs) {
    t.like(sign.attributes, { 'crypto.algorithm': 'ML-DSA-65+Ed25519', 'crypto.backend': backend });
    timed(t, sign);
    const parts = componentsOf(spans, sign);
    t.deepEqual([...parts.keys()].sort(), ['Ed25519', 'ML-DSA-65']);
    for (const part of parts.values()) t.is(part.attributes['crypto.operation'], 'sign');
  }

  const data = await cryptoMetrics();
  const labels = { 'crypto.algorithm': 'ML-DSA-65+Ed25519', 'crypto.backend': backend };
  t.is(count(point(data, 'crypto.sign.duration', labels)), 3);
  t.is(count(point(data, 'crypto.chatman.ticks', { ...labels, 'crypto.operation': 'sign' })), 3);
  t.is(count(point(data, 'crypto.chatman.ticks', { ...labels, 'crypto.operation': 'keygen' })), 1);
  t.deepEqual(undeclaredTelemetry(ownSpansDropped(spans), data), []);
});

test.serial('verification under the policy records crypto.policy.check; a forged signature or a refused scheme is crypto.verified=false with its reason', async (t) => {
  const prng = new Prng(testSeed(t));
  takeSpans();
  const hybrid = schemes.get('ML-DSA-44+Ed25519');
  const ed25519 = schemes.get('Ed25519');
  using key = SigningKey.generate(hybrid, T0);
  using classical = SigningKey.generate(ed25519, T0);
  const signature = key.sign(message);
  const mlDsaBytes = MLDSA44_ED25519.mlDsa.spec.signatureBytes;
  const flipped = (at: number): Uint8Array => signature.map((byte, i) => (i === at ? byte ^ (1 + prng.int(255)) : byte));
  const job = (signed: Uint8Array): VerifyJob => ({ scheme: hybrid.name, publicKey: key.publicKey, message, signature: signed, policy: 'hybrid' });
  const jobs: VerifyJob[] = [
    job(signature),
    job(flipped(mlDsaBytes + prng.int(ed25519.signatureBytes))),
    job(flipped(prng.int(mlDsaBytes))),
    { scheme: ed25519.name, publicKey: classical.publicKey, message, signature: classical.sign(message), policy: 'hybrid' },
    { scheme: hybrid.name, publicKey: key.publicKey, message, signature },
  ];
  const verdicts = tracer.startActiveSpan('test.verify', (root) => {
    const answer = verifyBatchTask.run(jobs);
    root.end();
    return answer;
  });
  t.deepEqual(verdicts, [true, false, false, false, true]);

  const spans = takeSpans();
  const verifies = spans.filter((s) => s.name === 'crypto.verify');
  t.is(verifies.length, jobs.length);
  const [valid, forgedEd, forgedMl, refused, unpoliced] = verifies as [SpanRecord, SpanRecord, SpanRecord, SpanRecord, SpanRecord];
  const check = (span: SpanRecord): Attributes | undefined => span.events.find((e) => e.name === 'crypto.policy.check')?.attributes;

  t.like(valid.attributes, { 'crypto.verified': true });
  t.false('crypto.failure_reason' in valid.attributes);
  t.deepEqual(check(valid), { 'crypto.policy': 'hybrid', 'crypto.algorithm': 'ML-DSA-44+Ed25519', 'crypto.signature_type': 'hybrid', 'crypto.verified': true });

  for (const forged of [forgedEd, forgedMl]) {
    t.like(forged.attributes, { 'crypto.verified': false, 'crypto.failure_reason': 'SIGNATURE_INVALID' });
    t.is(forged.status, 0, 'a negative verdict is an answer, not an error');
    t.like(check(forged), { 'crypto.verified': false, 'crypto.failure_reason': 'SIGNATURE_INVALID' });
  }
  // Ed25519 is checked first, and a composite stops at the first component that fails.
  const edFailed = componentsOf(spans, forgedEd);
  t.deepEqual([...edFailed.keys()], ['Ed25519']);
  t.is(edFailed.get('Ed25519')?.attributes['crypto.verified'], false);
  const mlFailed = componentsOf(spans, forgedMl);
  t.is(mlFailed.get('Ed25519')?.attributes['crypto.verified'], true);
  t.is(mlFailed.get('ML-DSA-44')?.attributes['crypto.verified'], false);

  t.like(refused.attributes, { 'crypto.algorithm': 'Ed25519', 'crypto.verified': false, 'crypto.failure_reason': 'SCHEME_NOT_ALLOWED' });
  t.deepEqual(check(refused), {
    'crypto.policy': 'hybrid',
    'crypto.algorithm': 'Ed25519',
    'crypto.signature_type': 'classical',
    'crypto.verified': false,
    'crypto.failure_reason': 'SCHEME_NOT_ALLOWED',
  });
  t.is(componentsOf(spans, refused).size, 0);

  t.like(unpoliced.attributes, { 'crypto.verified': true });
  t.deepEqual(unpoliced.events, [], 'no policy named, no policy check');

  const data = await cryptoMetrics();
  const labels = { 'crypto.algorithm': hybrid.name, 'crypto.backend': hybrid.backend };
  t.is(count(point(data, 'crypto.verify.duration', labels)), 4, 'every hybrid verification, valid or not');
  t.is(count(point(data, 'crypto.chatman.ticks', { ...labels, 'crypto.operation': 'verify' })), 4);
  t.deepEqual(undeclaredTelemetry(ownSpansDropped(spans), data), []);
});

test.serial('a committed key rotation applied with applyKeyRotation records crypto.key.rotation on the span applying it', (t) => {
  takeSpans();
  const scheme = schemes.get('Ed25519');
  using manager = new KeyManager({ cluster: 'test', member: 2, schemes, key: SigningKey.generate(scheme, T0) });
  const previous = manager.keyId;
  const cert = manager.propose(T0 + 1000, schemes.get('ML-DSA-44'));
  tracer.startActiveSpan('test.apply', (span) => {
    applyKeyRotation(manager, cert, 40, T0 + 2000);
    t.throws(() => applyKeyRotation(manager, cert, 41, T0 + 3000), { instanceOf: CryptoError }, 'applied once only');
    span.end();
  });
  t.is(manager.keyId, cert.next.keyId);
  const spans = takeSpans();
  const applying = spans.find((s) => s.name === 'test.apply');
  t.deepEqual(applying?.events, [
    {
      name: 'crypto.key.rotation',
      attributes: { 'consensus.node_id': 2, 'crypto.key.previous_id': previous, 'crypto.key.id': cert.next.keyId, 'crypto.algorithm': 'ML-DSA-44', 'consensus.sequence': 40 },
    },
  ]);
  t.deepEqual(undeclaredTelemetry(ownSpansDropped(spans)), []);
});

test.serial("a committed policy step applied with applyPolicyStep records crypto.key.rotation for every member's new key; a refused one records nothing", (t) => {
  takeSpans();
  const managers = [0, 1, 2, 3].map((member) => new KeyManager({ cluster: 'test', member, schemes, key: SigningKey.generate(schemes.get('Ed25519'), T0 + member) }));
  t.teardown(() => managers.forEach((manager) => manager.dispose()));
  const directory = new KeyDirectory(schemes, { cluster: 'test' });
  managers.forEach((manager, member) => directory.enroll(member, manager.directory.current(member).descriptor));
  const rotations = managers.map((manager) => manager.propose(T0 + 1000, schemes.get('ML-DSA-65+Ed25519')));
  tracer.startActiveSpan('test.step', (span) => {
    t.throws(() => applyPolicyStep(directory, schemes, 'classical', { from: 'classical', to: 'quantum', rotations }, 50, T0 + 2000), { instanceOf: CryptoError, code: 'POLICY_TRANSITION_INVALID' });
    applyPolicyStep(directory, schemes, 'classical', { from: 'classical', to: 'hybrid', rotations }, 50, T0 + 2000);
    span.end();
  });
  const spans = takeSpans();
  t.deepEqual(
    spans.find((s) => s.name === 'test.step')?.events,
    rotations.map((cert) => ({
      name: 'crypto.key.rotation',
      attributes: { 'consensus.node_id': cert.member, 'crypto.key.previous_id': cert.old.keyId, 'crypto.key.id': cert.next.keyId, 'crypto.algorithm': 'ML-DSA-65+Ed25519', 'consensus.sequence': 50 },
    })),
  );
  t.deepEqual(undeclaredTelemetry(ownSpansDropped(spans)), []);
});

const logContext: LogContext = { cluster: 'telemetry', protocol: 'hotstuff', policy: 'hybrid' };

const entry = (position: number): AppliedEntry => executed(position, 4);

async function replicaStore(t: ExecutionContext, nodeId: number): Promise<ReplicaStore> {
  const store = await ReplicaStore.open(await tempDir(t, 'knhk-receipts-'), { clusterId: logContext.cluster, nodeId, protocol: logContext.protocol, n: 4, stateMachine: 'knhk/kv' });
  t.teardown(() => store.close());
  return store;
}

test.serial('the receipt journal reports its log size from the store and per position, and each receipt it assembles', async (t) => {
  takeSpans();
  const nodeId = 3;
  const labels = { 'consensus.algorithm': 'hotstuff', 'consensus.node_id': nodeId };
  const entries = async (from: MetricReader = reader): Promise<unknown> => point(await cryptoMetrics(from), 'receipt.log.entries', labels)?.value;
  const store = await replicaStore(t, nodeId);
  const heads: TreeHead[] = [];
  const journal = await ReceiptJournal.open(store, logContext, (head) => heads.push(head), { nodeId });
  t.is(await entries(), 0, 'an empty log, reported on open');
  for (let position = 1; position <= 3; position++) await journal.append(entry(position));
  t.is(await entries(), 6);

  const head = heads[2] as TreeHead;
  // Receipts take the collector's signatures as given: these need only name their nodes.
  const by = (node: string) => ({ node, keyId: '00'.repeat(32) as KeyId, scheme: 'ML-DSA-65+Ed25519' as const, signature: new Uint8Array(8) });
  const signed: SignedTreeHead = { treeHead: head, signatures: [by('0'), by('1'), by('1'), by('2')] };
  const assembled = tracer.startActiveSpan('test.receipt-request', (span) => {
    const receipts = [journal.receipt('bob', 2, signed), ...(journal.receiptsAt(3, signed) ?? [])];
    span.end();
    return receipts;
  });
  t.is(assembled.filter((r) => r !== undefined).length, 3);
  const request = takeSpans().find((s) => s.name === 'test.receipt-request');
  t.deepEqual(
    request?.events.map((e) => e.attributes),
    [2, 3, 3].map((sequence) => ({ ...labels, 'consensus.view': 4, 'consensus.sequence': sequence, 'crypto.policy': 'hybrid', 'receipt.signature_count': 3 })),
  );
  t.true(request?.events.every((e) => e.name === 'crypto.receipt.generated'));
  const data = await cryptoMetrics();
  t.is(point(data, 'receipt.generated', labels)?.value, 3);
  t.deepEqual(undeclaredTelemetry(ownSpansDropped(request === undefined ? [] : [request]), data), []);

  const reopened = await ReceiptJournal.open(store, logContext, () => undefined, { nodeId });
  t.is(reopened.size, 6);
  t.is(await entries(), 6, 'opened again in this process: the log size, not counted twice');

  // A replica that jumped to position 3 by state transfer counts what it fills in from a peer.
  const lagging = await ReceiptJournal.open(await replicaStore(t, 2), logContext, () => undefined, { nodeId: 2 });
  lagging.skipTo(3, stateAt(3));
  t.true(await lagging.fill(encode(journal.bodies(1, 3))));
  t.is(point(await cryptoMetrics(), 'receipt.log.entries', { ...labels, 'consensus.node_id': 2 })?.value, 6);

  // A restarted replica runs in a new thread, with an SDK of its own: it reports the size from its store.
  const restartedReader = new TestReader();
  const restarted = new MeterProvider({ readers: [restartedReader] });
  metrics.disable();
  metrics.setGlobalMeterProvider(restarted);
  t.teardown(async () => {
    metrics.disable();
    metrics.setGlobalMeterProvider(meterProvider);
    await restarted.shutdown();
  });
  await ReceiptJournal.open(store, logContext, () => undefined, { nodeId });
  t.is(await entries(restartedReader), 6);
  await reopened.append(entry(4));
  t.is(await entries(restartedReader), 8);
});
