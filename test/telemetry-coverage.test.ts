/**
 * The live check (seed: test_consensus_telemetry_coverage, test_crypto_telemetry_coverage): real
 * clusters of the three protocols run through commits, a Byzantine primary, a crash and restart,
 * a key rotation, a signature policy step, receipts and a command a state machine throws on, with
 * every thread's telemetry exported to the main thread; what was emitted is compared with the
 * registry both ways. Midway, the Prometheus endpoint is scraped over loopback.
 */
import test, { type ExecutionContext } from 'ava';
import { trace } from '@opentelemetry/api';
import type { MetricData } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ActorSystem } from '../actors/system.js';
import type { Cluster } from '../actors/cluster.js';
import type { LiveCheckReport } from '../registry/live-check.js';
import { Counter } from './fixtures/actors.js';
import { POISON, ThrowingLedger } from './fixtures/state-machines.js';
import { checkTelemetry, freePort } from './helpers/telemetry.js';

async function commit(cluster: Cluster, prefix: string, count: number): Promise<void> {
  for (let k = 0; k < count; k++) await cluster.submit({ type: 'put', key: `${prefix}-${k % 7}`, value: `v${k}` }, { timeoutMs: 30_000 });
}

/** A step of the scenario may take this long before the run fails naming it, ms (inside ava's 2-minute inactivity limit). */
const STEP_LIMIT_MS = 45_000;

/**
 * Runs one step of the scenario, named on stderr as it starts; past {@link STEP_LIMIT_MS} the run
 * fails with the step's name and the cluster's status instead of stalling the suite.
 */
async function step<T>(label: string, cluster: Cluster | undefined, work: () => Promise<T>): Promise<T> {
  process.stderr.write(`telemetry-coverage: ${label}\n`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const status = cluster === undefined ? Promise.resolve('') : cluster.status().then((all) => all.map((r) => `${r.node}: ${r.role} view ${r.view} commit ${r.commitIndex}`).join('; '));
      void status.then((text) => reject(new Error(`step "${label}" did not finish within ${STEP_LIMIT_MS / 1000} s ${text}`)), reject);
    }, STEP_LIMIT_MS);
  });
  try {
    return await Promise.race([work(), late]);
  } finally {
    clearTimeout(timer);
  }
}

interface Run {
  readonly report: LiveCheckReport;
  readonly crypto: LiveCheckReport;
  readonly scrape: string;
  /** The `crypto.policy` of every `consensus.latency` series. */
  readonly latencyPolicies: ReadonlySet<unknown>;
}

/** One run feeds both tests: starting clusters of all three protocols twice would double the suite's time. */
let run: Promise<Run> | undefined;

