/**
 * Receipt verification as a pool task: checking a hybrid receipt means verifying 2f+1 ML-DSA and
 * Ed25519 signatures, milliseconds of work that must not block the thread that asked for it.
 * Receipts and trust cross to the pool thread in their JSON forms and are parsed and checked
 * there, so the task trusts nothing about its input.
 */
import { defineTask } from '../runtime/index.js';
import type { BackendChoice } from '../protocols/crypto/index.js';
import { receiptFromJson, trustFromJson, verifyReceipt, type Json, type Receipt, type ReceiptCheck, type Trust } from '../protocols/receipts/index.js';
import type { TaskRunner } from './crypto-pool.js';
import { observedSchemes } from './crypto-telemetry.js';

/** What the task answers: the verdict, and the first failed check's name and reason. */
export interface ReceiptTaskVerdict {
  readonly ok: boolean;
  readonly check?: ReceiptCheck;
  readonly reason?: string;
}

/** Verifies one receipt against a trust description on a pool thread. */
export const verifyReceiptTask = defineTask({
  module: import.meta.url,
  export: 'verifyReceiptTask',
  run(input: { readonly receipt: Json<Receipt>; readonly trust: Json<Trust>; readonly backend?: BackendChoice }): ReceiptTaskVerdict {
    const registry = observedSchemes(input.backend);
    let receipt: Receipt;
    try {
      receipt = receiptFromJson(input.receipt);
    } catch (error) {
      return { ok: false, check: 'schema', reason: error instanceof Error ? error.message : String(error) };
    }
    const verdict = verifyReceipt(receipt, trustFromJson(input.trust), registry);
    return verdict.ok ? { ok: true } : { ok: false, check: verdict.check, reason: verdict.reason };
  },
});

/** Verifies `receipt` against `trust` on the pool of `runner` (on `backend` when given). */
export function verifyReceiptAsync(runner: TaskRunner, receipt: Json<Receipt>, trust: Json<Trust>, backend?: BackendChoice): Promise<ReceiptTaskVerdict> {
  return runner.runTask(verifyReceiptTask, { receipt, trust, ...(backend === undefined ? {} : { backend }) });
}
