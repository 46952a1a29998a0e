/**
 * The collector's side of receipts: it gathers the replicas' signatures over each batch's tree
 * head until a quorum of distinct members signed the same bytes, then hands over the signed tree
 * head (with exactly a quorum of signatures, so that a receipt carries none to spare). A member
 * that signs a different tree head for a sequence than others did is reported as a fork, and so
 * is one that signs two. It holds at most one head per member and pending sequence; which
 * sequences it is given, its host bounds (`forget` drops those below a point).
 */
import { hex } from '../consensus/codec.js';
import { ReceiptError } from './errors.js';
import { SchemeRegistry } from '../crypto/index.js';
import { encodeTreeHead } from './canonical.js';
import type { ForkEvidence } from './fork.js';
import type { SignedTreeHead, TreeHead, TreeHeadSignature } from './tree-head.js';
import { policyAt, trustQuorum, type Trust } from './trust.js';
import { treeHeadSignatureProblem } from './verify.js';

/** What adding one signature changed. */
export type CollectorUpdate =
  | { readonly kind: 'pending'; readonly signatures: number; readonly quorum: number }
  /**
   * The head reached a quorum with this signature: reported once per sequence. `accused`: the
   * members that signed another head for the sequence (a fork reported before the quorum formed).
   */
  | { readonly kind: 'complete'; readonly signed: SignedTreeHead; readonly accused: readonly string[] }
  /**
   * A different head for a sequence that already has one: both, with their signatures so far.
   * Two heads alone do not say which is the lie; once a quorum signed one, whoever signed the
   * other is `accused` (here when the quorum came first, else in the `complete` update).
   */
  | { readonly kind: 'fork'; readonly evidence: ForkEvidence; readonly accused: readonly string[] }
  /** The signature does not count (invalid, a non-member's, a duplicate, or the sequence is settled). */
  | { readonly kind: 'ignored'; readonly reason: string };

/** Options of a {@link TreeHeadCollector}. */
export interface CollectorOptions {
  /**
   * Whether `add` verifies each signature itself (synchronously, with `registry`). Default true;
   * pass false when the host verified it already (on the crypto pool, with `treeHeadSignatureProblem`).
   */
  readonly verify?: boolean;
  readonly registry?: SchemeRegistry;
}

interface Candidate {
  readonly head: TreeHead;
  readonly signatures: TreeHeadSignature[];
}

function mostSigned(candidates: readonly Candidate[]): Candidate {
  return candidates.reduce((best, c) => (c.signatures.length > best.signatures.length ? c : best));
}

/** Collects tree-head signatures per sequence until one head has a quorum. Pure state. */
export class TreeHeadCollector {
  #trust: Trust;
  readonly #quorum: number;
  readonly #verify: boolean;
  readonly #registry: SchemeRegistry | undefined;
  /** Per pending sequence, the heads seen (by canonical bytes, hex). */
  readonly #pending = new Map<number, Map<string, Candidate>>();
  /** Sequences that reached a quorum, with the bytes that did. */
  readonly #settled = new Map<number, string>();

  /** A collector for the cluster `trust` describes; the quorum is {@link trustQuorum}'s. */
  constructor(trust: Trust, options: CollectorOptions = {}) {
    this.#trust = trust;
    this.#quorum = trustQuorum(trust);
    this.#verify = options.verify ?? true;
    this.#registry = options.registry;
  }

  /**
   * Judges heads against `trust` from now on: the same cluster's, grown since by key rotations or
   * policy migrations. Throws `ReceiptError` `INVALID_TRUST` for another cluster's, or another size.
   */
  updateTrust(trust: Trust): void {
    if (trust.cluster !== this.#trust.cluster || trustQuorum(trust) !== this.#quorum) {
      throw new ReceiptError('INVALID_TRUST', `the trust of cluster ${trust.cluster} (quorum ${trustQuorum(trust)}) does not replace that of ${this.#trust.cluster} (quorum ${this.#quorum})`);
    }
    this.#trust = trust;
  }

