import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkRegistry, conforms, formatProblem, loadRegistry, REGISTRY_DIR, RegistryError, type Problem } from '../registry/check.js';
import { nameProblem } from '../registry/naming.js';
import { unitProblem } from '../registry/ucum.js';

const CLI = fileURLToPath(new URL('../registry/check.js', import.meta.url));

/** A copy of the project's registry in a temporary directory, removed when the test ends. */
function registryCopy(t: ExecutionContext, extra: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'knhk-registry-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const name of readdirSync(REGISTRY_DIR).filter((n) => n.endsWith('.yaml'))) copyFileSync(join(REGISTRY_DIR, name), join(dir, name));
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, name), text);
  return dir;
}

/** One group per problem the check must find; each group breaks exactly one rule. */
const BROKEN = `groups:
  - id: metric.consensus.latency
    type: metric
    metric_name: consensus.latency
    instrument: histogram
    unit: ms
    brief: Declared a second time.
    stability: development
  - id: span.consensus.orphan
    type: span
    span_kind: internal
    brief: Refers to an attribute nobody defines.
    stability: development
    attributes:
      - ref: consensus.no_such_attribute
  - id: metric.consensus.commit.size
    type: metric
    metric_name: consensus.commit.size
    instrument: histogram
    unit: bytes
    brief: A unit that is not UCUM.
    stability: development
  - id: metric.consensus.commit_time_ms
    type: metric
    metric_name: consensus.commit_time_ms
    instrument: histogram
    unit: ms
    brief: A unit inside the name.
    stability: development
  - id: event.consensus.unstable
    type: event
    name: consensus.unstable
    brief: No stability.
  - id: metric.consensus.retries
    type: metric
    metric_name: consensus.retries
    instrument: meter
    unit: '{retry}'
    brief: An instrument the schema does not know.
    stability: development
`;

const EXPECTED: ReadonlyArray<readonly [Problem['rule'], string]> = [
  ['duplicate-id', 'metric.consensus.latency'],
  ['unresolved-ref', 'span.consensus.orphan'],
  ['unit', 'metric.consensus.commit.size'],
  ['naming', 'metric.consensus.commit_time_ms'],
  ['stability', 'event.consensus.unstable'],
  ['schema', 'metric.consensus.retries'],
];

test('the registry passes its check', (t) => {
  t.deepEqual(checkRegistry().map(formatProblem), []);
});

test('the registry declares what the code emits today, with the code\'s names, kinds and units', (t) => {
  const registry = loadRegistry();
  const span = registry.spans.get('actor.receive');
  t.is(span?.kind, 'consumer');
  t.deepEqual(span?.attributes.map((a) => [a.id, a.requirementLevel]), [['actor.name', 'required'], ['actor.message.type', 'required']]);
  t.deepEqual(registry.events.get('exception')?.attributes.map((a) => a.id), ['exception.type', 'exception.message', 'exception.stacktrace']);
  for (const name of ['crypto.sign', 'crypto.verify']) {
    const ids = registry.spans.get(name)?.attributes.map((a) => a.id) ?? [];
    for (const id of ['crypto.algorithm', 'crypto.backend', 'crypto.duration_us', 'crypto.chatman_ticks', 'crypto.failure_reason']) t.true(ids.includes(id), `${name} ${id}`);
  }
  t.true(registry.spans.get('crypto.verify')?.attributes.some((a) => a.id === 'crypto.verified'));
  const metrics: ReadonlyArray<readonly [string, string, string, readonly string[]]> = [
    ['actor.handler.ticks', 'histogram', '{tick}', ['actor.name']],
    ['actor.dead_letters', 'counter', '{message}', ['actor.dead_letter.reason']],
    ['actor.restarts', 'counter', '{restart}', ['actor.name']],
    ['actor.event_loop.delay', 'gauge', 'ms', ['thread.id']],
    ['crypto.sign.duration', 'histogram', 'us', ['crypto.algorithm', 'crypto.backend']],
    ['crypto.verify.duration', 'histogram', 'us', ['crypto.algorithm', 'crypto.backend']],
    ['crypto.chatman.ticks', 'histogram', '{tick}', ['crypto.algorithm', 'crypto.backend', 'crypto.operation']],
  ];
  for (const [name, instrument, unit, attributes] of metrics) {
    const metric = registry.metrics.get(name);
    t.like(metric, { instrument, unit }, name);
    t.deepEqual(metric?.attributes.map((a) => a.id), [...attributes], name);
  }
  t.deepEqual(registry.attributes.get('actor.dead_letter.reason')?.enumValues, [
    'not-running', 'unreachable', 'invalid', 'mailbox-full', 'dropped-oldest', 'undelivered-at-exit', 'late-reply',
  ]);
  t.is(registry.attributes.get('thread.id')?.type, 'int');
  t.is(registry.attributes.get('crypto.verified')?.type, 'boolean');
});