function runOnce(t: ExecutionContext): Promise<Run> {
  run ??= (async () => {
    const exporter = new InMemorySpanExporter();
    const port = await freePort();
    const system = await ActorSystem.start({ cryptoThreads: 2, telemetry: { spanProcessors: [new SimpleSpanProcessor(exporter)], prometheus: { port } } });
    // A thread's metrics end with it, so each cluster's are read before it stops.
    const metrics: MetricData[] = [];
    const snapshot = async (): Promise<void> => {
      const collected = await system.telemetry?.collect();
      metrics.push(...(collected?.resourceMetrics.scopeMetrics ?? []).flatMap((s) => s.metrics));
    };
    try {
      // A message sent inside a span is handled inside a child span; a handler that throws records the exception.
      const counter = await system.spawn(Counter, { name: 'traced', thread: true, args: { from: 0 } });
      const tracer = trace.getTracer('knhk.test');
      await tracer.startActiveSpan('client.request', async (span) => {
        await counter.ask({ type: 'boom' }).catch(() => undefined);
        span.end();
      });
      const pbft = await system.spawnCluster({ protocol: 'pbft', n: 4, policy: 'hybrid', kdfLog2N: 10 });
      await step('pbft: commits', pbft, () => commit(pbft, 'p', 12));
      const submitted = await step('pbft: a command for its receipt', pbft, () => pbft.submit({ type: 'put', key: 'receipt', value: 'r' }));
      // Asked inside a span, the replica that assembles the receipt records it on its handling span.
      await step('pbft: a traced receipt', pbft, () =>
        tracer.startActiveSpan('client.receipt', async (span) => {
          await submitted.receipt;
          span.end();
        }),
      );
      // Metrics are read from live threads: the replica that assembled the receipt may be the one
      // crashed below, and its counters go with its thread.
      await snapshot();
      // A scrape over loopback in the middle of the run finds consensus and crypto metrics with values.
      const scrape = await (await fetch(system.telemetry?.prometheusUrl as string)).text();
      // A primary that signs two proposals for one sequence: backups hold both and prove it.
      pbft.byzantine(0, 'double-vote');
      await step('pbft: a double-voting primary', pbft, () => commit(pbft, 'q', 6));
      pbft.byzantine(0, null);
      // A backup that signs with garbage: its messages fail verification and are refused.
      pbft.byzantine(2, 'forge');
      await step('pbft: a forging backup', pbft, () => commit(pbft, 'x', 4));
      pbft.byzantine(2, null);
      // A primary cut off from the backups: its proposal cannot commit, the backups change view and
      // commit the command in the next one, and the old primary's proposal is abandoned.
      const primary = (await pbft.status()).find((s) => s.role === 'primary')?.node ?? 0;
      pbft.partition([[primary], [0, 1, 2, 3].filter((i) => i !== primary)]);
      await step('pbft: an isolated primary', pbft, () => commit(pbft, 'v', 2));
      pbft.heal();
      await step('pbft: healed', pbft, () => commit(pbft, 'w', 2));
      await step('pbft: replica 3 crashed', pbft, async () => {
        await pbft.crash(3);
        await commit(pbft, 'r', 12);
      });
      await step('pbft: replica 3 restarted and caught up', pbft, async () => {
        await pbft.restart(3);
        const last = await pbft.submit({ type: 'get', key: 'r-0' });
        await pbft.executedUpTo(3, last.position);
      });
      // Agreed through consensus, installed by the verifier, which records crypto.key.rotation.
      await step('pbft: replica 1 rotates its key', pbft, async () => {
        await pbft.rotateKey(1);
        await commit(pbft, 'k', 2);
      });
      // A step of the signature policy, every member's key at once: one crypto.policy.migrate trace.
      await step('pbft: the cluster migrates to the quantum policy', pbft, async () => {
        await pbft.migratePolicy('quantum');
        await commit(pbft, 'm', 2);
      });
      await snapshot();
      await pbft.stop();

      const hotstuff = await system.spawnCluster({ protocol: 'hotstuff', n: 4, policy: 'classical', kdfLog2N: 10 });
      await step('hotstuff: commits', hotstuff, () => commit(hotstuff, 'h', 12));
      await snapshot();
      await hotstuff.stop();

      const raft = await system.spawnCluster({ protocol: 'raft', n: 3, policy: 'classical', kdfLog2N: 10 });
      await step('raft: commits', raft, () => commit(raft, 'f', 8));
      await step('raft: the leader crashed, restarted', raft, async () => {
        const leader = (await raft.status()).find((s) => s.role === 'leader')?.node ?? 0;
        await raft.crash(leader);
        await commit(raft, 'g', 8);
        await raft.restart(leader);
        await commit(raft, 'k', 4);
      });
      await snapshot();
      await raft.stop();

      // A state machine that throws on a command answers it empty, and each replica counts it.
      const throwing = await system.spawnCluster({ protocol: 'raft', n: 3, policy: 'classical', kdfLog2N: 10, stateMachine: ThrowingLedger, stateMachineArgs: { overdraft: 0 } });
      await step('raft: a command the state machine throws on', throwing, async () => {
        const { position } = await throwing.submit(POISON);
        await Promise.all([0, 1, 2].map((i) => throwing.executedUpTo(i, position)));
      });
      await snapshot();
      await throwing.stop();

      await system.telemetry?.flush();
      // The test's own spans (scope knhk.test) are the caller's, not the system's.
      const spans = exporter.getFinishedSpans().filter((span) => span.instrumentationScope.name !== 'knhk.test');
      t.log(`${spans.length} spans, ${metrics.length} metrics`);
      const isCrypto = (file: string, name: string): boolean => file === 'crypto.yaml' || name.startsWith('crypto.') || name.startsWith('receipt.');
      return {
        report: checkTelemetry(spans, metrics, { declared: (file, name) => !isCrypto(file, name) }),
        crypto: checkTelemetry(spans, metrics, { declared: (file, name) => isCrypto(file, name) }),
        scrape,
        latencyPolicies: new Set(metrics.filter((m) => m.descriptor.name === 'consensus.latency').flatMap((m) => m.dataPoints.map((p) => p.attributes['crypto.policy']))),
      };
    } finally {
      await system.stop();
    }
  })();
  return run;
}

/** A series' value in Prometheus' text format (the first one whose line starts with `name{` or `name `). */
function sampled(scrape: string, name: string): number {
  const line = scrape.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test.serial('test_consensus_telemetry_coverage', async (t) => {
  t.timeout(240_000);
  const { report, scrape, latencyPolicies } = await runOnce(t);
  t.log(`declared consensus and runtime signals emitted: ${report.coverage.emitted}/${report.coverage.declared}`);
  t.deepEqual(report.undeclared, [], 'everything emitted is declared, with its declared attributes, types, units and instruments');
  t.deepEqual(report.missing, [], 'every declared consensus and runtime signal and attribute was emitted');
  t.true(sampled(scrape, 'consensus_throughput_total') > 0, 'the scrape shows commits');
  t.true(sampled(scrape, 'consensus_proposal_committed_total') > 0);
  t.true(latencyPolicies.has('quantum'), 'commands after the policy step are measured under the policy it put in force');
});

test.serial('test_crypto_telemetry_coverage', async (t) => {
  t.timeout(240_000);
  const { crypto, scrape } = await runOnce(t);
  t.log(`declared crypto and receipt signals emitted: ${crypto.coverage.emitted}/${crypto.coverage.declared}`);
  t.deepEqual(crypto.undeclared, []);
  t.deepEqual(crypto.missing, [], 'every declared crypto and receipt signal and attribute was emitted');
  t.true(sampled(scrape, 'crypto_sign_duration_count') > 0, 'the scrape shows signatures');
  t.true(sampled(scrape, 'crypto_verify_duration_count') > 0);
});
