/**
 * Telemetry of signatures, signature policies, keys and receipts, as registry/crypto.yaml and the
 * `crypto.*` and `receipt.*` metrics of registry/metrics.yaml declare it. The signature layer stays
 * pure; the actors and pool tasks that run it report it through the functions here. With no SDK
 * registered every span is non-recording and every instrument a no-op: attributes and events are
 * built only for a recording span, and per-scheme metric attributes are built once.
 */
import { context, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import {
  applyPolicyMigration,
  CryptoError,
  SchemeRegistry,
  type BackendChoice,
  type ComponentObserver,
  type CryptoErrorCode,
  type KeyDirectory,
  type KeyRecord,
  type PolicyMigration,
  type RotationCertificate,
  type SchemeResolver,
  type SignaturePolicy,
  type SignatureScheme,
} from '../protocols/crypto/index.js';
import type { ConsensusAlgorithm } from '../protocols/consensus/index.js';
import type { Receipt } from '../protocols/receipts/index.js';
import { INSTRUMENTED, instrumentsOf, TICK_MS, tracerOf } from '../runtime/index.js';

/** Instrumentation scope of signatures, keys and their policy. */
export const CRYPTO_SCOPE = 'knhk.crypto';
const RECEIPT_SCOPE = 'knhk.receipts';
const tracer = tracerOf(CRYPTO_SCOPE);

/** A signature operation, as `crypto.operation` names it. */
type CryptoOperation = 'sign' | 'verify' | 'keygen';

const cryptoInstruments = instrumentsOf(CRYPTO_SCOPE, (meter) => ({
  duration: {
    sign: meter.createHistogram('crypto.sign.duration', { description: 'Time of one signature.', unit: 'us' }),
    verify: meter.createHistogram('crypto.verify.duration', { description: 'Time of one verification.', unit: 'us' }),
  },
  ticks: meter.createHistogram('crypto.chatman.ticks', { description: 'Time of one crypto call in ticks of 125 µs (budget 8 ticks).', unit: '{tick}' }),
}));

/** The metric attributes of one scheme: made once per scheme, since a hot path records them on every call. */
interface SchemeLabels {
  readonly scheme: Attributes;
  readonly ticks: Readonly<Record<CryptoOperation, Attributes>>;
}

const labels = new WeakMap<SignatureScheme, SchemeLabels>();

function labelsOf(scheme: SignatureScheme): SchemeLabels {
  let found = labels.get(scheme);
  if (found === undefined) {
    const base = { 'crypto.algorithm': scheme.name, 'crypto.backend': scheme.backend };
    const ticks = (operation: CryptoOperation): Attributes => ({ ...base, 'crypto.operation': operation });
    found = { scheme: base, ticks: { sign: ticks('sign'), verify: ticks('verify'), keygen: ticks('keygen') } };
    labels.set(scheme, found);
  }
  return found;
}

/**
 * The recording `crypto.sign` / `crypto.verify` span whose operation is running, where component
 * spans belong. A variable rather than the active context: operations are synchronous, and pool
 * threads have no context manager that would carry one.
 */
let operationSpan: Span | undefined;

/** `crypto.failure_reason`: the `CryptoError` code when there is one, otherwise the message. */
function reasonOf(error: unknown): string {
  if (error instanceof CryptoError) return error.code;
  return error instanceof Error ? error.message : String(error);
}

const ticksOf = (us: number): number => us / 1000 / TICK_MS;

/**
 * Runs the synchronous `run` as one `operation` of `scheme` inside its span, records its time, and
 * lets `annotate` add to a recording span.
 */
function observe<T>(operation: CryptoOperation, scheme: SignatureScheme, run: () => T, annotate?: (span: Span, result: T) => void): T {
  if (!INSTRUMENTED) return run();
  const span = tracer().startSpan(`crypto.${operation}`);
  const recording = span.isRecording();
  const { scheme: attributes, ticks } = labelsOf(scheme);
  const outer = operationSpan;
  operationSpan = recording && operation !== 'keygen' ? span : undefined;
  const t0 = performance.now();
  let result: T;
  try {
    result = run();
  } catch (error) {
    if (recording) {
      span.setAttributes({ ...attributes, 'crypto.failure_reason': reasonOf(error) });
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
    throw error;
  } finally {
    operationSpan = outer;
  }
  const us = (performance.now() - t0) * 1000;
  const instruments = cryptoInstruments();
  if (operation !== 'keygen') instruments.duration[operation].record(us, attributes);
  instruments.ticks.record(ticksOf(us), ticks[operation]);
  if (recording) {
    span.setAttributes({ ...attributes, 'crypto.duration_us': us, 'crypto.chatman_ticks': ticksOf(us) });
    annotate?.(span, result);
  }
  span.end();
  return result;
}

/**
 * Runs one signature (`crypto.sign`) or key generation (`crypto.keygen`) of `scheme`, computed by
 * `run`, inside its span, and records its time. A throw ends the span with status error and
 * `crypto.failure_reason`, and is rethrown.
 */
export function measured<T>(operation: 'sign' | 'keygen', scheme: SignatureScheme, run: () => T): T {
  return observe(operation, scheme, run);
}

/** A verification's outcome: valid, or not and why (the `CryptoError` code, as `verifyUnderPolicy` would throw it). */
export type Verdict = { readonly verified: true } | { readonly verified: false; readonly failure: CryptoErrorCode };

/**
 * Runs one verification of `scheme`, judged by `run`, inside its `crypto.verify` span, and records
 * its time. When `policy` is given, `run` judged under it, and the span also gets a
 * `crypto.policy.check` event. Answers whether the signature verified.
 */
export function measuredVerify(scheme: SignatureScheme, policy: SignaturePolicy | undefined, run: () => Verdict): boolean {
  return observe('verify', scheme, run, (span, verdict) => {
    const outcome: Attributes = verdict.verified ? { 'crypto.verified': true } : { 'crypto.verified': false, 'crypto.failure_reason': verdict.failure };
    span.setAttributes(outcome);
    if (policy === undefined) return;
    span.addEvent('crypto.policy.check', { 'crypto.policy': policy, 'crypto.algorithm': scheme.name, 'crypto.signature_type': scheme.category, ...outcome });
  }).verified;
}

/** Times each component of a composite sign or verify as a `crypto.hybrid.breakdown` child of the operation's span. */
const observeComponent: ComponentObserver = (call, run) => {
  if (operationSpan === undefined) return run();
  const parent = trace.setSpan(context.active(), operationSpan);
  const span = tracer().startSpan('crypto.hybrid.breakdown', { attributes: { 'crypto.algorithm': call.scheme, 'crypto.operation': call.operation } }, parent);
  const t0 = performance.now();
  try {
    const result = run();
    const us = (performance.now() - t0) * 1000;
    span.setAttributes({ 'crypto.duration_us': us, 'crypto.chatman_ticks': ticksOf(us) });
    if (call.operation === 'verify') span.setAttribute('crypto.verified', result === true);
    return result;
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw error;
  } finally {
    span.end();
  }
};

/** This thread's registries, one per backend choice (each probes its backends once). */
const registries = new Map<string, SchemeRegistry>();

/**
 * This thread's scheme registry for `backend` (default: the registry's own choice), whose
 * composites report their components inside {@link measured} and {@link measuredVerify} spans.
 * Throws `CryptoError` `UNKNOWN_BACKEND` / `BACKEND_UNAVAILABLE` for a backend that cannot be forced.
 */
export function observedSchemes(backend?: BackendChoice): SchemeRegistry {
  const key = JSON.stringify(backend ?? null);
  let registry = registries.get(key);
  if (registry === undefined) {
    registry = SchemeRegistry.create({ ...(backend === undefined ? {} : { force: backend }), ...(INSTRUMENTED ? { observeComponents: observeComponent } : {}) });
    registries.set(key, registry);
  }
  return registry;
}

/**
 * Installs a committed key rotation in `keys` (a `KeyDirectory`, or a `KeyManager`, which has the
 * same method; same errors, nothing recorded on a throw) and records `crypto.key.rotation`.
 */
export function applyKeyRotation(keys: Pick<KeyDirectory, 'applyRotation'>, cert: RotationCertificate, atSequence: number, atTime?: number): KeyRecord {
  const record = keys.applyRotation(cert, atSequence, atTime);
  recordRotations([cert], atSequence);
  return record;
}

/**
 * Installs a committed signature policy step in `directory` (see `applyPolicyMigration`: same
 * arguments and errors, nothing recorded on a throw) and records `crypto.key.rotation` for each
 * member's new key.
 */
export function applyPolicyStep(directory: KeyDirectory, schemes: SchemeResolver, inForce: SignaturePolicy, step: PolicyMigration, atSequence: number, atTime?: number): KeyRecord[] {
  const records = applyPolicyMigration(directory, schemes, inForce, step, atSequence, atTime);
  recordRotations(step.rotations, atSequence);
  return records;
}

/** `crypto.key.rotation` for each of `certs`, installed at `atSequence`, on the span of whoever installed them (a handler's actor.receive): installing has no span of its own. */
function recordRotations(certs: readonly RotationCertificate[], atSequence: number): void {
  const span = trace.getActiveSpan();
  if (!span?.isRecording()) return;
  for (const cert of certs) {
    span.addEvent('crypto.key.rotation', {
      'consensus.node_id': cert.member,
      'crypto.key.previous_id': cert.old.keyId,
      'crypto.key.id': cert.next.keyId,
      'crypto.algorithm': cert.next.scheme,
      'consensus.sequence': atSequence,
    });
  }
}

const receiptInstruments = instrumentsOf(RECEIPT_SCOPE, (meter) => ({
  generated: meter.createCounter('receipt.generated', { description: 'Receipts assembled for committed commands.', unit: '{receipt}' }),
  logEntries: meter.createUpDownCounter('receipt.log.entries', { description: "Receipts in a replica's append-only receipt log (its Merkle tree size).", unit: '{receipt}' }),
  /** The log size last reported per replica under this provider, so that a log opened again in one process is not counted twice. */
  reported: new Map<string, number>(),
}));

/** The receipt telemetry of one replica's receipt log. */
export class ReceiptTelemetry {
  readonly #labels: Attributes;
  readonly #key: string;

  /** Telemetry labelled with the replica's protocol and node id. */
  constructor(algorithm: ConsensusAlgorithm, nodeId: number) {
    this.#labels = { 'consensus.algorithm': algorithm, 'consensus.node_id': nodeId };
    this.#key = `${algorithm}/${nodeId}`;
  }

  /** Reports the log's size: its size in the store when opened, then after each position appended (`receipt.log.entries`). */
  logSize(size: number): void {
    const { logEntries, reported } = receiptInstruments();
    const change = size - (reported.get(this.#key) ?? 0);
    reported.set(this.#key, size);
    logEntries.add(change, this.#labels);
  }

  /** Counts receipts just assembled (`receipt.generated`) and records `crypto.receipt.generated` for each. */
  generated(receipts: readonly Receipt[]): void {
    receiptInstruments().generated.add(receipts.length, this.#labels);
    // Assembled synchronously in the handler answering the receipt request: its actor.receive span is where this happens.
    const span = trace.getActiveSpan();
    if (!span?.isRecording()) return;
    for (const { body, signatures } of receipts) {
      span.addEvent('crypto.receipt.generated', {
        ...this.#labels,
        'consensus.view': body.view,
        'consensus.sequence': body.sequence,
        'crypto.policy': body.policy,
        'receipt.signature_count': new Set(signatures.map((s) => s.node)).size,
      });
    }
  }
}
