/**
 * `knhk receipt verify` and `knhk log verify`: offline checks of a receipt, and of the consistency
 * of two signed tree heads, against a trust file. Exit status: 0 valid, 1 invalid (the failed
 * check is printed), 2 bad arguments or an unreadable file (or a trust file that is not one).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SchemaError } from '../schema/errors.js';
import {
  ReceiptError,
  consistencyProofFromJson,
  treeHeadFromJson,
  trustFromJson,
  verifyConsistency,
  verifyReceipt,
  verifyTreeHead,
  type ConsistencyProof,
  type SignedTreeHead,
  type Trust,
} from '../protocols/receipts/index.js';
import { isUsageError } from './usage.js';

/** The usage text of `knhk receipt`. */
export const RECEIPT_USAGE = `usage: knhk receipt verify <receipt.json> --trust <trust.json> [--json]

Verifies a receipt offline: its schema, cluster and policy against the trust file, the inclusion
of its body in the signed tree head (RFC 9162), and a quorum of valid signatures of distinct
members with keys valid at its sequence. Exit status 0 valid, 1 invalid (the first failed check
is printed), 2 bad arguments or unreadable files.`;

/** The usage text of `knhk log`. */
export const LOG_USAGE = `usage: knhk log verify --from <sth1.json> --to <sth2.json> [--proof <consistency.json>]
                       [--trust <trust.json>] [--json]

Checks that the receipt log of the second signed tree head extends the first (an RFC 9162
consistency proof; without --proof, only equal sizes or an empty first tree can be consistent).
With --trust, both tree heads must also carry a quorum of valid signatures. Exit status 0
consistent, 1 not (the failed check is printed), 2 bad arguments or unreadable files.`;

/** Arguments the command cannot run with, or a file it cannot read: exit status 2. */
class Unusable extends Error {}

