/**
 * Client commands and the replicated log's entries.
 *
 * A command carries its client's id and a per-client timestamp that grows with every new request
 * (Castro & Liskov §4.1; the Raft thesis §6.3 calls the pair a session). Replicas execute a given
 * (client, timestamp) at most once, so a retried request is answered, never applied twice.
 */
import { t, type Infer } from '../../schema/schema.js';
import { digestOf, type Digest } from './codec.js';

/** Largest command payload a replica accepts. */
export const MAX_COMMAND_BYTES = 1 << 20;

/** Schema of a {@link Command}. */
export const commandSchema = t.object({
  client: t.string({ maxLength: 128 }),
  timestamp: t.uint(),
  payload: t.bytes({ maxLength: MAX_COMMAND_BYTES }),
});

/** A client command: opaque bytes for the state machine, tagged with its client and timestamp. */
export type Command = Infer<typeof commandSchema>;

/** Builds a command with its fields in schema order (the order its digest depends on). */
export function command(client: string, timestamp: number, payload: Uint8Array): Command {
  return { client, timestamp, payload };
}

/**
 * A command's identity as a map key: its client and timestamp, which tell a client's commands
 * apart (PBFT §4.1). The timestamp, digits only, follows the last NUL, so no two commands share a key.
 */
export function commandKey(cmd: Pick<Command, 'client' | 'timestamp'>): string {
  return `${cmd.client}\u0000${cmd.timestamp}`;
}

/** The digest a command is known by. */
export function commandDigest(cmd: Command): Digest {
  return digestOf(cmd);
}

/** The most commands one log position can carry. */
export const MAX_BATCH_COMMANDS = 4096;

/** Schema of a batch of commands ordered at one log position. */
export const batchSchema = t.array(commandSchema, { maxLength: MAX_BATCH_COMMANDS });

/**
 * One position of a replicated log: PBFT's sequence number, HotStuff's block height, Raft's log
 * index, with the view or term it was ordered in and the commands it carries (Raft: one command,
 * or none for a leader's no-op and configuration entries).
 */
export interface LogEntry {
  readonly position: number;
  readonly view: number;
  readonly commands: readonly Command[];
}
