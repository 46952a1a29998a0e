/**
 * The Grafana dashboard (docs/grafana/knhk-dashboard.json) against the registry: every series and
 * label its queries use must be one the Prometheus exporter would produce from a declared metric,
 * and every declared operator metric must be charted. The dashboard is read as JSON and its
 * PromQL with a small reader that understands only what the checks need, and fails closed
 * (reports a problem) on anything it cannot read.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { loadRegistry, type MetricDefinition, type Registry } from '../registry/check.js';

const DASHBOARD = new URL('../../docs/grafana/knhk-dashboard.json', import.meta.url);

/** Registry files whose metrics the dashboard must chart (the replication and runtime operator metrics). */
const CHARTED_FILES = ['metrics.yaml', 'runtime.yaml'];

/** Labels Prometheus or the exporter add to every series (`le` is added to `_bucket` series only). */
const ADDED_LABELS = ['otel_scope_name', 'job', 'instance'];

/** One series name as @opentelemetry/exporter-prometheus exposes it, and the labels it can carry. */
interface Series {
  readonly metric: MetricDefinition;
  readonly labels: ReadonlySet<string>;
}

const promName = (name: string): string => name.replace(/\./g, '_');

/**
 * The series names the exporter gives the registry's metrics: `_total` for counters,
 * `_bucket`/`_sum`/`_count` for histograms, the bare name for up-down counters and gauges, so a
 * suffix on the wrong kind of metric is simply an unknown series.
 */
function exportedSeries(registry: Registry): Map<string, Series> {
  const series = new Map<string, Series>();
  for (const metric of registry.metrics.values()) {
    const base = promName(metric.name);
    const labels = [...metric.attributes.map((a) => promName(a.id)), ...ADDED_LABELS];
    const add = (name: string, extra: string[] = []): void => void series.set(name, { metric, labels: new Set([...labels, ...extra]) });
    switch (metric.instrument) {
      case 'counter':
        add(`${base}_total`);
        break;
      case 'histogram':
        add(`${base}_bucket`, ['le']);
        add(`${base}_sum`);
        add(`${base}_count`);
        break;
      case 'updowncounter':
      case 'gauge':
        add(base);
        break;
    }
  }
  return series;
}

/** A vector selector of a query: its series name and the labels its matchers use. */
interface Selector {
  readonly name: string;
  readonly labels: readonly string[];
}

/** What a PromQL expression uses: selectors, and labels named in grouping or vector-matching clauses. */
interface Usage {
  readonly selectors: Selector[];
  readonly grouping: string[];
}

/** Words after which a parenthesised list of labels follows. */
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
/** Aggregation operators, which may be followed by `by`/`without` before their parenthesis. */
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio']);
/** Identifiers that are neither series names nor functions. */
const WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/**
 * Tokens of PromQL. Strings, range and subquery brackets (`[$__rate_interval]`) and numbers
 * with duration units are single tokens, so nothing inside them is taken for a name.
 */
const TOKEN = /\s+|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`|\[[^\]]*\]|\$\{?\w+\}?|[A-Za-z_:][\w:]*|\d[\w.]*|\.\d[\w.]*|=~|!~|!=|==|>=|<=|[-+*/%^(){},=<>@]/y;

function tokens(expr: string): string[] {
  const found: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < expr.length) {
    const at = TOKEN.lastIndex;
    const match = TOKEN.exec(expr);
    if (match === null) throw new Error(`cannot read PromQL at "${expr.slice(at, at + 20)}"`);
    if (match[0].trim() !== '') found.push(match[0]);
  }
  return found;
}

const isIdentifier = (token: string | undefined): token is string => token !== undefined && /^[A-Za-z_:][\w:]*$/.test(token);

/** Reads the matchers from the `{` at `start`; returns the labels and the index after the `}`. */
function matchers(list: readonly string[], start: number): { labels: string[]; next: number; name?: string } {
  const labels: string[] = [];
  let name: string | undefined;
  let i = start + 1;
  while (list[i] !== '}') {
    const [label, op, value] = [list[i], list[i + 1], list[i + 2]];
    if (!isIdentifier(label) || !['=', '!=', '=~', '!~'].includes(op ?? '') || value === undefined || !/^["'`]/.test(value)) {
      throw new Error(`cannot read the matcher at "${list.slice(i, i + 3).join(' ')}"`);
    }
    if (label === '__name__' && op === '=') name = value.slice(1, -1);
    else labels.push(label);
    i += 3;
    if (list[i] === ',') i++;
    else if (list[i] !== '}') throw new Error(`expected , or } after a matcher, got "${list[i] ?? 'the end'}"`);
  }
  return { labels, next: i + 1, ...(name === undefined ? {} : { name }) };
}

