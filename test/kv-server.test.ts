/**
 * examples/kv-server end to end: a 4-replica PBFT cluster on worker threads behind the HTTP
 * server, driven over loopback with fetch().
 */
import test from 'ava';
import { startKvServer, type KvServer } from '../examples/kv-server/server.js';
import { receiptFromJson, verifyReceipt } from '../index.js';

/** How long a request may wait for the cluster before the server answers 503. */
const REQUEST_TIMEOUT_MS = 15_000;

let server: KvServer | undefined;

test.before(async () => {
  server = await startKvServer({ port: 0, host: '127.0.0.1', protocol: 'pbft', n: 4, policy: 'classical', kdfLog2N: 10, cryptoThreads: 2, requestTimeoutMs: REQUEST_TIMEOUT_MS });
});

test.after.always(async () => {
  await server?.close();
});

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

/** Sends a request to `to` (the tests' server unless given) and parses its JSON answer. */
async function call(method: string, path: string, body?: string | Uint8Array | ReadableStream<Uint8Array>, to = server): Promise<Answer> {
  if (to === undefined) throw new Error('the server did not start');
  const init: RequestInit & { duplex?: 'half' } = { method };
  if (body !== undefined) init.body = body;
  if (body instanceof ReadableStream) init.duplex = 'half';
  const res = await fetch(`${to.url}${path}`, init);
  assertJson(res);
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

function assertJson(res: Response): void {
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('application/json')) throw new Error(`${res.status} answer is ${type}, not JSON`);
}

const kv = (key: string): string => `/kv/${encodeURIComponent(key)}`;

test.serial('PUT then GET returns the value, through consensus', async (t) => {
  const first = await call('PUT', kv('alpha'), 'one');
  t.is(first.status, 200);
  t.like(first.body, { key: 'alpha', previous: null });
  t.true(Number.isSafeInteger(first.body['position']) && (first.body['position'] as number) > 0);
  t.true(Number.isSafeInteger(first.body['view']));

  const second = await call('PUT', kv('alpha'), 'two');
  t.is(second.status, 200);
  t.like(second.body, { key: 'alpha', previous: 'one' });
  t.true((second.body['position'] as number) >= (first.body['position'] as number));

  const read = await call('GET', kv('alpha'));
  t.is(read.status, 200);
  t.like(read.body, { key: 'alpha', value: 'two' });
  t.true((read.body['position'] as number) >= (second.body['position'] as number));
});

test.serial('keys are percent-decoded path segments; values are UTF-8', async (t) => {
  const key = 'ключ / with spaces?&#%';
  const value = 'värde ✓ 🗝️';
  t.is((await call('PUT', kv(key), value)).status, 200);
  const read = await call('GET', kv(key));
  t.is(read.status, 200);
  t.like(read.body, { key, value });
  const empty = await call('PUT', kv('empty-value'), '');
  t.is(empty.status, 200);
  t.like((await call('GET', kv('empty-value'))).body, { key: 'empty-value', value: '' });
});

test.serial('GET of a missing key is 404', async (t) => {
  const missing = await call('GET', kv('never-written'));
  t.is(missing.status, 404);
  t.like(missing.body, { error: 'not found', key: 'never-written' });
  t.true(Number.isSafeInteger(missing.body['position']));
});

test.serial('DELETE removes a key and reports what it held', async (t) => {
  t.is((await call('PUT', kv('doomed'), 'soon gone')).status, 200);
  const removed = await call('DELETE', kv('doomed'));
  t.is(removed.status, 200);
  t.like(removed.body, { key: 'doomed', previous: 'soon gone', deleted: true });
  t.is((await call('GET', kv('doomed'))).status, 404);
  const again = await call('DELETE', kv('doomed'));
  t.is(again.status, 200);
  t.like(again.body, { key: 'doomed', previous: null, deleted: false });
});

test.serial('a value over the size limit is 413, declared or streamed', async (t) => {
  const declared = await call('PUT', kv('big'), 'x'.repeat(64 * 1024 + 1));
  t.is(declared.status, 413);
  t.like(declared.body, { error: 'value too large', limit: 64 * 1024 });

  const chunk = new Uint8Array(40 * 1024).fill(0x79);
  const streamed = await call(
    'PUT',
    kv('big'),
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(chunk);
        controller.enqueue(chunk);
        controller.close();
      },
    }),
  );
  t.is(streamed.status, 413);

  const exactly = await call('PUT', kv('big'), 'x'.repeat(64 * 1024));
  t.is(exactly.status, 200);
  t.is((await call('GET', kv('big'))).status, 200);
});

