/**
 * Offline verification of receipts and signed tree heads against a trust description. Nothing
 * here throws for a bad input: every verdict is a value naming the first check that failed, in
 * the order schema → cluster → policy → inclusion (receipts only) → quorum.
 */
import type { Schema } from '../../schema/schema.js';
import { SchemaError } from '../../schema/errors.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { SchemeRegistry, policyAdmits } from '../crypto/index.js';
import { encodeTreeHead } from './canonical.js';
import { verifyInclusion } from './merkle.js';
import { receiptLeafHash, type Receipt } from './receipt.js';
import { BINARY_SCHEMAS, JSON_SCHEMAS, unsharedCopy } from './schemas.js';
import { treeHeadContext, type SignedTreeHead, type TreeHead, type TreeHeadSignature } from './tree-head.js';
import { keyAt, policyAt, trustQuorum, type Trust, type TrustMember } from './trust.js';

/** The checks of {@link verifyReceipt}, in the order they run. */
export type ReceiptCheck = 'schema' | 'cluster' | 'policy' | 'inclusion' | 'quorum';

/** The checks of {@link verifyTreeHead}, in the order they run. */
export type TreeHeadCheck = Exclude<ReceiptCheck, 'inclusion'>;

/** A failed verification: the first check that failed and why. */
export interface Failure<C extends string> {
  readonly ok: false;
  readonly check: C;
  readonly reason: string;
}

/** Who vouched for a tree head. */
export interface QuorumReport {
  /** Signatures of distinct members required. */
  readonly quorum: number;
  /** Members whose signature counted, in the order they appear. */
  readonly signers: readonly string[];
  /** Signatures that did not count, with the reason. */
  readonly rejected: readonly { readonly node: string; readonly reason: string }[];
}

/** The outcome of {@link verifyReceipt}. */
export type ReceiptVerdict = ({ readonly ok: true; readonly receipt: Receipt } & QuorumReport) | (Failure<ReceiptCheck> & Partial<QuorumReport>);

/** The outcome of {@link verifyTreeHead}. */
export type TreeHeadVerdict = ({ readonly ok: true; readonly signed: SignedTreeHead } & QuorumReport) | (Failure<TreeHeadCheck> & Partial<QuorumReport>);

let defaultRegistry: SchemeRegistry | undefined;

function containsBytes(value: unknown, depth = 0): boolean {
  if (value instanceof Uint8Array) return true;
  if (typeof value !== 'object' || value === null || depth > 8) return false;
  return Object.values(value).some((v) => containsBytes(v, depth + 1));
}

/** Parses `value` in its JSON form, or in its in-memory form when it holds byte arrays; never mutates it. */
function parseEither<T>(value: unknown, json: Schema<T>, binary: Schema<T>): { ok: true; value: T } | Failure<'schema'> {
  try {
    const copy = unsharedCopy(value);
    return { ok: true, value: (containsBytes(copy) ? binary : json).parse(copy) };
  } catch (error) {
    if (!(error instanceof SchemaError)) throw error;
    return { ok: false, check: 'schema', reason: error.message };
  }
}

/**
 * Why `signature` does not count for `head` under `trust`, or undefined when it does: the signer
 * must be a member, the key one of that member's and valid at the head's sequence, the signature's
 * scheme the key's and admitted by the policy, and the signature valid over the head's canonical
 * bytes (with the tree-head context where the scheme takes one).
 */
export function treeHeadSignatureProblem(
  head: TreeHead,
  signature: TreeHeadSignature,
  trust: Trust,
  registry: SchemeRegistry = (defaultRegistry ??= SchemeRegistry.create()),
  message: Uint8Array = encodeTreeHead(head),
): string | undefined {
  const member: TrustMember | undefined = trust.members.find((m) => m.node === signature.node);
  if (member === undefined) return 'not a member';
  const key = keyAt(member, signature.keyId, head.sequence);
  if (key === undefined) return `key ${signature.keyId} is not one of the member's keys valid at sequence ${head.sequence}`;
  if (key.scheme !== signature.scheme) return `the signature is labelled ${signature.scheme}, the key is ${key.scheme}`;
  const scheme = registry.get(key.scheme);
  const policy = policyAt(trust, head.sequence);
  if (!policyAdmits(policy, scheme)) return `policy ${policy} does not admit ${key.scheme}`;
  return scheme.verify(scheme.importPublicKey(key.publicKey), message, signature.signature, treeHeadContext(scheme)) ? undefined : 'the signature does not verify';
}

/**
 * Where a verifier keeps the quorum reports of the signed tree heads it counted, by a digest of
 * each tree head and its signatures. The receipts of one batch share a tree head, and checking its 2f+1 signatures
 * is nearly all the cost of verifying a receipt: with a memo, they are checked once. A report
 * holds under the trust and scheme registry it was counted with only, so a memo serves one pair.
 */
export interface QuorumMemo {
  /** The report kept under `key`, if it still is. */
  get(key: string): QuorumReport | undefined;
  /** Keeps `report` under `key`; the memo may forget it later (a bounded map, say). */
  set(key: string, report: QuorumReport): unknown;
}

const utf8 = new TextEncoder();

/** A digest of a tree head's canonical bytes and of every field of its signatures, each length-prefixed so that no two lists share one. */
function quorumKey(message: Uint8Array, signatures: readonly TreeHeadSignature[]): string {
  const hash = sha256.create();
  const field = (bytes: Uint8Array): void => {
    hash.update(Uint8Array.of(bytes.length >>> 24, (bytes.length >>> 16) & 0xff, (bytes.length >>> 8) & 0xff, bytes.length & 0xff));
    hash.update(bytes);
  };
  field(message);
  for (const { node, keyId, scheme, signature } of signatures) {
    for (const text of [node, keyId, scheme]) field(utf8.encode(text));
    field(signature);
  }
  return bytesToHex(hash.digest());
}

