/**
 * Receipt fetching and tree-head collection on real threads, with one replica that lies. The
 * liar is an actor put in a replica's place under its name, once the cluster's supervisor has
 * stopped the real one: the cluster and its agent know replicas by name only, as they know a
 * faulty one. It answers receipt requests from an honest replica's answers, twisted as it is told,
 * and reports tree heads signed by the replaced replica's signer, which a faulty replica holds.
 * Starting a cluster takes seconds, so each group of tests shares one, the liar told a lie per test.
 */
import test, { type ExecutionContext } from 'ava';
import { ActorSystem } from '../actors/system.js';
import { EXECUTIONS_KEPT, type Cluster, type Submitted } from '../actors/cluster.js';
import type { EvidenceReport } from '../actors/evidence-log.js';
import { BINARY_SCHEMAS, receiptFromJson, receiptToJson, verifyReceipt, type Receipt, type SignedTreeHead, type TreeHead } from '../protocols/receipts/index.js';
import type { KeyId, SchemeName } from '../protocols/crypto/index.js';
import { defineBehavior, t as schema, type ActorRef, type Infer } from '../runtime/index.js';
import { testSeed } from './helpers/seed.js';
import { eventually } from './helpers/system.js';

/** What the liar says instead of the honest answer: each lie is about one kind of request. */
const LIES = ['unknown-position', 'silence', 'other-receipt', 'tampered-receipt', 'not-json', 'empty-batch', 'cut-batch', 'reordered-batch'] as const;
type Lie = (typeof LIES)[number];

/** `bytes` with the first one's bits under `mask` flipped: a value no honest replica made. */
const flipped = (bytes: Uint8Array, mask = 1): Uint8Array => Uint8Array.from(bytes, (byte, i) => (i === 0 ? byte ^ mask : byte));

const subjectFields = { client: schema.string({ maxLength: 128 }), timestamp: schema.uint() };

interface LiarArgs {
  /** The replica whose answers it twists. */
  readonly honest: string;
  readonly agent: string;
  /** The replica it stands in for. */
  readonly node: number;
}

const liarMessages = schema.variants({
  locate: subjectFields,
  receipt: { ...subjectFields, signed: BINARY_SCHEMAS.signedTreeHead },
  'receipts-at': { position: schema.uint(), signed: BINARY_SCHEMAS.signedTreeHead },
  /** From now on, tell `lie` (`other`: the command whose receipt an `other-receipt` lie hands out). */
  lie: { lie: schema.oneOf(...LIES), other: schema.optional(schema.object(subjectFields)) },
  /** How many answers it has twisted. */
  lies: {},
  /** Reports, as the replica it stands in for: an execution at `executed`, then `heads`. */
  report: { executed: schema.optional(schema.uint()), heads: schema.array(BINARY_SCHEMAS.signedTreeHead, { maxLength: 16 }) },
});

type LiarMessage = Infer<typeof liarMessages>;

/** A faulty replica that answers only receipt requests, and tells the cluster's agent what it is given to tell. */
export const Liar = defineBehavior({
  module: import.meta.url,
  export: 'Liar',
  messages: liarMessages,
  start(ctx, args: LiarArgs) {
    let lie: Lie | undefined;
    let other: { client: string; timestamp: number } | undefined;
    let lies = 0;
    const honestly = async (msg: unknown): Promise<{ json?: string }> => {
      const honest = await ctx.lookup(args.honest);
      return (await honest?.ask(msg, { timeoutMs: 10_000 })) as { json?: string };
    };
    /** A twisted answer, counted. */
    const twisted = (json: string): string => {
      lies++;
      return json;
    };
    return {
      async receive(msg, from) {
        switch (msg.type) {
          case 'lie':
            lie = msg.lie;
            other = msg.other;
            return;
          case 'lies':
            return from.reply({ type: 'lies', lies });
          case 'report': {
            const agent = await ctx.lookup(args.agent);
            if (msg.executed !== undefined) agent?.tell({ type: 'applied', node: args.node, applied: { type: 'snapshot', position: msg.executed, stateHash: new Uint8Array(32) } });
            for (const signed of msg.heads) agent?.tell({ type: 'tree-head', node: args.node, signed });
            return from.reply({ type: 'reported' });
          }
          case 'locate':
            if (lie === 'silence') {
              lies++;
              return;
            }
            if (lie === 'unknown-position') {
              lies++;
              return from.reply({ type: 'located', position: 2 ** 40 });
            }
            return from.reply(await honestly(msg));
          case 'receipt': {
            const answer = await honestly(lie === 'other-receipt' ? { ...msg, ...other } : msg);
            if (answer.json === undefined) return from.reply(answer);
            if (lie === 'other-receipt') return from.reply({ type: 'receipt', json: twisted(answer.json) });
            if (lie === 'not-json') return from.reply({ type: 'receipt', json: twisted('a receipt, honestly') });
            if (lie !== 'tampered-receipt') return from.reply(answer);
            const receipt = receiptFromJson(JSON.parse(answer.json));
            return from.reply({ type: 'receipt', json: twisted(JSON.stringify(receiptToJson({ ...receipt, body: { ...receipt.body, stateHashAfter: flipped(receipt.body.stateHashAfter) } }))) });
          }
          case 'receipts-at': {
            const answer = await honestly(msg);
            if (answer.json === undefined || (lie !== 'empty-batch' && lie !== 'cut-batch' && lie !== 'reordered-batch')) return from.reply(answer);
            const receipts = JSON.parse(answer.json) as unknown[];
            const told = lie === 'empty-batch' ? [] : lie === 'cut-batch' ? receipts.slice(0, -1) : [...receipts].reverse();
            return from.reply({ type: 'receipt', json: twisted(JSON.stringify(told)) });
          }
        }
      },
    };
  },
});

