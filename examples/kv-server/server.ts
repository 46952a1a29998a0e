/**
 * A key-value HTTP server whose state is replicated by a knhk cluster: every write and every read
 * is a command ordered by the cluster's consensus protocol, and a response is sent only once the
 * protocol has proved the command committed (f+1 matching replies for PBFT and HotStuff, the
 * leader's committed entry for Raft).
 *
 * ```text
 * PUT    /kv/:key        body = the value (UTF-8)   → 200 { key, previous, position, view }
 * GET    /kv/:key        a linearizable read        → 200 { key, value, position } | 404
 * DELETE /kv/:key                                   → 200 { key, previous, deleted, position, view }
 * GET    /status         the cluster and its replicas
 * GET    /receipts/:seq  the receipts of the commands ordered at a position, each verified
 * ```
 *
 * Uses only `node:http` and the package's public API. Run it with
 * `node dist/examples/kv-server/server.js --port 8080 --protocol pbft --n 4 --policy hybrid`.
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ActorSystem, KnhkError, ReceiptError, kvResponse, receiptToJson, type Cluster, type ConsensusAlgorithm, type KvOperation, type SignaturePolicy, type Submitted } from '../../index.js';

/** Longest key, in UTF-8 bytes (the key-value state machine's limit). */
export const MAX_KEY_BYTES = 1024;

/** Longest value, in UTF-16 code units (the key-value state machine's limit; a 64 KiB UTF-8 body always fits). */
export const MAX_VALUE_LENGTH = 1 << 16;

/** Default limit of a request body, in bytes: the key-value state machine holds values of at most 65 536 characters. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** Options of {@link startKvServer}. */
export interface KvServerOptions {
  /** TCP port; 0 (the default) picks a free one — read it back from {@link KvServer.url}. */
  readonly port?: number;
  /** Interface to listen on (default `127.0.0.1`: the server has no authentication). */
  readonly host?: string;
  /** Replication protocol (default `pbft`). */
  readonly protocol?: ConsensusAlgorithm;
  /** Replicas (default 4). */
  readonly n?: number;
  /** Signature policy (default `hybrid`: ML-DSA-65 + Ed25519). */
  readonly policy?: SignaturePolicy;
  /** Where the replicas keep their stores; the state survives a restart of the server. Default: a temporary directory. */
  readonly dataDir?: string;
  /** Passphrase of the replicas' key files (needed with `dataDir` unless `KNHK_KEY_PASSPHRASE` is set). */
  readonly passphrase?: string;
  /** scrypt cost (log2 N) of new key files (default 17; tests lower it). */
  readonly kdfLog2N?: number;
  /** Threads of the system's crypto pool (default: the runtime's). */
  readonly cryptoThreads?: number;
  /** How long a request waits for the cluster before answering 503, ms (default 10 000). */
  readonly requestTimeoutMs?: number;
  /** Largest request body, bytes (default {@link DEFAULT_MAX_BODY_BYTES}); larger ones get 413, and so do values over {@link MAX_VALUE_LENGTH} characters whatever this says. */
  readonly maxBodyBytes?: number;
  /** How long {@link KvServer.close} lets requests in flight finish before cutting their connections, ms (default 5 000). */
  readonly closeGraceMs?: number;
}

/** A running server. */
export interface KvServer {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** The cluster that replicates the state. */
  readonly cluster: Cluster;
  /** Stops accepting connections, lets requests in flight finish (up to the grace period), then stops the cluster and its actor system. Idempotent. */
  close(): Promise<void>;
}