test.serial('malformed keys and bodies are 400 with a reason', async (t) => {
  for (const path of ['/kv/%zz', '/kv/%C3', '/kv/%E2%82', '/kv/', `/kv/${'k'.repeat(1025)}`, `/kv/${'%C3%A9'.repeat(513)}`]) {
    const answer = await call('PUT', path, 'v');
    t.is(answer.status, 400, path);
    t.regex(String(answer.body['error']), /^bad key/, path);
  }
  t.is((await call('PUT', `/kv/${'k'.repeat(1024)}`, 'v')).status, 200);
  const notUtf8 = await call('PUT', kv('bytes'), new Uint8Array([0x66, 0xff, 0xfe]));
  t.is(notUtf8.status, 400);
  t.like(notUtf8.body, { error: 'value is not valid UTF-8' });
});

test.serial('wrong methods are 405 with Allow; unknown routes are 404', async (t) => {
  const post = await call('POST', kv('alpha'), 'x');
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, PUT, DELETE');
  t.is((await call('DELETE', '/status')).status, 405);
  t.is((await call('PUT', '/receipts/1', 'x')).status, 405);
  for (const path of ['/', '/kv', '/kv/a/b', '/status/x', '/receipts', '/nothing']) {
    const answer = await call('GET', path);
    t.is(answer.status, 404, path);
    t.like(answer.body, { error: 'unknown route' });
  }
});

test.serial('GET /receipts/:seq answers the verified receipts of a position', async (t) => {
  if (server === undefined) return t.fail();
  const put = await call('PUT', '/kv/receipted', 'value');
  const position = (put.body as { position: number }).position;
  const answer = await call('GET', `/receipts/${position}`);
  t.is(answer.status, 200);
  const receipts = (answer.body as unknown as unknown[]).map((json) => receiptFromJson(json));
  t.true(receipts.length >= 1);
  for (const receipt of receipts) {
    t.is(receipt.body.sequence, position);
    t.true(verifyReceipt(receipt, server.cluster.trust).ok);
  }
  t.is((await call('GET', '/receipts/zero')).status, 400);
});

test.serial('GET /status lists the cluster and its 4 replicas, all up', async (t) => {
  const status = await call('GET', '/status');
  t.is(status.status, 200);
  t.like(status.body, { protocol: 'pbft', n: 4, f: 1, policy: 'classical' });
  t.is(typeof status.body['id'], 'string');
  const replicas = status.body['replicas'] as { node: number; up: boolean; role: string }[];
  t.is(replicas.length, 4);
  t.deepEqual(
    replicas.map((r) => [r.node, r.up]),
    [0, 1, 2, 3].map((i) => [i, true]),
  );
});

test.serial('concurrent PUTs to one key all succeed, in one order the final GET agrees with', async (t) => {
  const values = Array.from({ length: 8 }, (_, i) => `w${i}`);
  const answers = await Promise.all(values.map((v) => call('PUT', kv('contended'), v)));
  t.deepEqual(
    answers.map((a) => a.status),
    values.map(() => 200),
  );
  // Each PUT saw the value the PUT ordered just before it wrote: the previous values chain every
  // write, once each, starting from the absent key.
  const after = new Map<string | null, { value: string; position: number }>();
  answers.forEach((a, i) => {
    const previous = a.body['previous'] as string | null;
    t.false(after.has(previous), `two PUTs saw ${previous}`);
    after.set(previous, { value: values[i] as string, position: a.body['position'] as number });
  });
  const order: string[] = [];
  let position = 0;
  for (let next = after.get(null); next !== undefined; next = after.get(next.value)) {
    order.push(next.value);
    t.true(next.position >= position, 'positions follow the order of the writes');
    position = next.position;
  }
  t.is(order.length, values.length, `the writes form one chain: ${order.join(' → ')}`);
  const final = await call('GET', kv('contended'));
  t.is(final.status, 200);
  t.true(values.includes(final.body['value'] as string));
  t.is(final.body['value'], order.at(-1));
});

test.serial('a cluster that cannot answer in time gives 503, indeterminate', async (t) => {
  // A server of its own, whose requests wait 1 s instead of the others' generous 15: this one is
  // meant to time out, and nothing else shares its cluster's crashes.
  const stuck = await startKvServer({ port: 0, host: '127.0.0.1', protocol: 'pbft', n: 4, policy: 'classical', kdfLog2N: 10, cryptoThreads: 2, requestTimeoutMs: 1_000 });
  t.teardown(() => stuck.close());
  // Two of four replicas down: no PBFT quorum (2f+1 = 3), so nothing commits.
  await stuck.cluster.crash(2);
  await stuck.cluster.crash(3);
  const answer = await call('PUT', kv('stuck'), 'maybe', stuck);
  t.is(answer.status, 503);
  t.like(answer.body, { error: 'timeout', indeterminate: true });
});