/** The selectors and grouping labels of a PromQL expression; throws on what it cannot read. */
function promqlUsage(expr: string): Usage {
  const list = tokens(expr);
  const usage: Usage = { selectors: [], grouping: [] };
  let i = 0;
  while (i < list.length) {
    const token = list[i]!;
    const next = list[i + 1];
    if (token === '{') {
      const read = matchers(list, i);
      if (read.name === undefined) throw new Error('a selector without a series name');
      usage.selectors.push({ name: read.name, labels: read.labels });
      i = read.next;
    } else if (!isIdentifier(token)) {
      i++;
    } else if (LABEL_LISTS.has(token)) {
      i++;
      if (list[i] !== '(') continue; // group_left and group_right may stand alone
      for (i++; list[i] !== ')'; i++) {
        const label = list[i];
        if (label === undefined) throw new Error(`unclosed label list after "${token}"`);
        if (label !== ',') {
          if (!isIdentifier(label)) throw new Error(`"${label}" in the label list of "${token}"`);
          usage.grouping.push(label);
        }
      }
      i++;
    } else if (next === '(' || AGGREGATIONS.has(token) || WORDS.has(token.toLowerCase())) {
      i++;
    } else if (next === '{') {
      const read = matchers(list, i + 1);
      usage.selectors.push({ name: token, labels: read.labels });
      i = read.next;
    } else {
      usage.selectors.push({ name: token, labels: [] });
      i++;
    }
  }
  return usage;
}

/** One query of the dashboard: where it is, its PromQL, and the labels its legend names. */
interface Query {
  readonly where: string;
  readonly expr: string;
  readonly legendLabels: readonly string[];
  /** The label a `label_values(selector, label)` variable lists. */
  readonly listed?: string;
}

interface Panel {
  readonly id?: number;
  readonly type?: string;
  readonly title?: string;
  readonly panels?: Panel[];
  readonly targets?: Array<{ expr?: string; legendFormat?: string; refId?: string }>;
}

interface TemplateVariable {
  readonly name: string;
  readonly type: string;
  readonly query?: string | { query?: string };
}

interface Dashboard {
  readonly schemaVersion?: number;
  readonly panels?: Panel[];
  readonly templating?: { list?: TemplateVariable[] };
}

/** Every panel, rows' nested panels included. */
function allPanels(dashboard: Dashboard): Panel[] {
  return (dashboard.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** The PromQL of every panel target and every query variable. */
function queries(dashboard: Dashboard): Query[] {
  const found: Query[] = [];
  for (const panel of allPanels(dashboard)) {
    for (const target of panel.targets ?? []) {
      const legend = target.legendFormat ?? '';
      const legendLabels = [...legend.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!);
      found.push({ where: `panel "${panel.title}" target ${target.refId}`, expr: target.expr ?? '', legendLabels });
    }
  }
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== 'query') continue;
    const text = typeof variable.query === 'string' ? variable.query : (variable.query?.query ?? '');
    const where = `variable $${variable.name}`;
    // Only the two-argument form names a series; the others cannot be checked, so they are refused.
    const listing = /^\s*label_values\((.+),\s*(\w+)\s*\)\s*$/.exec(text);
    found.push(listing === null ? { where, expr: '', legendLabels: [] } : { where, expr: listing[1]!, legendLabels: [], listed: listing[2]! });
  }
  return found;
}

