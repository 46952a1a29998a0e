/**
 * Receipts as a cluster makes them, in one process and with real keys: a cluster's members and
 * trust, executed batches appended to every member's log with every member's tree-head signature,
 * and the receipts built from them.
 */
import { hashBytes } from '../../protocols/consensus/codec.js';
import { command } from '../../protocols/consensus/command.js';
import { SchemeRegistry, SigningKey, type SchemeName, type SignaturePolicy } from '../../protocols/crypto/index.js';
import {
  MerkleLog,
  appendBatch,
  buildReceipt,
  checkTrust,
  encodeTreeHead,
  receiptToJson,
  signTreeHead,
  trustKeyOf,
  trustQuorum,
  type BatchRecord,
  type ExecutedBatch,
  type LogContext,
  type Receipt,
  type TreeHeadSignature,
  type Trust,
} from '../../protocols/receipts/index.js';

/** The schemes, with the default backends. */
export const registry = SchemeRegistry.create();
/** When the members' keys were made, ms since the epoch; batches are timed after it. */
export const CREATED = 1_700_000_000_000;

/** A member of the cluster and its signing key. */
export interface Member {
  readonly node: string;
  readonly key: SigningKey;
}

/** A cluster: its trust description, members and receipt-log context. */
export interface Fixture {
  readonly trust: Trust;
  readonly members: readonly Member[];
  readonly context: LogContext;
}

/** A cluster of `n` members (4 by default) with keys of `scheme` (Ed25519) under `policy` (classical). */
export function fixture(options: { n?: number; f?: number; scheme?: SchemeName; policy?: SignaturePolicy } = {}): Fixture {
  const n = options.n ?? 4;
  const f = options.f ?? Math.floor((n - 1) / 3);
  const policy = options.policy ?? 'classical';
  const scheme = registry.get(options.scheme ?? 'Ed25519');
  const members = Array.from({ length: n }, (_, i) => ({ node: `r${i}`, key: SigningKey.generate(scheme, CREATED + i) }));
  const trust = checkTrust({ version: 1, cluster: 'ledger-eu', n, f, policy, members: members.map((m) => ({ node: m.node, keys: [trustKeyOf(m.key, 0)] })) });
  return { trust, members, context: { cluster: 'ledger-eu', protocol: 'pbft', policy } };
}

/** The batch executed at `position`: `commands` commands of three clients; `salt` makes another batch of the same shape. */
export function batch(position: number, commands: number, salt = 0): ExecutedBatch {
  return {
    position,
    view: 3,
    timestamp: CREATED + 1000 * position,
    commands: Array.from({ length: commands }, (_, i) => command(`client-${i % 3}`, position * 100 + i, Uint8Array.of(position, i, salt))),
    stateHashBefore: hashBytes(Uint8Array.of(position - 1, salt)),
    stateHash: hashBytes(Uint8Array.of(position, salt)),
  };
}

export interface Executed {
  /** Replica 0's log (all logs are identical). */
  readonly log: MerkleLog;
  /** Per batch: its record and every member's signature over its tree head. */
  readonly batches: readonly { readonly record: BatchRecord; readonly signatures: readonly TreeHeadSignature[] }[];
}

/** Every member appends the batches to its own log and signs each tree head; the heads must agree byte for byte. */
export function execute(fx: Fixture, batches: readonly ExecutedBatch[]): Executed {
  const logs = fx.members.map(() => new MerkleLog());
  const out = batches.map((b) => {
    const records = logs.map((log) => appendBatch(log, b, fx.context));
    const bytes = records.map((r) => Buffer.from(encodeTreeHead(r.treeHead)).toString('hex'));
    if (new Set(bytes).size !== 1) throw new Error('replicas built different tree heads');
    const record = records[0] as BatchRecord;
    return { record, signatures: fx.members.map((m) => signTreeHead(record.treeHead, m.node, m.key)) };
  });
  return { log: logs[0] as MerkleLog, batches: out };
}

/** Receipts for every command of every batch, each with the first `signers` signatures (default: a quorum). */
export function receiptsOf(fx: Fixture, executed: Executed, signers = trustQuorum(fx.trust)): Receipt[] {
  return executed.batches.flatMap(({ record, signatures }) =>
    record.bodies.map((body) => buildReceipt(body, executed.log, { treeHead: record.treeHead, signatures: signatures.slice(0, signers) })),
  );
}

/** A receipt as another process sees it: JSON text, parsed. */
export const asFile = (receipt: Receipt): unknown => JSON.parse(JSON.stringify(receiptToJson(receipt)));