  /** Adds `signature` over `head` by one member. */
  add(head: TreeHead, signature: TreeHeadSignature): CollectorUpdate {
    const bytes = encodeTreeHead(head);
    const key = hex(bytes);
    const settled = this.#settled.get(head.sequence);
    if (settled === key) return { kind: 'ignored', reason: `sequence ${head.sequence} already has its quorum` };
    const policy = policyAt(this.#trust, head.sequence);
    if (head.cluster !== this.#trust.cluster || head.policy !== policy) {
      return { kind: 'ignored', reason: `a tree head of cluster ${head.cluster} under policy ${head.policy}, not ${this.#trust.cluster} under ${policy}` };
    }
    if (this.#verify) {
      const problem = treeHeadSignatureProblem(head, signature, this.#trust, this.#registry, bytes);
      if (problem !== undefined) return { kind: 'ignored', reason: `${signature.node}: ${problem}` };
    } else if (!this.#trust.members.some((m) => m.node === signature.node)) {
      return { kind: 'ignored', reason: `${signature.node} is not a member` };
    }
    const heads = this.#pending.get(head.sequence) ?? new Map<string, Candidate>();
    // A member signs one head per sequence. A second is its own equivocation, proved by the two
    // signatures, and is not kept: a faulty member could otherwise add heads without end.
    const earlier = [...heads.entries()].find(([k, c]) => k !== key && c.signatures.some((s) => s.node === signature.node))?.[1];
    if (earlier !== undefined) {
      const first = earlier.signatures.find((s) => s.node === signature.node) as TreeHeadSignature;
      return {
        kind: 'fork',
        accused: [signature.node],
        evidence: {
          kind: 'same-sequence',
          cluster: head.cluster,
          reason: `${signature.node} signed two different tree heads for sequence ${head.sequence}`,
          first: { treeHead: earlier.head, signatures: [first] },
          second: { treeHead: head, signatures: [signature] },
        },
      };
    }
    this.#pending.set(head.sequence, heads);
    const candidate = heads.get(key) ?? { head, signatures: [] };
    heads.set(key, candidate);
    if (candidate.signatures.some((s) => s.node === signature.node)) return { kind: 'ignored', reason: `${signature.node} already signed this head` };
    candidate.signatures.push(signature);
    // Once a quorum signed one head, a signature on any other is its signer's lie. Before that, a
    // head nobody signed before, for a sequence that has another, is reported once.
    if (settled !== undefined || (candidate.signatures.length === 1 && heads.size > 1)) {
      const other = (settled === undefined ? undefined : heads.get(settled)) ?? mostSigned([...heads.values()].filter((c) => c !== candidate));
      return {
        kind: 'fork',
        accused: settled === undefined ? [] : [signature.node],
        evidence: {
          kind: 'same-sequence',
          cluster: head.cluster,
          reason: `two different tree heads for sequence ${head.sequence}`,
          first: { treeHead: other.head, signatures: [...other.signatures] },
          second: { treeHead: head, signatures: [...candidate.signatures] },
        },
      };
    }
    if (candidate.signatures.length < this.#quorum) {
      return { kind: 'pending', signatures: candidate.signatures.length, quorum: this.#quorum };
    }
    this.#settled.set(head.sequence, key);
    const accused = [...heads.values()].filter((c) => c !== candidate).flatMap((c) => c.signatures.map((s) => s.node));
    return { kind: 'complete', signed: { treeHead: head, signatures: [...candidate.signatures] }, accused: [...new Set(accused)] };
  }

  /** Drops the state of every sequence below `sequence` (settled or not). */
  forget(sequence: number): void {
    for (const map of [this.#pending, this.#settled]) {
      for (const s of map.keys()) if (s < sequence) map.delete(s);
    }
  }
}