type LiarRef = ActorRef<LiarMessage>;

interface Started {
  readonly system: ActorSystem;
  readonly cluster: Cluster;
}

/** Every system the tests started: a cluster serves the tests of its group, and is stopped once all have run. */
const systems: ActorSystem[] = [];
test.after.always(() => Promise.all(systems.map((system) => system.stop())));

/** A PBFT cluster of four, f = 1 (its seed is logged in `t`'s output). */
async function start(t: ExecutionContext): Promise<Started> {
  const system = await ActorSystem.start({ cryptoThreads: 2 });
  systems.push(system);
  const cluster = await system.spawnCluster({ protocol: 'pbft', n: 4, policy: 'classical', kdfLog2N: 10, seed: testSeed(t) });
  return { system, cluster };
}

/** `count` commands, one after another, each at a position of its own. */
async function submitted(cluster: Cluster, count: number): Promise<Submitted[]> {
  const done: Submitted[] = [];
  for (let k = 0; k < count; k++) done.push(await cluster.submit({ type: 'put', key: `k${k}`, value: `v${k}` }));
  return done;
}

/** Stops replica `node` (its store closed) and puts a liar in its place, twisting replica `honest`'s answers. */
async function liarAt({ system, cluster }: Started, node: number, honest: number): Promise<LiarRef> {
  const name = `${cluster.id}/replica-${node}`;
  const supervisor = system.root.tree().find((s) => s.name === cluster.id);
  if (supervisor === undefined) throw new Error(`no supervisor ${cluster.id}`);
  await supervisor.stopChild(name);
  return system.spawn(Liar, { name, args: { honest: `${cluster.id}/replica-${honest}`, agent: `${cluster.id}/agent`, node } });
}

const liesTold = async (liar: LiarRef): Promise<number> => ((await liar.ask({ type: 'lies' })) as { lies: number }).lies;

/** Every replica but `node` has executed `position`: each can answer for it. */
const othersExecuted = (cluster: Cluster, node: number, position: number): Promise<unknown> =>
  Promise.all([0, 1, 2, 3].filter((i) => i !== node).map((i) => cluster.executedUpTo(i, position)));

/** Fails unless `receipt` is `command`'s and verifies against the cluster's trust. */
function isGenuine(t: ExecutionContext, cluster: Cluster, receipt: Receipt, command: Submitted, what: string): void {
  t.like(receipt.body, { client: command.client, clientTimestamp: command.timestamp }, `${what}: the receipt is the command's`);
  t.true(verifyReceipt(receipt, cluster.trust).ok, `${what}: the receipt verifies`);
}

/** The receipt tests' cluster: a liar at replica 0. */
interface ReceiptScene extends Started {
  readonly liar: LiarRef;
  /** A command whose receipt an `other-receipt` lie hands out, and four later ones, one per request's first replica. */
  readonly other: Submitted;
  readonly commands: readonly Submitted[];
  /** A position that executed more than one command, and its receipts as the honest cluster gave them. */
  readonly batch: { readonly position: number; readonly receipts: readonly Receipt[] };
}

let receiptScene: Promise<ReceiptScene> | undefined;

