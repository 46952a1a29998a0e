/**
 * The wire form of runtime signals, validated like any other message.
 */
import { t } from '../schema/schema.js';

const serializedError = t.object({
  name: t.string({ maxLength: 256 }),
  message: t.string(),
  code: t.optional(t.string({ maxLength: 64 })),
  stack: t.optional(t.string()),
});

/** Schema of a serialized error. */
export const serializedErrorSchema = serializedError;

/** Schema of signals as they travel between threads. */
export const signalSchema = t.variants({
  terminated: {
    ref: t.ref(),
    reason: t.object({ kind: t.oneOf('normal', 'shutdown', 'crash', 'noproc'), error: t.optional(serializedError) }),
  },
  undeliverable: { to: t.ref(), code: t.string({ maxLength: 64 }), message: t.string() },
});
