/**
 * What a cluster takes from one replica's answer to a receipt request, before verifying any
 * signature: an answer is a replica's word, and a faulty replica may send anything that verifies.
 * A receipt proves that its body is in the log a quorum signed; whether the body is the one asked
 * for, and whether a position's receipts are all there are, is checked here.
 */
import { hex } from '../protocols/consensus/index.js';
import { commandHash, receiptFromJson, receiptLeafHash, sameHash, type Json, type Receipt } from '../protocols/receipts/index.js';

/** A receipt in both forms: the JSON one goes to the verifying pool task, the parsed one to the caller. */
export interface ReceiptAnswer {
  readonly json: Json<Receipt>;
  readonly receipt: Receipt;
}

/** The command a receipt is asked for: its session and timestamp, and its payload when known. */
export interface ReceiptSubject {
  readonly client: string;
  readonly timestamp: number;
  readonly payload?: Uint8Array;
}

/** Parsed JSON text, or undefined for text that is not JSON. */
function parsed(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A receipt's two forms, or undefined when `value` does not have the receipt format. */
function answerOf(value: unknown): ReceiptAnswer | undefined {
  try {
    return { json: value as Json<Receipt>, receipt: receiptFromJson(value) };
  } catch {
    return undefined;
  }
}

/**
 * The receipt in a replica's answer (JSON text), if it has the receipt format and its body is
 * `subject`'s: its client and timestamp, and the hash of its payload when that is given. A
 * receipt of another command verifies as well as its own.
 */
export function receiptAnswer(text: string | undefined, subject: ReceiptSubject): ReceiptAnswer | undefined {
  const answer = text === undefined ? undefined : answerOf(parsed(text));
  if (answer === undefined) return undefined;
  const { body } = answer.receipt;
  if (body.client !== subject.client || body.clientTimestamp !== subject.timestamp) return undefined;
  if (subject.payload !== undefined && !sameHash(body.commandHash, commandHash({ payload: subject.payload }))) return undefined;
  return answer;
}

/** A replica's answer for every receipt of one position, and what identifies it among answers. */
export interface PositionAnswer {
  readonly receipts: readonly ReceiptAnswer[];
  /**
   * The answer's leaves (hex leaf hashes in order): replicas that give the same key say the same
   * thing about the position, whichever tree head their proofs lead to.
   */
  readonly key: string;
}

/**
 * The receipts in a replica's answer (JSON text, an array) for `position`, if each has the
 * receipt format and they are the position's batch in order: every body at `position`, batch
 * indexes 0, 1, … (once they verify, each is the log's leaf for its place in the batch). Whether
 * the batch is whole (and an empty answer true) no single answer can show: the caller needs as
 * many matching answers as prove a reply.
 */
export function positionAnswer(text: string | undefined, position: number): PositionAnswer | undefined {
  const value = text === undefined ? undefined : parsed(text);
  if (!Array.isArray(value)) return undefined;
  const receipts: ReceiptAnswer[] = [];
  for (const item of value as unknown[]) {
    const answer = answerOf(item);
    const body = answer?.receipt.body;
    if (answer === undefined || body === undefined || body.sequence !== position || body.batchIndex !== receipts.length) return undefined;
    receipts.push(answer);
  }
  return { receipts, key: receipts.map((r) => hex(receiptLeafHash(r.receipt.body))).join(',') };
}
