/**
 * The cluster agent (actors/cluster-agent.ts) passes on what a replica reports only when the
 * replica it names sent it: a halt or a tree head in another's name, or from no actor at all, is
 * dropped, and a replica's new incarnation saying hello clears its halt.
 */
import test from 'ava';
import { ClusterAgent, type AgentSink } from '../actors/cluster-agent.js';
import { HEALTHY } from '../actors/link-faults.js';
import type { ActorRef } from '../runtime/index.js';
import { Relay } from './fixtures/actors.js';
import { eventually, startSystem } from './helpers/system.js';

/** The sink of a cluster of two replicas, `c/replica-0` and `c/replica-1`, that ignores what `take` does not handle. */
function sinkOf(take: Partial<Pick<AgentSink, 'halted' | 'started' | 'treeHead'>>): AgentSink {
  return {
    replicas: ['c/replica-0', 'c/replica-1'],
    faultsFor: () => ({ links: HEALTHY }),
    rotations: () => [],
    rotationInstalled: () => undefined,
    migrationInstalled: () => undefined,
    rotationAdopted: () => undefined,
    applied: () => undefined,
    halted: () => undefined,
    started: () => undefined,
    evidence: () => undefined,
    treeHead: () => undefined,
    ...take,
  };
}

test('the cluster agent takes a halt only from the replica it names, and a hello of its next incarnation clears it', async (t) => {
  const system = await startSystem(t);
  const reports: string[] = [];
  const sink = sinkOf({ halted: (node, code) => void reports.push(`halted ${node} ${code}`), started: (node) => void reports.push(`started ${node}`) });
  const agent = (await system.spawn(ClusterAgent, { name: 'c/agent', args: sink })) as ActorRef<unknown>;
  const replica = async (i: number): Promise<ActorRef<{ type: 'relay'; to: ActorRef<unknown>; message: unknown } | { type: 'boom' }>> => {
    const ref = system.lookup<{ type: 'relay'; to: ActorRef<unknown>; message: unknown } | { type: 'boom' }>(`c/replica-${i}`);
    return ref ?? system.spawn(Relay, { name: `c/replica-${i}` });
  };
  const say = async (i: number, message: unknown): Promise<void> => (await replica(i)).tell({ type: 'relay', to: agent, message });
  const halt = (node: number): unknown => ({ type: 'halted', node, code: 'STATE_TOO_LARGE', reason: 'too large' });

  await say(0, { type: 'hello', node: 0 });
  await say(1, halt(0));
  agent.tell(halt(0));
  agent.tell(halt(2)); // a node no replica is
  await say(1, { type: 'hello', node: 1 });
  await say(0, halt(0));
  // Each sender's messages arrive in order: once its last report is in, so is what came before.
  await eventually(() => reports.includes('halted 0 STATE_TOO_LARGE') && reports.includes('started 1'));
  await agent.ask({ type: 'rotations' }); // the main thread's tell came before it
  t.deepEqual(reports.filter((r) => r.startsWith('halted')), ['halted 0 STATE_TOO_LARGE'], 'only replica 0 reports its own halt');

  const first = (await replica(0)).incarnation;
  (await replica(0)).tell({ type: 'boom' });
  await eventually(() => (system.lookup('c/replica-0')?.incarnation ?? first) > first);
  await say(0, { type: 'hello', node: 0 });
  await eventually(() => reports.filter((r) => r === 'started 0').length === 2);
  t.is(reports.at(-1), 'started 0', 'the new incarnation is started: its halt is over');
});

test('the cluster agent passes on a tree head only from the replica it names', async (t) => {
  const system = await startSystem(t);
  const heads: number[] = [];
  const sink = sinkOf({ treeHead: (node, signed) => void heads.push(node, signed.treeHead.sequence) });
  const agent = (await system.spawn(ClusterAgent, { name: 'c/agent', args: sink })) as ActorRef<unknown>;
  const replica = await system.spawn(Relay, { name: 'c/replica-1' });
  const head = (node: number, sequence: number): unknown => ({
    type: 'tree-head',
    node,
    signed: {
      treeHead: { version: 1, cluster: 'c', policy: 'classical', sequence, view: 0, size: 1, root: new Uint8Array(32), timestamp: 0 },
      signatures: [{ node: String(node), keyId: '0'.repeat(64), scheme: 'Ed25519', signature: new Uint8Array(64) }],
    },
  });
  replica.tell({ type: 'relay', to: agent, message: head(0, 7) });
  agent.tell(head(1, 8));
  replica.tell({ type: 'relay', to: agent, message: head(1, 9) });
  await eventually(() => heads.length > 0);
  await agent.ask({ type: 'rotations' });
  t.deepEqual(heads, [1, 9], 'replica 1 in its own name only; neither in another\'s nor from outside a replica');
});