test('the registry declares everything issue 7 asks for', (t) => {
  const registry = loadRegistry();
  const spans = ['consensus.pbft.round', 'consensus.hotstuff.block', 'consensus.raft.log_entry', 'consensus.state_transition', 'crypto.sign', 'crypto.verify', 'crypto.keygen', 'crypto.hybrid.breakdown'];
  const events = ['consensus.finality', 'consensus.view_change', 'crypto.policy.check', 'crypto.key.rotation', 'crypto.receipt.generated'];
  const attributes = [
    'consensus.algorithm', 'consensus.view', 'consensus.sequence', 'consensus.phase', 'consensus.quorum_size', 'consensus.received_votes',
    'consensus.state_hash_before', 'consensus.state_hash_after', 'consensus.node_id', 'crypto.algorithm', 'crypto.backend', 'crypto.duration_us',
    'crypto.chatman_ticks', 'crypto.verified', 'crypto.failure_reason', 'crypto.policy', 'crypto.signature_type',
  ];
  const metrics = [
    'consensus.latency', 'consensus.throughput', 'consensus.view_changes', 'consensus.byzantine_detected', 'crypto.sign.duration',
    'crypto.verify.duration', 'crypto.chatman.ticks', 'receipt.generated', 'consensus.proposal.committed', 'consensus.proposal.applied',
    'consensus.proposal.pending', 'consensus.proposal.failed', 'consensus.leader.changes', 'consensus.has_leader', 'actor.restarts',
    'actor.mailbox.depth', 'actor.event_loop.delay', 'actor.handler.ticks', 'actor.dead_letters', 'receipt.log.entries',
  ];
  t.deepEqual(spans.filter((n) => !registry.spans.has(n)), []);
  t.deepEqual(events.filter((n) => !registry.events.has(n)), []);
  t.deepEqual(attributes.filter((n) => !registry.attributes.has(n)), []);
  t.deepEqual(metrics.filter((n) => !registry.metrics.has(n)), []);
  t.like(registry.metrics.get('consensus.latency'), { instrument: 'histogram', unit: 'ms' });
  t.like(registry.metrics.get('consensus.throughput'), { instrument: 'counter', unit: '{command}' });
  t.deepEqual(registry.attributes.get('consensus.phase')?.enumValues?.slice(0, 2), ['pre-prepare', 'prepare']);
});

test('a broken copy fails, with each problem reported once at its group and nothing else', (t) => {
  const dir = registryCopy(t, { 'broken.yaml': BROKEN });
  const problems = checkRegistry(dir);
  const found = problems.map((p) => `${p.rule} ${p.group ?? ''}`);
  for (const [rule, group] of EXPECTED) t.true(found.includes(`${rule} ${group}`), `${rule} at ${group}:\n${problems.map(formatProblem).join('\n')}`);
  // The duplicate metric is also a duplicate group id; nothing outside the broken groups is blamed.
  t.deepEqual([...new Set(problems.map((p) => p.group ?? ''))].sort(), EXPECTED.map(([, g]) => g).sort());
  t.true(problems.every((p) => p.line !== undefined));
  t.true(problems.some((p) => p.rule === 'unit' && p.message.includes('By')));
  const error = t.throws(() => loadRegistry(dir), { instanceOf: RegistryError });
  t.is(error?.problems.length, problems.length);
});

