/**
 * knhk: an actor runtime for Node.js for replicated, Byzantine-fault-tolerant state machines.
 * @packageDocumentation
 */
export * from './runtime/index.js';
