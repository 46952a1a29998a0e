/**
 * Signed tree heads (STH): the statement every replica signs after it executed a batch and
 * appended the batch's receipts to its log — "after sequence s (ordered in view v, at the agreed
 * time t, under policy p), cluster c's receipt log has `size` leaves and root `root`". A tree
 * head with signatures of a quorum of distinct members vouches for every leaf in its tree.
 */
import type { Digest } from '../consensus/codec.js';
import type { KeyId, SchemeName, SignaturePolicy, SignatureScheme } from '../crypto/index.js';
import { TREE_HEAD_CONTEXT, encodeTreeHead } from './canonical.js';

/** The format version of tree heads this code writes and reads. */
export const TREE_HEAD_VERSION = 1;

/** What a replica signs after executing a batch; encoded by {@link encodeTreeHead}. */
export interface TreeHead {
  /** Format version: {@link TREE_HEAD_VERSION}. */
  readonly version: typeof TREE_HEAD_VERSION;
  /** The cluster's id. */
  readonly cluster: string;
  /** Number of leaves in the receipt log after appending the batch's receipts. */
  readonly size: number;
  /** Merkle root of the log at that size (RFC 9162 §2.1.1, SHA-256). */
  readonly root: Digest;
  /** The batch's consensus position (PBFT sequence number, HotStuff height, Raft index). */
  readonly sequence: number;
  /** The view (HotStuff), term (Raft) or PBFT view the batch was first proposed in: the same at every replica (see `AppliedEntry.view`). */
  readonly view: number;
  /** The time the protocol agreed for the batch, ms since the epoch (not a local clock). */
  readonly timestamp: number;
  /** The signature policy in force. */
  readonly policy: SignaturePolicy;
}

/** One replica's signature over a tree head's canonical bytes. */
export interface TreeHeadSignature {
  /** The signing member's node id, as the trust file names it. */
  readonly node: string;
  /** The id of the key that signed. */
  readonly keyId: KeyId;
  /** The key's scheme. */
  readonly scheme: SchemeName;
  /** The signature over {@link encodeTreeHead}(treeHead), under {@link TREE_HEAD_CONTEXT} where the scheme takes a context. */
  readonly signature: Uint8Array;
}

/** A tree head with the signatures collected for it: the form of an STH file. */
export interface SignedTreeHead {
  readonly treeHead: TreeHead;
  readonly signatures: readonly TreeHeadSignature[];
}

const CONTEXT_BYTES = new TextEncoder().encode(TREE_HEAD_CONTEXT);

/** The context string of tree-head signatures by `scheme`: {@link TREE_HEAD_CONTEXT}, or undefined for a scheme without contexts. */
export function treeHeadContext(scheme: Pick<SignatureScheme, 'contextSupported'>): Uint8Array | undefined {
  return scheme.contextSupported ? CONTEXT_BYTES.slice() : undefined;
}

/**
 * What a signer signs for `head` with `scheme`: the canonical bytes, and the context string when
 * the scheme takes one (undefined for Ed25519 and Falcon-512). Hand these to `signAsync` on the
 * crypto pool, or to {@link signTreeHead}.
 */
export function treeHeadSigningInput(head: TreeHead, scheme: Pick<SignatureScheme, 'contextSupported'>): { message: Uint8Array; context?: Uint8Array } {
  const message = encodeTreeHead(head);
  const context = treeHeadContext(scheme);
  return context === undefined ? { message } : { message, context };
}

/** A signer as {@link signTreeHead} needs it: a `SigningKey` fits. */
export interface TreeHeadSigner {
  readonly scheme: SignatureScheme;
  readonly keyId: KeyId;
  sign(message: Uint8Array, context?: Uint8Array): Uint8Array;
}

/** Signs `head` as member `node` with `key`, synchronously (tests, tools; replicas sign on the pool). */
export function signTreeHead(head: TreeHead, node: string, key: TreeHeadSigner): TreeHeadSignature {
  const { message, context } = treeHeadSigningInput(head, key.scheme);
  return { node, keyId: key.keyId, scheme: key.scheme.name, signature: key.sign(message, context) };
}
