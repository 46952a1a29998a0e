/**
 * Telemetry of signature operations, as the seed's registry names it: spans `crypto.sign` and
 * `crypto.verify` with `crypto.algorithm`, `crypto.backend`, `crypto.duration_us`,
 * `crypto.chatman_ticks` and (verify) `crypto.verified`; histograms `crypto.sign.duration` and
 * `crypto.verify.duration` (µs) and `crypto.chatman.ticks`. The signature layer itself stays pure;
 * the actors that run it (pool tasks here) report it. No SDK registered: all of this is a no-op.
 */
import { metrics, SpanStatusCode, trace, type Attributes, type Histogram } from '@opentelemetry/api';
import type { SignatureScheme } from '../protocols/crypto/index.js';
import { TICK_MS } from '../runtime/index.js';

const SCOPE = 'knhk.crypto';
const tracer = trace.getTracer(SCOPE);

interface CryptoInstruments {
  readonly duration: Record<'sign' | 'verify', Histogram>;
  readonly ticks: Histogram;
}

// Created on first use, from the meter provider registered by then (metrics have no proxy provider).
let instruments: CryptoInstruments | undefined;

function meters(): CryptoInstruments {
  if (instruments) return instruments;
  const meter = metrics.getMeter(SCOPE);
  instruments = {
    duration: {
      sign: meter.createHistogram('crypto.sign.duration', { description: 'Time of one signature.', unit: 'us' }),
      verify: meter.createHistogram('crypto.verify.duration', { description: 'Time of one verification.', unit: 'us' }),
    },
    ticks: meter.createHistogram('crypto.chatman.ticks', { description: 'Time of one crypto call, in ticks of 125 µs (budget: 8).', unit: '{tick}' }),
  };
  return instruments;
}

/** Runs one sign or verify of `scheme` inside its span and records its duration. */
export function measured<T>(op: 'sign' | 'verify', scheme: SignatureScheme, run: () => T): T {
  const span = tracer.startSpan(`crypto.${op}`);
  const t0 = performance.now();
  try {
    const result = run();
    const us = (performance.now() - t0) * 1000;
    const attributes: Attributes = { 'crypto.algorithm': scheme.name, 'crypto.backend': scheme.backend };
    const m = meters();
    m.duration[op].record(us, attributes);
    m.ticks.record(us / 1000 / TICK_MS, { ...attributes, 'crypto.operation': op });
    span.setAttributes({ ...attributes, 'crypto.duration_us': us, 'crypto.chatman_ticks': us / 1000 / TICK_MS });
    if (op === 'verify') span.setAttribute('crypto.verified', result === true);
    return result;
  } catch (error) {
    span.setAttributes({ 'crypto.algorithm': scheme.name, 'crypto.backend': scheme.backend, 'crypto.failure_reason': error instanceof Error ? error.message : String(error) });
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw error;
  } finally {
    span.end();
  }
}