test('YAML errors, duplicate keys and problems inside attribute definitions are reported', (t) => {
  const dir = registryCopy(t, {
    'syntax.yaml': 'groups:\n  - id: registry.bad\n    id: registry.twice\n',
    'attributes.yaml': `groups:
  - id: registry.sample
    type: attribute_group
    brief: Attribute definitions with mistakes.
    attributes:
      - id: sample.count
        type: int
        stability: development
        requirement_level: recommended
        brief: An example of the wrong type.
        examples: ['three']
      - id: sample.count.max
        type: int
        stability: development
        requirement_level: recommended
        brief: Its key makes sample.count a namespace.
        examples: [3]
      - id: sample.mode
        stability: development
        requirement_level: recommended
        brief: Two members with one value.
        type:
          members:
            - id: fast
              value: 'fast'
              stability: development
            - id: Quick
              value: 'fast'
              stability: development
      - id: other.thing
        type: any
        brief: Outside the namespace, of a type the live check cannot compare, with no stability.
        requirement_level: recommended
`,
  });
  const problems = checkRegistry(dir);
  const found = (rule: Problem['rule'], text: string) => problems.some((p) => p.rule === rule && p.message.includes(text));
  t.true(found('yaml', 'unique'), problems.map(formatProblem).join('\n'));
  t.true(problems.some((p) => p.rule === 'stability' && p.group === 'registry.sample'));
  t.true(found('examples', 'sample.count'));
  t.true(found('naming', 'namespace of attribute sample.count.max'));
  t.true(found('enum', 'appears twice'));
  t.true(found('naming', 'Quick'));
  t.true(found('naming', 'outside'));
  t.true(found('policy', 'type any'));
  t.true(found('stability', 'other.thing'));
});

function run(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], (error, stdout, stderr) => {
      done({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

test('the command line passes on the registry and exits non-zero on a broken copy, listing the problems', async (t) => {
  const ok = await run([]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /registry check passed/);
  const dir = registryCopy(t, { 'broken.yaml': BROKEN });
  const broken = await run([dir]);
  t.is(broken.code, 1);
  for (const [rule, group] of EXPECTED) t.true(broken.stderr.includes(`[${rule}] ${group}:`), `${rule} ${group}`);
  t.regex(broken.stderr, /registry check failed: \d+ problem/);
});

test('units: the accepted UCUM subset, with hints for common slips', (t) => {
  for (const unit of ['1', '%', 's', 'ms', 'us', 'ns', 'min', 'By', 'KiBy', 'bit', '{tick}', '{command}/s', 'By/s', 'By{packet}']) t.is(unitProblem(unit), undefined, unit);
  t.regex(unitProblem('µs') ?? '', /use us/);
  t.regex(unitProblem('B') ?? '', /bel/);
  t.regex(unitProblem('ticks') ?? '', /\{tick\}/);
  t.regex(unitProblem('ks') ?? '', /prefix k/);
  t.truthy(unitProblem('{Tick}'));
  t.truthy(unitProblem(''));
  t.truthy(unitProblem('By/s/s'));
});

test('names: OpenTelemetry naming rules', (t) => {
  t.is(nameProblem('consensus.quorum_size', 'attribute'), undefined);
  t.is(nameProblem('exception', 'event'), undefined);
  t.is(nameProblem('actor.event_loop.delay', 'metric'), undefined);
  t.regex(nameProblem('Consensus.view', 'attribute') ?? '', /lowercase/);
  t.regex(nameProblem('consensus..view', 'attribute') ?? '', /empty component/);
  t.regex(nameProblem('consensus.view__id', 'attribute') ?? '', /snake_case/);
  t.regex(nameProblem('view', 'attribute') ?? '', /namespace/);
  t.regex(nameProblem('otel.view', 'attribute') ?? '', /reserves/);
  t.regex(nameProblem('consensus.latency_ms', 'metric') ?? '', /unit/);
  t.regex(nameProblem('consensus.commits_total', 'metric') ?? '', /total/);
});

test('conforms: emitted values against declared types and enum members', (t) => {
  const registry = loadRegistry();
  const attribute = (id: string) => {
    const found = registry.attributes.get(id);
    if (found === undefined) throw new Error(`no attribute ${id}`);
    return found;
  };
  t.is(conforms(attribute('thread.id'), 3), undefined);
  t.truthy(conforms(attribute('thread.id'), 1.5));
  t.truthy(conforms(attribute('thread.id'), '3'));
  t.is(conforms(attribute('crypto.duration_us'), 182.5), undefined);
  t.is(conforms(attribute('crypto.algorithm'), 'ML-DSA-65+Ed25519'), undefined);
  t.truthy(conforms(attribute('crypto.algorithm'), 'RSA-2048'));
  t.is(conforms(attribute('crypto.verified'), false), undefined);
  t.truthy(conforms(attribute('crypto.verified'), 'false'));
});
