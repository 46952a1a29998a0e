/**
 * comlink's adapter for Node's `MessagePort`, typed. comlink ships it as a UMD module whose
 * declared default export does not survive Node's CommonJS interop in the type system.
 */
import adapter from 'comlink/dist/umd/node-adapter.js';
import type { Endpoint } from 'comlink';
import type { MessagePort } from 'node:worker_threads';

/** Wraps a Node `MessagePort` as a comlink endpoint. */
export const nodeEndpoint = adapter as unknown as (port: MessagePort) => Endpoint;