/** What a verification printed and returned. */
interface Outcome {
  readonly valid: boolean;
  readonly check?: string;
  readonly reason?: string;
  readonly details?: Record<string, unknown>;
  readonly summary: string;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new Unusable(`cannot read the ${what} ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** A document under test: not JSON at all is an invalid document, not a usage error. */
function readDocument(path: string, what: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  const text = readText(path, what);
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, reason: `${what} ${path} is not JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
}

function readTrust(path: string): Trust {
  const document = readDocument(path, 'trust file');
  if (!document.ok) throw new Unusable(document.reason);
  try {
    return trustFromJson(document.value);
  } catch (error) {
    if (error instanceof SchemaError || error instanceof ReceiptError) throw new Unusable(`the trust file ${path} is not valid: ${error.message}`);
    throw error;
  }
}

function report(outcome: Outcome, json: boolean): number {
  const { valid, check, reason, details } = outcome;
  process.stdout.write(`${json ? JSON.stringify({ valid, check, reason, ...details }) : outcome.summary}\n`);
  return outcome.valid ? 0 : 1;
}

const invalid = (check: string, reason: string): Outcome => ({ valid: false, check, reason, summary: `invalid: ${check}: ${reason}` });

function receiptVerify(args: readonly string[], trustPath: string): Outcome {
  if (args.length !== 1) throw new Unusable(`receipt verify takes exactly one receipt file\n${RECEIPT_USAGE}`);
  const trust = readTrust(trustPath);
  const document = readDocument(args[0] as string, 'receipt');
  if (!document.ok) return invalid('schema', document.reason);
  const verdict = verifyReceipt(document.value, trust);
  if (!verdict.ok) return invalid(verdict.check, verdict.reason);
  const { body, treeHead } = verdict.receipt;
  return {
    valid: true,
    details: { cluster: body.cluster, sequence: body.sequence, view: body.view, leafIndex: body.leafIndex, treeSize: treeHead.size, signers: verdict.signers, quorum: verdict.quorum },
    summary:
      `valid: receipt of cluster ${body.cluster}, command ${body.batchIndex} of sequence ${body.sequence} (view ${body.view}), ` +
      `leaf ${body.leafIndex} of ${treeHead.size}, signed by ${verdict.signers.join(', ')} (${verdict.quorum} needed)`,
  };
}

function loadTreeHead(path: string, label: string, trust: Trust | undefined): { ok: true; signed: SignedTreeHead } | { ok: false; outcome: Outcome } {
  const document = readDocument(path, `${label} tree head`);
  if (!document.ok) return { ok: false, outcome: invalid('schema', document.reason) };
  if (trust !== undefined) {
    const verdict = verifyTreeHead(document.value, trust);
    return verdict.ok ? { ok: true, signed: verdict.signed } : { ok: false, outcome: invalid(verdict.check, `${label} tree head: ${verdict.reason}`) };
  }
  try {
    return { ok: true, signed: treeHeadFromJson(document.value) };
  } catch (error) {
    if (!(error instanceof SchemaError)) throw error;
    return { ok: false, outcome: invalid('schema', `${label} tree head: ${error.message}`) };
  }
}

function logVerify(from: string, to: string, proofPath: string | undefined, trustPath: string | undefined): Outcome {
  const trust = trustPath === undefined ? undefined : readTrust(trustPath);
  const older = loadTreeHead(from, 'first', trust);
  if (!older.ok) return older.outcome;
  const newer = loadTreeHead(to, 'second', trust);
  if (!newer.ok) return newer.outcome;
  const [a, b] = [older.signed.treeHead, newer.signed.treeHead];
  let proof: ConsistencyProof = { version: 1, cluster: a.cluster, firstSize: a.size, secondSize: b.size, proof: [] };
  if (proofPath !== undefined) {
    const document = readDocument(proofPath, 'consistency proof');
    if (!document.ok) return invalid('schema', document.reason);
    try {
      proof = consistencyProofFromJson(document.value);
    } catch (error) {
      if (!(error instanceof SchemaError)) throw error;
      return invalid('schema', `consistency proof: ${error.message}`);
    }
  }
  const verdict = verifyConsistency(a, b, proof);
  if (!verdict.ok) return invalid(verdict.check, verdict.reason);
  const signatures = trust === undefined ? 'signatures not checked (no --trust)' : 'both tree heads signed by a quorum';
  return {
    valid: true,
    details: { cluster: a.cluster, firstSize: a.size, secondSize: b.size, firstSequence: a.sequence, secondSequence: b.sequence, signaturesChecked: trust !== undefined },
    summary: `consistent: cluster ${a.cluster}, the log of ${b.size} leaves (sequence ${b.sequence}) extends the log of ${a.size} leaves (sequence ${a.sequence}); ${signatures}`,
  };
}

function run(usage: string, body: () => number): number {
  try {
    return body();
  } catch (error) {
    if (!(error instanceof Unusable) && !isUsageError(error)) throw error;
    process.stderr.write(`${(error as Error).message}\n${error instanceof Unusable ? '' : `${usage}\n`}`);
    return 2;
  }
}

/** Runs `knhk receipt` with `argv` (after the command name); returns the exit status. */
export function runReceipt(argv: readonly string[]): number {
  return run(RECEIPT_USAGE, () => {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: { trust: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      process.stdout.write(`${RECEIPT_USAGE}\n`);
      return 0;
    }
    const [sub, ...rest] = positionals;
    if (sub !== 'verify' || values.trust === undefined) throw new Unusable(RECEIPT_USAGE);
    return report(receiptVerify(rest, values.trust), values.json);
  });
}

/** Runs `knhk log` with `argv` (after the command name); returns the exit status. */
export function runLog(argv: readonly string[]): number {
  return run(LOG_USAGE, () => {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        proof: { type: 'string' },
        trust: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      process.stdout.write(`${LOG_USAGE}\n`);
      return 0;
    }
    if (positionals.length !== 1 || positionals[0] !== 'verify' || values.from === undefined || values.to === undefined) throw new Unusable(LOG_USAGE);
    return report(logVerify(values.from, values.to, values.proof, values.trust), values.json);
  });
}