/** The receipt tests' cluster, started by the first test that needs it. */
const receiptSceneFor = (t: ExecutionContext): Promise<ReceiptScene> =>
  (receiptScene ??= (async () => {
    const started = await start(t);
    const { cluster } = started;
    const [other, ...commands] = await submitted(cluster, 5);
    // Submitted together, while the primary's pipeline is full, they are batched.
    const together = await Promise.all(Array.from({ length: 12 }, (_, k) => cluster.submit({ type: 'put', key: `b${k}`, value: 'v' })));
    const counts = new Map<number, number>();
    for (const { position } of together) counts.set(position, (counts.get(position) ?? 0) + 1);
    const [position] = [...counts].reduce((most, entry) => (entry[1] > most[1] ? entry : most));
    const last = Math.max(...counts.keys());
    // The last command's receipt proves that a head covering every command is signed.
    await cluster.receipt(together.find((r) => r.position === last) as Submitted);
    const receipts = await cluster.receiptsAt(position);
    await othersExecuted(cluster, 0, last);
    return { ...started, liar: await liarAt(started, 0, 1), other: other as Submitted, commands, batch: { position, receipts } };
  })());

/**
 * Asks for the receipts of the scene's commands (as many as replicas, so that each request asks
 * another replica first and one asks the liar first) while the liar tells `lie`, and checks each
 * receipt and that the liar lied once.
 */
async function receiptsDespite(t: ExecutionContext, { cluster, liar, commands, other }: ReceiptScene, lie: Lie): Promise<void> {
  liar.tell({ type: 'lie', lie, other: { client: other.client, timestamp: other.timestamp } });
  const before = await liesTold(liar);
  for (const command of commands) {
    const started = performance.now();
    const receipt = await cluster.receipt(command, { timeoutMs: 20_000 });
    const ms = performance.now() - started;
    isGenuine(t, cluster, receipt, command, lie);
    // A lie costs one replica's wait (2 s), not the request's 20 s: the bound leaves room for a loaded machine.
    t.true(ms < 10_000, `${lie}: a request took ${ms.toFixed(0)} ms`);
  }
  t.is((await liesTold(liar)) - before, 1, `${lie}: one request in ${commands.length} asked the liar first`);
}

test.serial('a replica that lies about where a command executed, or never says, costs one request in n its wait; each gets the genuine receipt', async (t) => {
  t.timeout(120_000);
  const scene = await receiptSceneFor(t);
  await receiptsDespite(t, scene, 'unknown-position');
  await receiptsDespite(t, scene, 'silence');
});

test.serial('a replica that answers with another command\'s receipt, a tampered one or bytes that are no receipt is passed over', async (t) => {
  t.timeout(120_000);
  const scene = await receiptSceneFor(t);
  // Proved against the head the request names, which covers the earlier command too: a receipt that verifies.
  await receiptsDespite(t, scene, 'other-receipt');
  await receiptsDespite(t, scene, 'tampered-receipt');
  await receiptsDespite(t, scene, 'not-json');
});

test.serial('one replica\'s empty, cut-short or reordered list of a position\'s receipts does not decide them', async (t) => {
  t.timeout(120_000);
  const { cluster, liar, batch } = await receiptSceneFor(t);
  t.true(batch.receipts.length >= 2, `position ${batch.position} executed ${batch.receipts.length} commands`);
  const leaves = (receipts: readonly Receipt[]): string[] => receipts.map((r) => `${r.body.batchIndex} ${r.body.client}/${r.body.clientTimestamp}`);
  for (const lie of ['empty-batch', 'cut-batch', 'reordered-batch'] as const) {
    liar.tell({ type: 'lie', lie });
    const before = await liesTold(liar);
    // As many requests as replicas: each asks another replica first, so one asks the liar first,
    // and had one answer been enough, its lie would have decided.
    for (let k = 0; k < cluster.n; k++) {
      const receipts = await cluster.receiptsAt(batch.position, { timeoutMs: 20_000 });
      t.deepEqual(leaves(receipts), leaves(batch.receipts), lie);
      t.true(receipts.every((r) => verifyReceipt(r, cluster.trust).ok), `${lie}: the receipts verify`);
    }
    t.true((await liesTold(liar)) - before >= 1, `${lie}: the liar was asked`);
  }
});

/** The tree-head tests' cluster: a liar at replica 3, so that replicas 0 to 2 go on committing in view 0. */
interface HeadScene extends Started {
  readonly liar: LiarRef;
  /** A head the honest replicas signed, to make others like it. */
  readonly template: TreeHead;
  /** The highest position each replica reported executing. */
  readonly highest: readonly number[];
}

let headScene: Promise<HeadScene> | undefined;

/** The tree-head tests' cluster, started by the first test that needs it. */
const headSceneFor = (t: ExecutionContext): Promise<HeadScene> =>
  (headScene ??= (async () => {
    const started = await start(t);
    const { cluster } = started;
    const highest = [0, 0, 0, 0];
    cluster.onExecuted((node, executed) => {
      highest[node] = Math.max(highest[node] as number, executed.position);
    });
    const [first] = await submitted(cluster, 1);
    const template = (await (first as Submitted).receipt).treeHead;
    await othersExecuted(cluster, 3, template.sequence);
    return { ...started, liar: await liarAt(started, 3, 1), template, highest };
  })());