/** Counts the signatures of distinct members that are valid for `head`; a member's second signature counts never. */
function countQuorum(head: TreeHead, signatures: readonly TreeHeadSignature[], trust: Trust, registry: SchemeRegistry | undefined, memo: QuorumMemo | undefined): QuorumReport {
  const message = encodeTreeHead(head);
  const key = memo && quorumKey(message, signatures);
  const known = key === undefined ? undefined : memo?.get(key);
  if (known !== undefined) return known;
  const report = countSignatures(head, message, signatures, trust, registry);
  if (key !== undefined) memo?.set(key, report);
  return report;
}

function countSignatures(head: TreeHead, message: Uint8Array, signatures: readonly TreeHeadSignature[], trust: Trust, registry: SchemeRegistry | undefined): QuorumReport {
  const signers: string[] = [];
  const rejected: { node: string; reason: string }[] = [];
  for (const signature of signatures) {
    const problem = signers.includes(signature.node) ? 'the member was already counted' : treeHeadSignatureProblem(head, signature, trust, registry, message);
    if (problem === undefined) signers.push(signature.node);
    else rejected.push({ node: signature.node, reason: problem });
  }
  return { quorum: trustQuorum(trust), signers, rejected };
}

function quorumFailure(report: QuorumReport): string {
  const why = report.rejected.map((r) => `${r.node}: ${r.reason}`).join('; ');
  return `${report.signers.length} valid signatures of distinct members, ${report.quorum} needed${why === '' ? '' : ` (not counted: ${why})`}`;
}

function headChecks(head: TreeHead, trust: Trust): Failure<'cluster' | 'policy'> | undefined {
  if (head.cluster !== trust.cluster) return { ok: false, check: 'cluster', reason: `the tree head is of cluster ${head.cluster}, the trust of ${trust.cluster}` };
  const policy = policyAt(trust, head.sequence);
  if (head.policy !== policy) return { ok: false, check: 'policy', reason: `the tree head is under policy ${head.policy}, the trust requires ${policy} at sequence ${head.sequence}` };
  return undefined;
}

/**
 * Verifies a signed tree head (JSON form, or in-memory) against `trust`: its schema, its cluster
 * and policy, and a quorum of valid signatures of distinct members. With `memo`, a head counted
 * before under the same trust and registry is not counted again.
 */
export function verifyTreeHead(signed: unknown, trust: Trust, registry?: SchemeRegistry, memo?: QuorumMemo): TreeHeadVerdict {
  const parsed = parseEither(signed, JSON_SCHEMAS.signedTreeHead, BINARY_SCHEMAS.signedTreeHead);
  if (!parsed.ok) return parsed;
  const { treeHead, signatures } = parsed.value;
  const failed = headChecks(treeHead, trust);
  if (failed) return failed;
  const report = countQuorum(treeHead, signatures, trust, registry, memo);
  if (report.signers.length < report.quorum) return { ok: false, check: 'quorum', reason: quorumFailure(report), ...report };
  return { ok: true, signed: parsed.value, ...report };
}

/**
 * Verifies a receipt (JSON form, or in-memory) against `trust`, offline. Checks, in order:
 * - `schema`: the receipt has exactly the receipt format's shape;
 * - `cluster`: its body and tree head are of the trusted cluster;
 * - `policy`: both are under the policy the trust puts in force at their sequence;
 * - `inclusion`: the body's leaf (RFC 9162 leaf hash of its canonical bytes) is at its leaf index
 *   in the tree head's tree, by the inclusion proof (RFC 9162 §2.1.3.2), and the body's batch is
 *   not later than the tree head's;
 * - `quorum`: a quorum of distinct members signed the tree head with keys valid at its sequence.
 *
 * With `memo`, the signatures of a tree head counted before under the same trust and registry are
 * not checked again.
 */
export function verifyReceipt(receipt: unknown, trust: Trust, registry?: SchemeRegistry, memo?: QuorumMemo): ReceiptVerdict {
  const parsed = parseEither(receipt, JSON_SCHEMAS.receipt, BINARY_SCHEMAS.receipt);
  if (!parsed.ok) return parsed;
  const { body, treeHead, inclusionProof, signatures } = parsed.value;
  if (body.cluster !== trust.cluster) return { ok: false, check: 'cluster', reason: `the receipt is of cluster ${body.cluster}, the trust of ${trust.cluster}` };
  const policy = policyAt(trust, body.sequence);
  if (body.policy !== policy) return { ok: false, check: 'policy', reason: `the receipt is under policy ${body.policy}, the trust requires ${policy} at sequence ${body.sequence}` };
  const failed = headChecks(treeHead, trust);
  if (failed) return failed;
  if (body.sequence > treeHead.sequence) {
    return { ok: false, check: 'inclusion', reason: `the receipt's batch ${body.sequence} is later than the tree head's ${treeHead.sequence}` };
  }
  if (!verifyInclusion(body.leafIndex, treeHead.size, receiptLeafHash(body), inclusionProof, treeHead.root)) {
    return { ok: false, check: 'inclusion', reason: `the body is not leaf ${body.leafIndex} of the tree of ${treeHead.size} leaves with the tree head's root` };
  }
  const report = countQuorum(treeHead, signatures, trust, registry, memo);
  if (report.signers.length < report.quorum) return { ok: false, check: 'quorum', reason: quorumFailure(report), ...report };
  return { ok: true, receipt: parsed.value, ...report };
}
