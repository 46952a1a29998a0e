/**
 * Blocks of chained HotStuff (Yin et al., PODC'19, §4.2 and Algorithm 3): a batch of client
 * commands, the hash of its parent, and the quorum certificate ("justify") that certifies that
 * parent. A block's hash is the digest of its header, where the batch appears as its digest and
 * the justify as its view and its signers: the certificate's value is the parent hash, already in
 * the header, and its signatures are evidence about the block, not part of what is voted for —
 * but who signed is, because it chooses the next leader (pacemaker.ts), and every replica must
 * see the same signers behind one block hash.
 */
import { t, type Infer } from '../../schema/schema.js';
import { quorumCertSchema, type QuorumCert } from '../consensus/certificate.js';
import { ZERO_DIGEST, digestOf, type Digest } from '../consensus/codec.js';
import { batchSchema, type Command } from '../consensus/command.js';
import type { NodeId } from '../consensus/config.js';

/** Schema of a {@link Block}. Field order is the order blocks are built and encoded in. */
export const blockSchema = t.object({
  parent: t.bytes({ length: 32 }),
  height: t.uint(),
  view: t.uint(),
  proposer: t.uint(1 << 16),
  timestamp: t.uint(),
  commands: batchSchema,
  justify: quorumCertSchema,
});

/** A block: its parent's hash and height + 1, the view it was proposed in, its batch, and the QC on its parent. */
export type Block = Infer<typeof blockSchema>;

/** What a block is built from. */
export interface BlockFields {
  readonly parent: Digest;
  readonly height: number;
  readonly view: number;
  readonly proposer: NodeId;
  readonly timestamp: number;
  readonly commands: readonly Command[];
  readonly justify: QuorumCert;
}

/** Builds a block with its fields in schema order (the order its encoding depends on). */
export function makeBlock(f: BlockFields): Block {
  return {
    parent: f.parent,
    height: f.height,
    view: f.view,
    proposer: f.proposer,
    timestamp: f.timestamp,
    commands: f.commands,
    justify: { view: f.justify.view, valueHash: f.justify.valueHash, signatures: f.justify.signatures },
  };
}

/** The hash a block is known, voted for and certified by: the digest of its header. */
export function blockHash(block: Block): Digest {
  return digestOf({
    parent: block.parent,
    height: block.height,
    view: block.view,
    proposer: block.proposer,
    timestamp: block.timestamp,
    payload: digestOf(block.commands),
    justifyView: block.justify.view,
    justifySigners: block.justify.signatures.map((s) => s.node),
  });
}

/**
 * The genesis block every replica starts from: height 0, view 0, no commands. It is certified by
 * {@link GENESIS_QC}, the one certificate without signatures, so that the leader of view 1 can
 * extend it (Algorithm 3 starts with genericQC on the root node).
 */
export const GENESIS: Block = makeBlock({
  parent: ZERO_DIGEST,
  height: 0,
  view: 0,
  proposer: 0,
  timestamp: 0,
  commands: [],
  justify: { view: 0, valueHash: ZERO_DIGEST, signatures: [] },
});

/** The genesis block's hash. */
export const GENESIS_HASH: Digest = blockHash(GENESIS);

/** The certificate on the genesis block. */
export const GENESIS_QC: QuorumCert = { view: 0, valueHash: GENESIS_HASH, signatures: [] };
