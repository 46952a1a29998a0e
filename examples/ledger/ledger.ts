/**
 * A replicated ledger: a state machine of a knhk user's own, for clusters on worker threads
 * (main.ts runs one). Accounts hold balances; a command (JSON) deposits to an account or transfers
 * between two. A transfer that would take an account below minus `overdraft` (the machine's
 * argument) is refused in its response, as is a command that does not parse: `apply` answers what
 * it cannot carry out, it does not throw. The state is stored and hashed as JSON with the accounts
 * in order. Only `ConsensusState`'s required methods are implemented, so every state a replica
 * stores or sends is the whole ledger.
 * @module
 */
import { createHash } from 'node:crypto';
import { defineStateMachine, t, type Command, type ConsensusState } from '../../index.js';

/** A ledger command. */
export type LedgerOperation =
  | { readonly type: 'deposit'; readonly account: string; readonly amount: number }
  | { readonly type: 'transfer'; readonly from: string; readonly to: string; readonly amount: number };

/** What a ledger command is answered with: the balances it changed, or why it changed none. */
export type LedgerResponse = { readonly ok: true; readonly balances: Record<string, number> } | { readonly ok: false; readonly reason: string };

const operationSchema = t.variants({
  deposit: { account: t.string({ maxLength: 64 }), amount: t.uint() },
  transfer: { from: t.string({ maxLength: 64 }), to: t.string({ maxLength: 64 }), amount: t.uint() },
});
// As many accounts as `apply` opens: the cluster bounds the whole state (MAX_STATE_BYTES), and a
// bound of the ledger's own below it would refuse a snapshot the ledger itself wrote.
const snapshotSchema = t.array(t.array(t.unknown(), { maxLength: 2 }), { maxLength: Number.MAX_SAFE_INTEGER });

const utf8 = new TextEncoder();
const json = (value: unknown): Uint8Array => utf8.encode(JSON.stringify(value));
const parsed = (bytes: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(bytes));

/** The ledger itself; {@link Ledger} defines it for clusters. */
export class LedgerMachine implements ConsensusState {
  readonly #overdraft: number;
  #balances = new Map<string, number>();

  /** An empty ledger whose accounts may go down to `-overdraft`. */
  constructor(overdraft: number) {
    this.#overdraft = overdraft;
  }

  /** Carries out a deposit or a transfer, or says why not. */
  apply(command: Command): Uint8Array {
    let operation;
    try {
      operation = operationSchema.parse(parsed(command.payload));
    } catch {
      return json({ ok: false, reason: 'malformed' } satisfies LedgerResponse);
    }
    const balance = (account: string): number => this.#balances.get(account) ?? 0;
    if (operation.type === 'deposit') {
      this.#balances.set(operation.account, balance(operation.account) + operation.amount);
      return json({ ok: true, balances: { [operation.account]: balance(operation.account) } } satisfies LedgerResponse);
    }
    const { from, to, amount } = operation;
    if (balance(from) - amount < -this.#overdraft) return json({ ok: false, reason: 'insufficient funds' } satisfies LedgerResponse);
    this.#balances.set(from, balance(from) - amount);
    this.#balances.set(to, balance(to) + amount);
    return json({ ok: true, balances: { [from]: balance(from), [to]: balance(to) } } satisfies LedgerResponse);
  }

  /** SHA-256 of the snapshot. */
  hash(): Uint8Array {
    return new Uint8Array(createHash('sha256').update(this.snapshot()).digest());
  }

  /** The accounts and balances, in account order, as JSON. */
  snapshot(): Uint8Array {
    return json([...this.#balances].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /** Replaces the ledger with a snapshot's; throws on bytes that are not one. */
  restore(snapshot: Uint8Array): void {
    const balances = new Map<string, number>();
    for (const [account, balance] of snapshotSchema.parse(parsed(snapshot))) {
      if (typeof account !== 'string' || !Number.isSafeInteger(balance)) throw new Error('not a ledger snapshot');
      balances.set(account, balance as number);
    }
    this.#balances = balances;
  }
}

/** The ledger's arguments: `overdraft`, how far below zero a transfer may take an account. */
export const ledgerArgs = t.object({ overdraft: t.uint() });

/** The ledger for clusters. */
export const Ledger = defineStateMachine({
  name: 'knhk-example/ledger/v1',
  module: import.meta.url,
  export: 'Ledger',
  args: ledgerArgs,
  create: ({ overdraft }) => new LedgerMachine(overdraft),
});

/** A command's payload, for `cluster.submit`. */
export function ledgerPayload(operation: LedgerOperation): Uint8Array {
  return json(operation);
}

/** A command's response, from `cluster.submit`. */
export function ledgerResponse(bytes: Uint8Array): LedgerResponse {
  return parsed(bytes) as LedgerResponse;
}
