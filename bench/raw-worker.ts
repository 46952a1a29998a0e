/**
 * The baseline of the actor benchmark: plain `MessagePort.postMessage` between two worker threads,
 * one message per call, with the same payloads knhk carries.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';

/** Commands from the benchmark driver. */
export type RawCommand =
  | { readonly op: 'blast'; readonly count: number; readonly size: number }
  | { readonly op: 'pingpong'; readonly count: number; readonly size: number }
  | { readonly op: 'expect'; readonly count: number };

const port = (workerData as { port: MessagePort }).port;
const control = parentPort as NonNullable<typeof parentPort>;
let received = 0;
let expected = -1;

port.on('message', (msg: { type: string; seq: number; body: Uint8Array }) => {
  if (msg.type === 'ping') {
    port.postMessage({ type: 'pong', seq: msg.seq, body: msg.body });
    return;
  }
  if (msg.type !== 'data') return;
  if (++received === expected) control.postMessage({ op: 'received' });
});

control.on('message', async (cmd: RawCommand) => {
  if (cmd.op === 'expect') {
    received = 0;
    expected = cmd.count;
    control.postMessage({ op: 'ready' });
    return;
  }
  const body = new Uint8Array(cmd.size).fill(7);
  const t0 = performance.now();
  if (cmd.op === 'blast') {
    for (let seq = 0; seq < cmd.count; seq++) port.postMessage({ type: 'data', seq, body });
    control.postMessage({ op: 'sent', ms: performance.now() - t0 });
    return;
  }
  for (let seq = 0; seq < cmd.count; seq++) {
    await new Promise<void>((resolve) => {
      port.once('message', () => resolve());
      port.postMessage({ type: 'ping', seq, body });
    });
  }
  control.postMessage({ op: 'done', ms: performance.now() - t0 });
});
