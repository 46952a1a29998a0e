/**
 * Receipt verification as a pool task: checking a hybrid receipt means verifying 2f+1 ML-DSA and
 * Ed25519 signatures, milliseconds of work that must not block the thread that asked for it.
 * Receipts and trust cross to the pool thread in their JSON forms and are parsed and checked
 * there, so the task trusts nothing about its input; what it keeps between tasks is keyed by the
 * whole of the input it was derived from.
 */
import { defineTask } from '../runtime/index.js';
import type { BackendChoice } from '../protocols/crypto/index.js';
import { receiptFromJson, trustFromJson, verifyReceipt, type Json, type QuorumReport, type Receipt, type ReceiptCheck, type Trust } from '../protocols/receipts/index.js';
import type { TaskRunner } from './crypto-pool.js';
import { observedSchemes } from './crypto-telemetry.js';
import { RecentMap } from './recent-map.js';

/** What the task answers: the verdict, and the first failed check's name and reason. */
export interface ReceiptTaskVerdict {
  readonly ok: boolean;
  readonly check?: ReceiptCheck;
  readonly reason?: string;
}

/** Trusts kept parsed per pool thread (a rotation or a policy step makes a new one), and tree heads' quorum reports per trust. */
const TRUSTS_KEPT = 2;
const REPORTS_KEPT = 256;

/**
 * The trusts this pool thread verified receipts against lately, parsed, each with the quorum
 * reports of the tree heads it counted: the receipts of one batch share a tree head, whose
 * signatures are then checked once per thread, not once per receipt. Keyed by the trust's JSON
 * text and the backend, so that a report is only ever reused under the trust and the schemes it
 * was counted with.
 */
const verifiers = new RecentMap<string, { readonly trust: Trust; readonly reports: RecentMap<string, QuorumReport> }>(TRUSTS_KEPT);

function verifierOf(json: Json<Trust>, backend: BackendChoice | undefined): { readonly trust: Trust; readonly reports: RecentMap<string, QuorumReport> } {
  const key = JSON.stringify([json, backend ?? null]);
  let verifier = verifiers.get(key);
  if (verifier === undefined) verifiers.set(key, (verifier = { trust: trustFromJson(json), reports: new RecentMap(REPORTS_KEPT) }));
  return verifier;
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
    const { trust, reports } = verifierOf(input.trust, input.backend);
    const verdict = verifyReceipt(receipt, trust, registry, reports);
    return verdict.ok ? { ok: true } : { ok: false, check: verdict.check, reason: verdict.reason };
  },
});

/** Verifies `receipt` against `trust` on the pool of `runner` (on `backend` when given). */
export function verifyReceiptAsync(runner: TaskRunner, receipt: Json<Receipt>, trust: Json<Trust>, backend?: BackendChoice): Promise<ReceiptTaskVerdict> {
  return runner.runTask(verifyReceiptTask, { receipt, trust, ...(backend === undefined ? {} : { backend }) });
}
