/**
 * knhk: an actor runtime for Node.js for replicated, Byzantine-fault-tolerant state machines.
 * The entry re-exports the runtime (`knhk/runtime`) and the signature layer (`knhk/crypto`).
 * @packageDocumentation
 */
export * from './runtime/index.js';
export * from './protocols/crypto/index.js';