/**
 * What in the dashboard's queries the registry does not declare: unknown series (a wrong suffix
 * included), matcher labels the series does not carry, and labels in grouping clauses, legends or
 * `label_values` that not every series of the query carries. That last rule is stricter than
 * PromQL's scoping (a `by` clause only sees its own operand), which is harmless for queries that
 * combine like-labelled series and never lets an undeclared label through.
 */
function dashboardProblems(dashboard: Dashboard, registry: Registry): string[] {
  const series = exportedSeries(registry);
  const problems: string[] = [];
  for (const query of queries(dashboard)) {
    if (query.expr.trim() === '') {
      problems.push(`${query.where}: no PromQL to check (variables must be label_values(selector, label))`);
      continue;
    }
    let usage: Usage;
    try {
      usage = promqlUsage(query.expr);
    } catch (error) {
      problems.push(`${query.where}: ${(error as Error).message}`);
      continue;
    }
    if (usage.selectors.length === 0) problems.push(`${query.where}: uses no series`);
    const known: Array<[string, Series]> = [];
    for (const selector of usage.selectors) {
      const found = series.get(selector.name);
      if (found === undefined) {
        problems.push(`${query.where}: series ${selector.name} is not exported from any registry metric${suffixHint(selector.name, series)}`);
        continue;
      }
      known.push([selector.name, found]);
      for (const label of selector.labels) {
        if (!found.labels.has(label)) problems.push(`${query.where}: label ${label} is not declared for ${selector.name}`);
      }
    }
    const shared = [...usage.grouping, ...query.legendLabels, ...(query.listed === undefined ? [] : [query.listed])];
    for (const label of new Set(shared)) {
      for (const [name, found] of known) {
        if (!found.labels.has(label)) problems.push(`${query.where}: label ${label} is not declared for ${name}`);
      }
    }
  }
  return problems;
}

/** Names the series a metric does export when `name` is that metric with a wrong or missing suffix. */
function suffixHint(name: string, series: ReadonlyMap<string, Series>): string {
  const base = name.replace(/_(total|bucket|sum|count)$/, '');
  const exported = [...series].filter(([, s]) => promName(s.metric.name) === base);
  const metric = exported[0]?.[1].metric;
  return metric === undefined ? '' : ` (the ${metric.instrument} ${metric.name} is exported as ${exported.map(([n]) => n).join(', ')})`;
}

/** Registry metric names the dashboard's panels chart. */
function chartedMetrics(dashboard: Dashboard, registry: Registry): Set<string> {
  const series = exportedSeries(registry);
  const charted = new Set<string>();
  for (const query of queries(dashboard).filter((q) => q.listed === undefined)) {
    for (const selector of promqlUsage(query.expr).selectors) {
      const found = series.get(selector.name);
      if (found !== undefined) charted.add(found.metric.name);
    }
  }
  return charted;
}

function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
}

const registry = loadRegistry();

test('every query of the dashboard uses only series and labels the registry declares', (t) => {
  const problems = dashboardProblems(readDashboard(), registry);
  t.deepEqual(problems, [], 'docs/grafana/knhk-dashboard.json uses what the registry does not declare');
});

test('every metric of metrics.yaml and runtime.yaml is charted by a panel', (t) => {
  const charted = chartedMetrics(readDashboard(), registry);
  const declared = [...registry.metrics.values()].filter((m) => CHARTED_FILES.includes(m.file)).map((m) => m.name);
  t.true(declared.length > 0, 'the registry declares no metric in the charted files');
  const missing = declared.filter((name) => !charted.has(name));
  t.deepEqual(missing, [], `metrics no panel charts: ${missing.join(', ')}`);
});