/** A failure that maps to one HTTP answer. */
class HttpError extends Error {
  readonly status: number;
  readonly body: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;
  constructor(status: number, body: Readonly<Record<string, unknown>>, headers: Readonly<Record<string, string>> = {}) {
    super(typeof body['error'] === 'string' ? body['error'] : `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

const methodNotAllowed = (allowed: readonly string[]): HttpError =>
  new HttpError(405, { error: 'method not allowed', allowed }, { allow: allowed.join(', ') });

/** Bytes become unpadded base64url text (the receipts' JSON interchange form); `bigint`s become decimal strings. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64url');
  if (typeof value === 'bigint') return value.toString();
  return value;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = JSON.stringify(body, jsonReplacer);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** Percent-decodes one path segment into a key, or throws a 400. */
function decodeKey(segment: string): string {
  let key: string;
  try {
    key = decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, { error: 'bad key: invalid percent-encoding' });
  }
  if (key.length === 0) throw new HttpError(400, { error: 'bad key: empty' });
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) throw new HttpError(400, { error: `bad key: ${bytes} bytes, at most ${MAX_KEY_BYTES}` });
  return key;
}

/**
 * Reads a UTF-8 body of at most `limit` bytes, or throws a 413 (too large) or 400 (not UTF-8).
 * On a 413 the rest of the body is left unread: Node discards it once the answer is sent (and
 * `connection: close` ends the connection). Destroying the request instead would cut the socket
 * before the client could see the answer.
 */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const tooLarge = (): HttpError => new HttpError(413, { error: 'value too large', limit }, { connection: 'close' });
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const detach = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      detach();
      chunks.length = 0;
      reject(tooLarge());
    };
    const onEnd = (): void => {
      detach();
      try {
        resolve(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks, size)));
      } catch {
        reject(new HttpError(400, { error: 'value is not valid UTF-8' }));
      }
    };
    const onError = (error: Error): void => {
      detach();
      reject(error);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** The route handler for one server: a request in, one JSON answer out. */
function router(cluster: Cluster, options: { timeoutMs: number; maxBodyBytes: number }) {
  const submit = async (op: KvOperation): Promise<{ submitted: Submitted; value: string | null }> => {
    let submitted: Submitted;
    try {
      submitted = await cluster.submit(op, { timeoutMs: options.timeoutMs });
    } catch (error) {
      if (error instanceof KnhkError && error.code === 'ASK_TIMEOUT') {
        // The command may still commit later: the client must not assume it failed.
        throw new HttpError(503, { error: 'timeout', indeterminate: true, timeoutMs: options.timeoutMs });
      }
      throw error;
    }
    const response = kvResponse(submitted.response);
    if (!response.ok) throw new HttpError(500, { error: `the state machine refused the operation: ${response.error ?? 'no reason given'}` });
    return { submitted, value: response.value ?? null };
  };

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const target = req.url ?? '/';
    if (!target.startsWith('/')) throw new HttpError(400, { error: 'bad request target' });
    const end = target.search(/[?#]/);
    const segments = (end === -1 ? target : target.slice(0, end)).split('/').slice(1);
    const method = req.method ?? 'GET';
    const [route, param, ...rest] = segments;

    if (route === 'kv' && param !== undefined && rest.length === 0) {
      if (method !== 'PUT' && method !== 'GET' && method !== 'DELETE') throw methodNotAllowed(['GET', 'PUT', 'DELETE']);
      const key = decodeKey(param);
      if (method === 'PUT') {
        const value = await readBody(req, options.maxBodyBytes);
        if (value.length > MAX_VALUE_LENGTH) throw new HttpError(413, { error: 'value too large', limit: MAX_VALUE_LENGTH, unit: 'UTF-16 code units' });
        const { submitted, value: previous } = await submit({ type: 'put', key, value });
        return sendJson(res, 200, { key, previous, position: submitted.position, view: submitted.view });
      }
      if (method === 'DELETE') {
        const { submitted, value: previous } = await submit({ type: 'delete', key });
        return sendJson(res, 200, { key, previous, deleted: previous !== null, position: submitted.position, view: submitted.view });
      }
      const { submitted, value } = await submit({ type: 'get', key });
      if (value === null) return sendJson(res, 404, { error: 'not found', key, position: submitted.position });
      return sendJson(res, 200, { key, value, position: submitted.position });
    }

    if (route === 'status' && param === undefined) {
      if (method !== 'GET') throw methodNotAllowed(['GET']);
      const replicas = await cluster.status();
      return sendJson(res, 200, { id: cluster.id, protocol: cluster.protocol, n: cluster.n, f: cluster.f, policy: cluster.policy, replicas });
    }

    if (route === 'receipts' && param !== undefined && rest.length === 0) {
      if (method !== 'GET') throw methodNotAllowed(['GET']);
      if (!/^[1-9][0-9]{0,15}$/.test(param) || !Number.isSafeInteger(Number(param))) throw new HttpError(400, { error: 'bad sequence: a positive integer' });
      const position = Number(param);
      const receipts = await cluster.receiptsAt(position, { timeoutMs: options.timeoutMs }).catch((error: unknown) => {
        if (error instanceof ReceiptError && error.code === 'UNAVAILABLE') return undefined;
        throw error;
      });
      if (receipts === undefined) return sendJson(res, 404, { error: 'no receipt', position });
      return sendJson(res, 200, receipts.map(receiptToJson));
    }

    throw new HttpError(404, { error: 'unknown route', path: target });
  };
}

/**
 * Starts an actor system, a cluster in it and an HTTP server in front of the cluster.
 * @throws whatever starting the cluster throws (`ConsensusError`, `ConfigError`, `SpawnError`), or
 *   the listen error (`EADDRINUSE`, …); nothing is left running then.
 */
export async function startKvServer(options: KvServerOptions = {}): Promise<KvServer> {
  const host = options.host ?? '127.0.0.1';
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const closeGraceMs = options.closeGraceMs ?? 5_000;
  const system = await ActorSystem.start(options.cryptoThreads === undefined ? {} : { cryptoThreads: options.cryptoThreads });
  let cluster: Cluster;
  try {
    cluster = await system.spawnCluster({
      protocol: options.protocol ?? 'pbft',
      n: options.n ?? 4,
      ...(options.policy === undefined ? {} : { policy: options.policy }),
      ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
      ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
      ...(options.kdfLog2N === undefined ? {} : { kdfLog2N: options.kdfLog2N }),
    });
  } catch (error) {
    await system.stop();
    throw error;
  }

  const route = router(cluster, { timeoutMs, maxBodyBytes });
  const inFlight = new Set<Promise<void>>();
  const server: Server = createServer((req, res) => {
    const handled = route(req, res).catch((error: unknown) => {
      try {
        if (res.headersSent) throw error;
        if (error instanceof HttpError) return sendJson(res, error.status, error.body, error.headers);
        console.error('kv-server: request failed:', error);
        sendJson(res, 500, { error: 'internal error', ...(error instanceof KnhkError ? { code: error.code } : {}) });
      } catch {
        res.destroy();
      }
    });
    inFlight.add(handled);
    void handled.finally(() => inFlight.delete(handled));
  });

  try {
    await new Promise<void>((listening, failed) => {
      server.once('error', failed);
      server.listen(options.port ?? 0, host, () => {
        server.off('error', failed);
        listening();
      });
    });
  } catch (error) {
    await cluster.stop();
    await system.stop();
    throw error;
  }
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const closed = new Promise<void>((done) => server.close(() => done()));
      server.closeIdleConnections();
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...inFlight]), new Promise<void>((done) => (grace = setTimeout(done, closeGraceMs)))]);
      clearTimeout(grace);
      server.closeAllConnections();
      await closed;
      await cluster.stop();
      await system.stop();
    })();
    return closing;
  };
  return { url, cluster, close };
}

const USAGE = `usage: node dist/examples/kv-server/server.js [options]
  --port <n>         TCP port (default 8080; 0 picks a free one)
  --host <addr>      interface (default 127.0.0.1)
  --protocol <p>     pbft | hotstuff | raft (default pbft)
  --n <n>            replicas (default 4)
  --policy <p>       classical | hybrid | quantum (default hybrid)
  --data-dir <dir>   keep the replicas' stores there (passphrase from KNHK_KEY_PASSPHRASE)
  --kdf-log2n <n>    scrypt cost of new key files (default 17)
  --timeout-ms <n>   how long a request waits for the cluster (default 10000)`;

function integer(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(value)) throw new Error(`--${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
  return value;
}

/** The command line: starts a server and stops it cleanly on SIGINT or SIGTERM. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      protocol: { type: 'string' },
      n: { type: 'string' },
      policy: { type: 'string' },
      'data-dir': { type: 'string' },
      'kdf-log2n': { type: 'string' },
      'timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    console.log(USAGE);
    return;
  }
  const protocols: readonly string[] = ['pbft', 'hotstuff', 'raft'];
  const policies: readonly string[] = ['classical', 'hybrid', 'quantum'];
  if (values.protocol !== undefined && !protocols.includes(values.protocol)) throw new Error(`--protocol must be one of ${protocols.join(', ')}`);
  if (values.policy !== undefined && !policies.includes(values.policy)) throw new Error(`--policy must be one of ${policies.join(', ')}`);
  const n = integer(values.n, 'n');
  const kdfLog2N = integer(values['kdf-log2n'], 'kdf-log2n');
  const requestTimeoutMs = integer(values['timeout-ms'], 'timeout-ms');

  console.error('kv-server: starting the cluster…');
  const server = await startKvServer({
    port: integer(values.port, 'port') ?? 8080,
    host: values.host ?? '127.0.0.1',
    ...(values.protocol === undefined ? {} : { protocol: values.protocol as ConsensusAlgorithm }),
    ...(n === undefined ? {} : { n }),
    ...(values.policy === undefined ? {} : { policy: values.policy as SignaturePolicy }),
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(kdfLog2N === undefined ? {} : { kdfLog2N }),
    ...(requestTimeoutMs === undefined ? {} : { requestTimeoutMs }),
  });
  const { cluster } = server;
  console.log(`kv-server: ${cluster.protocol} n=${cluster.n} f=${cluster.f} policy=${cluster.policy} listening on ${server.url}`);

  let stopping = false;
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => (stopped = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      console.error(`kv-server: ${signal} again, exiting at once`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    stopping = true;
    console.error(`kv-server: ${signal}, stopping (send it again to force)`);
    server.close().then(stopped, (error: unknown) => {
      console.error('kv-server: stopping failed:', error);
      process.exitCode = 1;
      stopped();
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  await done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  console.error('kv-server: stopped');
}

function runDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (runDirectly()) {
  main().catch((error: unknown) => {
    console.error(`kv-server: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  });
}