/** `head` signed by replica `signer`'s signer (a faulty replica holds its own key), once for each name in `as`. */
async function signedBy({ system, cluster }: Started, signer: number, head: TreeHead, as: readonly number[]): Promise<SignedTreeHead[]> {
  const ref = system.lookup(`${cluster.id}/signer-${signer}`);
  if (ref === undefined) throw new Error(`signer ${signer} is not running`);
  const { signature, keyId, scheme } = (await ref.ask({ type: 'sign-tree-head', head })) as { signature: Uint8Array; keyId: KeyId; scheme: SchemeName };
  return as.map((node) => ({ treeHead: head, signatures: [{ node: String(node), keyId, scheme, signature }] }));
}

/** A head for `sequence` that no honest replica signs: `like`'s, with another root. */
const falseHead = (like: TreeHead, sequence: number, salt = 0): TreeHead => ({ ...like, sequence, root: flipped(like.root, 1 + salt) });

/** The highest position that every honest replica (0 to 2) has executed, once they all have. */
async function honestHeight({ cluster, highest }: HeadScene): Promise<number> {
  const top = Math.max(...highest.slice(0, 3));
  await othersExecuted(cluster, 3, top);
  return top;
}

test.serial('a tree head signed in other replicas\' names is dropped: it neither completes a quorum nor accuses them', async (t) => {
  t.timeout(120_000);
  const scene = await headSceneFor(t);
  const { cluster, liar, template } = scene;
  const height = await honestHeight(scene);
  // Replica 3's own signature, labelled as 0's, 1's and 2's: a quorum for a head of its making, at the next positions.
  const forged: SignedTreeHead[] = [];
  for (let k = 1; k <= 4; k++) forged.push(...(await signedBy(scene, 3, falseHead(template, height + k), [0, 1, 2])));
  await liar.ask({ type: 'report', heads: forged });
  const [, next] = await submitted(cluster, 2);
  isGenuine(t, cluster, await cluster.receipt(next as Submitted, { timeoutMs: 20_000 }), next as Submitted, 'after the forgery');
  t.deepEqual(
    cluster.evidence().filter((e) => e.accused !== 3),
    [],
    'no honest replica accused',
  );
});

test.serial('tree heads further than EXECUTIONS_KEPT past what f+1 replicas executed are dropped, whatever one replica reports executing', async (t) => {
  t.timeout(120_000);
  const scene = await headSceneFor(t);
  const { cluster, liar, template } = scene;
  // Replica 3 stopped executing when the liar took its place: the second highest is the honest height.
  const vouched = await honestHeight(scene);
  const far = vouched + 10 * EXECUTIONS_KEPT;
  const forks = (): readonly EvidenceReport[] => cluster.evidence().filter((e) => e.accused === 3 && e.kind === 'receipt-log-fork');
  /** Two heads for `sequence`, each in replica 3's own name: a fork, reported once the heads are taken. */
  const twoHeads = async (sequence: number): Promise<SignedTreeHead[]> => [
    ...(await signedBy(scene, 3, falseHead(template, sequence, 0), [3])),
    ...(await signedBy(scene, 3, falseHead(template, sequence, 1), [3])),
  ];
  const [signed] = await signedBy(scene, 3, falseHead(template, vouched + 1), [3]);
  const badSignature: SignedTreeHead = { ...(signed as SignedTreeHead), signatures: (signed as SignedTreeHead).signatures.map((s) => ({ ...s, signature: flipped(s.signature) })) };
  await liar.ask({
    type: 'report',
    // Only the liar vouches for `far`.
    executed: far,
    // The head whose signature fails is sent last: once it is reported, so are the heads taken before it.
    heads: [...(await twoHeads(far)), ...(await twoHeads(vouched + EXECUTIONS_KEPT + 1)), ...(await twoHeads(vouched + EXECUTIONS_KEPT)), badSignature],
  });
  // Signatures are checked on the pool's threads, so their verdicts may come in another order: both are awaited.
  await eventually(() => forks().length > 0 && cluster.evidence().some((e) => e.accused === 3 && e.kind === 'invalid-tree-head-signature'));
  t.is(forks()[0]?.count, 1, 'one fork taken: at the last position within reach');
  t.regex(forks()[0]?.detail ?? '', new RegExp(`position ${vouched + EXECUTIONS_KEPT} `));
});