test('the dashboard imports anywhere: schema version, a Prometheus datasource variable, no fixed data source', (t) => {
  const dashboard = readDashboard();
  t.true((dashboard.schemaVersion ?? 0) >= 38, `schemaVersion ${dashboard.schemaVersion}`);
  const variables = dashboard.templating?.list ?? [];
  const source = variables.find((v) => v.name === 'datasource');
  t.like(source, { type: 'datasource', query: 'prometheus' });

  // Every data source reference, wherever it is, must go through the variable.
  const fixed: string[] = [];
  const walk = (node: unknown, path: string): void => {
    if (Array.isArray(node)) node.forEach((child, i) => walk(child, `${path}[${i}]`));
    else if (node !== null && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'datasource') {
          const uid = typeof value === 'object' && value !== null ? (value as { uid?: unknown }).uid : value;
          if (uid !== '${datasource}' && uid !== '$datasource') fixed.push(`${path}.datasource = ${JSON.stringify(value)}`);
        }
        walk(value, `${path}.${key}`);
      }
    }
  };
  walk(dashboard.panels, 'panels');
  walk(variables.filter((v) => v.type !== 'datasource'), 'templating.list');
  t.deepEqual(fixed, []);

  // Variables used in queries exist (Grafana's own start with `__`), and panels have unique ids and a query.
  const defined = new Set(variables.map((v) => v.name));
  const undefinedUses = queries(dashboard).flatMap((q) =>
    [...q.expr.matchAll(/\$\{?(\w+)/g)].map((m) => m[1]!).filter((name) => !name.startsWith('__') && !defined.has(name)).map((name) => `${q.where}: $${name}`),
  );
  t.deepEqual(undefinedUses, []);
  const panels = allPanels(dashboard);
  const ids = panels.map((p) => p.id);
  t.is(new Set(ids).size, ids.length, 'panel ids are unique');
  const empty = panels.filter((p) => p.type !== 'row' && !(p.targets ?? []).some((target) => (target.expr ?? '').trim() !== '')).map((p) => p.title);
  t.deepEqual(empty, [], 'panels without a query');
});

test('the checker names an undeclared series, a wrong suffix and an undeclared label in a modified copy', (t) => {
  const copy = structuredClone(readDashboard());
  const target = allPanels(copy).flatMap((p) => p.targets ?? [])[0]!;
  target.expr = 'sum by (consensus_node_id) (rate(consensus_commits_total[5m])) + sum(rate(consensus_latency_total[5m])) + sum(actor_mailbox_depth{actor_pid="7"})';
  target.legendFormat = '{{consensus_node_id}}';
  const problems = dashboardProblems(copy, registry).join('\n');
  t.regex(problems, /series consensus_commits_total is not exported from any registry metric$/m);
  t.regex(problems, /series consensus_latency_total is not exported .*the histogram consensus\.latency is exported as consensus_latency_bucket, /);
  t.regex(problems, /label actor_pid is not declared for actor_mailbox_depth/);
  t.regex(problems, /label consensus_node_id is not declared for actor_mailbox_depth/);
});

test('the PromQL reader finds selectors, matchers and grouping labels and skips strings and ranges', (t) => {
  const usage = promqlUsage(
    'histogram_quantile(0.99, sum without (instance) (rate(a_bucket{x="by (y)", z=~"$v"}[$__rate_interval] offset 5m))) / on(le) group_left sum(b_total) or {__name__="c", d!="1"} > bool 0',
  );
  t.deepEqual(usage, {
    selectors: [
      { name: 'a_bucket', labels: ['x', 'z'] },
      { name: 'b_total', labels: [] },
      { name: 'c', labels: ['d'] },
    ],
    grouping: ['instance', 'le'],
  });
  t.throws(() => promqlUsage('sum({job="x"})'), { message: /without a series name/ });
  t.throws(() => promqlUsage('a{b}'), { message: /cannot read the matcher/ });
});
