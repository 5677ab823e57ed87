/**
 * The monitoring that ships in monitoring/, checked against what the code really exports: the
 * metric names (and label values) of a real worker's and a real intake's /metrics, scraped after
 * starting them. The Prometheus alert rules (monitoring/alerts.yml): their structure, every metric
 * and label value their expressions use, the labels their annotations name, and that compose's
 * Prometheus loads them; with promtool installed, `promtool check rules`, `check config` and its
 * unit tests (monitoring/alerts.test.yml). The Grafana dashboard: importable anywhere (a
 * `$datasource` variable everywhere, no datasource uid, `__inputs`/`__requires`), `$job` and
 * `$instance` in every selector, `$__rate_interval` for every range, every metric exported.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { posix, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { FakeHighLevel } from '@ghl-ingest/fake-api';
import { startIntake } from '@ghl-ingest/producer';
import { createLogger, createRedis, loadConfig } from '@ghl-ingest/queue';
import { useRedis, type RedisTestContext } from '@ghl-ingest/testing';
import { startWorker } from '@ghl-ingest/worker';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const root = resolve(import.meta.dirname, '../../..');
const read = (path: string) => readFileSync(resolve(root, path), 'utf8');
const quiet = createLogger('silent', 'test', new Writable({ write: (_c, _e, done) => done() }));

// --- PromQL, as far as these files use it -------------------------------------------------------

interface Selector {
  name: string;
  matchers: { label: string; op: '=' | '!=' | '=~' | '!~'; value: string }[];
}

/** Words of PromQL that are neither metrics nor functions. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
/** Words followed by a list of label names, not by an expression. */
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const TOKEN = /"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]|[0-9][\w.]*|[a-zA-Z_:][a-zA-Z0-9_:]*|\S/g;

/** The metric selectors of a PromQL expression: each metric name with its label matchers. */
function selectorsOf(expr: string): Selector[] {
  const tokens = [...expr.matchAll(TOKEN)].map((m) => m[0]);
  const out: Selector[] = [];
  for (let i = 0; i < tokens.length; i += 1) {
    const token = tokens[i] ?? '';
    const next = tokens[i + 1];
    if (LABEL_LISTS.has(token.toLowerCase())) {
      if (next === '(') i = tokens.indexOf(')', i);
      continue;
    }
    // A function or an aggregation: followed by its arguments, or by `by (...)` before them.
    if (!/^[a-zA-Z_:]/.test(token) || KEYWORDS.has(token.toLowerCase()) || next === '(' || LABEL_LISTS.has(next?.toLowerCase() ?? '')) continue;
    const block = next?.startsWith('{') === true ? next : '';
    out.push({ name: token, matchers: matchersOf(block) });
  }
  return out;
}

function matchersOf(block: string): Selector['matchers'] {
  return [...block.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)].map(([, label = '', op, value = '']) => ({
    label,
    op: op as Selector['matchers'][number]['op'],
    value,
  }));
}

/** The `[...]` ranges of an expression, as written. */
function rangesOf(expr: string): string[] {
  return [...expr.replace(/\{[^}]*\}|"(?:[^"\\]|\\.)*"/g, '').matchAll(/\[([^\]]*)\]/g)].map(([, r = '']) => r);
}

describe('selectorsOf', () => {
  it.each<[string, Selector[]]>([
    ['up{job="worker"} == 0', [{ name: 'up', matchers: [{ label: 'job', op: '=', value: 'worker' }] }]],
    [
      'sum by (class) (increase(ghl_ingest_dead_letters_total[15m])) > 0',
      [{ name: 'ghl_ingest_dead_letters_total', matchers: [] }], // `class` is a label list, not a metric
    ],
    [
      'histogram_quantile(0.95, sum by (le) (rate(x_seconds_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval])))',
      [
        {
          name: 'x_seconds_bucket',
          matchers: [
            { label: 'job', op: '=~', value: '$job' },
            { label: 'instance', op: '=~', value: '$instance' },
          ],
        },
      ],
    ],
    [
      'max(a) > 0 unless on () sum(increase(b{outcome=~"delivered|skipped"}[10m])) > 0',
      [
        { name: 'a', matchers: [] },
        { name: 'b', matchers: [{ label: 'outcome', op: '=~', value: 'delivered|skipped' }] },
      ],
    ],
    ['absent(max(r) == 1)', [{ name: 'r', matchers: [] }]],
    [
      'a / ignoring(state) group_left(x) b offset 5m',
      [
        { name: 'a', matchers: [] },
        { name: 'b', matchers: [] },
      ],
    ],
    ['sum(rate(c[5m])) by (kind) * 60', [{ name: 'c', matchers: [] }]],
    ['count by (job) (b{job=~"$job"})', [{ name: 'b', matchers: [{ label: 'job', op: '=~', value: '$job' }] }]],
  ])('%s', (expr, expected) => {
    expect(selectorsOf(expr)).toEqual(expected);
  });

  it('ranges', () => {
    expect(rangesOf('rate(a{x="[1m]"}[$__rate_interval]) + increase(b[5m])')).toEqual(['$__rate_interval', '5m']);
  });
});

// --- what the code exports ----------------------------------------------------------------------

interface Exported {
  /** Series names (a histogram as its _bucket, _sum and _count) to their samples' labels. */
  series: Map<string, Record<string, string>[]>;
  /** Metric family names to their help text. */
  help: Map<string, string>;
}

/** Reads Prometheus' text format: the names its TYPE lines declare, and each sample's labels. */
function parseExposition(text: string, into: Exported = { series: new Map(), help: new Map() }): Exported {
  for (const line of text.split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta !== null) {
      const [, kind, name = '', rest = ''] = meta;
      if (kind === 'HELP') into.help.set(name, rest);
      else {
        const names =
          rest === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => name + s) : rest === 'summary' ? [name, `${name}_sum`, `${name}_count`] : [name];
        for (const n of names) if (!into.series.has(n)) into.series.set(n, []);
      }
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (sample === null) continue;
    const [, name = '', labels = ''] = sample;
    const parsed = Object.fromEntries([...labels.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k = '', v = '']) => [k, v]));
    into.series.set(name, [...(into.series.get(name) ?? []), parsed]);
  }
  return into;
}

/** The family a series name belongs to (for its help text). */
function familyOf(name: string, exported: Exported): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix) && exported.help.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
  }
  return name;
}

/** Labels Prometheus gives every series of a target: never exported by the process itself. */
const TARGET_LABELS = new Set(['job', 'instance']);

/** What is wrong with the selectors of one expression, against what the code exports. */
function selectorProblems(where: string, expr: string, exported: Exported, alsoAllowed: ReadonlySet<string> = new Set()): string[] {
  const problems: string[] = [];
  const selectors = selectorsOf(expr);
  if (selectors.length === 0) problems.push(`${where}: no metric in ${expr}`);
  for (const { name, matchers } of selectors) {
    if (alsoAllowed.has(name)) continue;
    const samples = exported.series.get(name);
    if (samples === undefined) {
      problems.push(`${where}: ${name} is not exported`);
      continue;
    }
    for (const { label, op, value } of matchers) {
      if (TARGET_LABELS.has(label) || value.includes('$') || op.startsWith('!')) continue;
      // `a|b` matches either: each must be a value the code exports (a typo would never match).
      const values = op === '=~' && /^[\w|-]+$/.test(value) ? value.split('|') : op === '=' ? [value] : [];
      for (const v of values) if (!samples.some((s) => s[label] === v)) problems.push(`${where}: ${name} has no series with ${label}="${v}"`);
    }
  }
  return problems;
}

let scraped: Promise<Exported> | undefined;

/**
 * A real worker's and a real intake's /metrics, scraped once per file (in whichever test comes
 * first, on its Redis prefix, every process closed before it ends). One location is paused first,
 * so that the held-location series exist; counters with a closed set of labels start at 0.
 */
function exportedMetrics(redis: RedisTestContext): Promise<Exported> {
  scraped ??= (async () => {
    const fake = await FakeHighLevel.start();
    const config = loadConfig({ ...redis.env, GHL_API_BASE_URL: fake.url, GHL_TOKEN: 'mon-token', INTAKE_TOKEN: 'mon' });
    const worker = await startWorker(config, { logger: quiet, admin: { port: 0, explicit: true } });
    const connection = createRedis(redis.target, 'service', `${redis.prefix}:intake`);
    const intake = await startIntake(connection, config, quiet, 0);
    try {
      await worker.state.pause('monPaused', 'token rejected');
      const exported = parseExposition(await (await fetch(`${worker.admin?.url ?? ''}/metrics`)).text());
      return parseExposition(await (await fetch(`${intake.url}/metrics`)).text(), exported);
    } finally {
      await intake.close();
      connection.disconnect();
      await worker.close();
      await fake.close();
    }
  })();
  return scraped;
}

function hasPromtool(): boolean {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// --- the alert rules ----------------------------------------------------------------------------

interface Rule {
  alert?: unknown;
  expr?: unknown;
  for?: unknown;
  labels?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
}

const ALERTS = 'monitoring/alerts.yml';
const RULE_KEYS = new Set(['alert', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations']);
/** Series Prometheus itself makes for every target. */
const PROMETHEUS_SERIES = new Set(['up']);

/** What is wrong with the shape of the rules file (groups of alerting rules, each complete). */
function ruleShapeProblems(doc: unknown): string[] {
  const groups = (doc as { groups?: unknown } | null)?.groups;
  if (!Array.isArray(groups) || groups.length === 0) return ['no groups'];
  const problems: string[] = [];
  const names = new Set<string>();
  for (const [g, group] of (groups as { name?: unknown; rules?: unknown }[]).entries()) {
    if (typeof group.name !== 'string' || group.name === '') problems.push(`group ${g}: no name`);
    if (!Array.isArray(group.rules) || group.rules.length === 0) {
      problems.push(`group ${g}: no rules`);
      continue;
    }
    for (const rule of group.rules as Rule[]) {
      const name = typeof rule.alert === 'string' ? rule.alert : '';
      const where = name === '' ? `group ${g}: a rule` : name;
      if (!/^GhlIngest[A-Z][A-Za-z]*$/.test(name)) problems.push(`${where}: alert must be named GhlIngest...`);
      if (names.has(name)) problems.push(`${where}: named twice`);
      names.add(name);
      for (const key of Object.keys(rule)) if (!RULE_KEYS.has(key)) problems.push(`${where}: unknown key ${key}`);
      if (typeof rule.expr !== 'string' || rule.expr.trim() === '') problems.push(`${where}: no expr`);
      if (typeof rule.for !== 'string' || !/^\d+[smhd]$/.test(rule.for)) problems.push(`${where}: no for: duration`);
      if (!['critical', 'warning', 'info'].includes(String(rule.labels?.severity))) problems.push(`${where}: severity must be critical, warning or info`);
      for (const a of ['summary', 'description']) {
        if (typeof rule.annotations?.[a] !== 'string' || rule.annotations[a] === '') problems.push(`${where}: no ${a} annotation`);
      }
    }
  }
  return problems;
}

/**
 * The labels an alert's annotations may name, and must: an aggregated expression keeps only its
 * `by (...)` labels (each of which the annotations should name, a location above all); an
 * expression without aggregation keeps every label of its series.
 */
function annotationLabelProblems(name: string, expr: string, annotations: Record<string, unknown>): string[] {
  const text = Object.values(annotations).join('\n');
  const used = new Set([...text.matchAll(/\$labels\.(\w+)/g)].map(([, l = '']) => l));
  const kept = new Set(
    [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap(([, list = '']) =>
      list
        .split(',')
        .map((l) => l.trim())
        .filter((l) => l !== ''),
    ),
  );
  const aggregated = /\b(sum|max|min|avg|count|topk|bottomk|quantile|group)\s*(by|without)?\s*\(/.test(expr);
  const problems: string[] = [];
  if (aggregated) for (const l of used) if (!kept.has(l)) problems.push(`${name}: names $labels.${l}, which its expression drops`);
  for (const l of kept) if (l !== 'le' && !used.has(l)) problems.push(`${name}: keeps ${l} but its annotations do not name it`);
  return problems;
}

describe('annotationLabelProblems', () => {
  it.each<[string, string, string[]]>([
    ['max by (location) (h{state="paused"}) > 0', 'Location {{ $labels.location }} is paused', []],
    ['max by (location) (h) > 0', 'A location is paused', ['A: keeps location but its annotations do not name it']],
    ['sum(rate(x[5m])) > 0', 'On {{ $labels.instance }}', ['A: names $labels.instance, which its expression drops']],
    ['up{job="worker"} == 0', 'Worker {{ $labels.instance }} is down', []],
  ])('%s / %s', (expr, summary, expected) => {
    expect(annotationLabelProblems('A', expr, { summary })).toEqual(expected);
  });
});

describe('ruleShapeProblems', () => {
  const good = { alert: 'GhlIngestX', expr: 'up == 0', for: '5m', labels: { severity: 'warning' }, annotations: { summary: 's', description: 'd' } };
  it.each<[string, unknown, string[]]>([
    ['a good file', { groups: [{ name: 'g', rules: [good] }] }, []],
    ['no groups', { groups: [] }, ['no groups']],
    ['not a map', null, ['no groups']],
    ['a rule without for', { groups: [{ name: 'g', rules: [{ ...good, for: undefined }] }] }, ['GhlIngestX: no for: duration']],
    ['a recording rule', { groups: [{ name: 'g', rules: [{ ...good, record: 'x' }] }] }, ['GhlIngestX: unknown key record']],
    [
      'a bad severity',
      { groups: [{ name: 'g', rules: [{ ...good, labels: { severity: 'page' } }] }] },
      ['GhlIngestX: severity must be critical, warning or info'],
    ],
    ['twice the same alert', { groups: [{ name: 'g', rules: [good, good] }] }, ['GhlIngestX: named twice']],
    ['no description', { groups: [{ name: 'g', rules: [{ ...good, annotations: { summary: 's' } }] }] }, ['GhlIngestX: no description annotation']],
  ])('%s', (_, doc, expected) => {
    expect(ruleShapeProblems(doc)).toEqual(expected);
  });
});

describe('monitoring/ against what the code exports', () => {
  const redis = useRedis();

  it("the alert rules: complete, every metric and label value exported, loaded by compose's Prometheus", async () => {
    const doc = parseYaml(read(ALERTS)) as { groups: { rules: (Rule & { alert: string; expr: string; annotations: Record<string, unknown> })[] }[] };
    expect(ruleShapeProblems(doc)).toEqual([]);
    const rules = doc.groups.flatMap((g) => g.rules);
    // What the issue asks for, at least: a paused location, dead letters, 429s, nothing delivered,
    // old waiting messages, a worker down.
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining([
        'GhlIngestLocationPaused',
        'GhlIngestDeadLettersGrowing',
        'GhlIngestRateLimited',
        'GhlIngestNothingDelivered',
        'GhlIngestLiveMessagesWaiting',
        'GhlIngestWorkerDown',
      ]),
    );
    const exported = await exportedMetrics(redis);
    const problems = rules.flatMap((r) => [
      ...selectorProblems(r.alert, r.expr, exported, PROMETHEUS_SERIES),
      ...annotationLabelProblems(r.alert, r.expr, r.annotations),
    ]);
    expect(problems).toEqual([]);
    expect(rules.find((r) => r.alert === 'GhlIngestLocationPaused')?.annotations.summary).toContain('$labels.location');
    expect(rules.find((r) => r.alert === 'GhlIngestWorkerDown')?.expr).toMatch(/^up\{job="worker"\} == 0$/);

    // Compose's Prometheus reads them: prometheus.yml names the file, mounted beside its config.
    const prometheus = parseYaml(read('monitoring/prometheus.yml')) as { rule_files?: string[] };
    const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as { services: Record<string, { command?: string[]; volumes?: string[] }> };
    const service = compose.services.prometheus;
    const configPath = service?.command?.find((a) => a.startsWith('--config.file='))?.slice('--config.file='.length) ?? '';
    const mounts = new Map((service?.volumes ?? []).map((v) => v.split(':')).map(([from = '', to = '']) => [to, from]));
    expect(mounts.get(configPath)).toBe('./monitoring/prometheus.yml');
    expect(prometheus.rule_files?.length).toBeGreaterThan(0);
    for (const file of prometheus.rule_files ?? []) {
      const inContainer = posix.resolve(posix.dirname(configPath), file);
      expect(mounts.get(inContainer), `${inContainer} is mounted`).toBe(`./${ALERTS}`);
    }
  });

  it.skipIf(!hasPromtool())("promtool: the rules and the config check, and the rules' unit tests pass (monitoring/alerts.test.yml)", () => {
    const run = (...args: string[]) => execFileSync('promtool', args, { cwd: root, encoding: 'utf8', stdio: 'pipe' });
    expect(run('check', 'rules', ALERTS)).toContain('SUCCESS');
    expect(run('check', 'config', 'monitoring/prometheus.yml')).toContain('SUCCESS');
    expect(run('test', 'rules', 'monitoring/alerts.test.yml')).toContain('SUCCESS');
  });

  it('the Grafana dashboard: imports into any Grafana, filters by $job and $instance, $__rate_interval, every metric exported', async () => {
    const dashboard = JSON.parse(read('monitoring/grafana/dashboards/ghl-ingest.json')) as {
      __inputs?: { type: string; pluginId: string }[];
      __requires?: { type: string; id: string }[];
      templating: { list: { name: string; type: string; query?: unknown; datasource?: unknown }[] };
      panels: { id: number; type: string; title: string; datasource?: unknown; targets: { expr: string; datasource?: unknown }[] }[];
    };
    const datasource = { type: 'prometheus', uid: '${datasource}' };

    // No datasource uid anywhere but the variable's: every `datasource` in the file is `${datasource}`.
    const datasources: unknown[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (typeof node === 'object' && node !== null) {
        for (const [key, value] of Object.entries(node)) {
          if (key === 'datasource') datasources.push(value);
          walk(value);
        }
      }
    };
    walk(dashboard);
    expect(datasources.length).toBeGreaterThan(dashboard.panels.length);
    expect(datasources.filter((d) => JSON.stringify(d) !== JSON.stringify(datasource))).toEqual([]);
    for (const p of dashboard.panels) {
      expect(p.datasource, p.title).toEqual(datasource);
      for (const t of p.targets) expect(t.datasource, p.title).toEqual(datasource);
    }

    // The variables: a datasource of type prometheus, and $job and $instance from label_values.
    const variable = (name: string) => dashboard.templating.list.find((v) => v.name === name);
    expect(variable('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(variable('job')).toMatchObject({ type: 'query', datasource, query: expect.stringMatching(/^label_values\(\w+, job\)$/) as unknown });
    expect(variable('instance')).toMatchObject({
      type: 'query',
      datasource,
      query: expect.stringMatching(/^label_values\(\w+\{job=~"\$job"\}, instance\)$/) as unknown,
    });

    // As Grafana's "Export for sharing externally" writes them.
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ type: 'datasource', pluginId: 'prometheus' })]);
    const requires = new Set((dashboard.__requires ?? []).map((r) => `${r.type}:${r.id}`));
    for (const needed of ['grafana:grafana', 'datasource:prometheus', ...dashboard.panels.map((p) => `panel:${p.type}`)]) expect(requires).toContain(needed);
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);

    const exported = await exportedMetrics(redis);
    const queries = [
      ...dashboard.panels.flatMap((p) => p.targets.map((t) => ({ where: p.title, expr: t.expr }))),
      ...dashboard.templating.list
        .filter((v) => v.type === 'query')
        .map((v) => ({ where: `$${v.name}`, expr: String(v.query).replace(/^label_values\((.*), \w+\)$/, '$1') })),
    ];
    expect(queries.length).toBeGreaterThanOrEqual(25);
    const problems: string[] = [];
    for (const { where, expr } of queries) {
      problems.push(...selectorProblems(where, expr, exported));
      for (const range of rangesOf(expr)) if (range !== '$__rate_interval') problems.push(`${where}: range [${range}] instead of [$__rate_interval]`);
      if (where.startsWith('$')) continue;
      for (const { name, matchers } of selectorsOf(expr)) {
        const has = (label: string, variable: string) => matchers.some((m) => m.label === label && m.op === '=~' && m.value === variable);
        if (!has('job', '$job')) problems.push(`${where}: ${name} without job=~"$job"`);
        // A gauge of the whole system comes from whichever worker reports it: no instance filter.
        const systemWide = exported.help.get(familyOf(name, exported))?.includes('Reported by one worker') === true;
        if (!systemWide && !has('instance', '$instance')) problems.push(`${where}: ${name} without instance=~"$instance"`);
      }
    }
    expect(problems).toEqual([]);
    // Panels for what the issue names, the new metrics among them.
    const all = queries.map((q) => q.expr).join('\n');
    for (const name of [
      'ghl_ingest_deliveries_total',
      'ghl_ingest_rate_limited_total',
      'ghl_ingest_budget_used_ratio',
      'ghl_ingest_queue_jobs',
      'ghl_ingest_dead_letter_messages',
      'ghl_ingest_post_duration_seconds_bucket',
      'ghl_ingest_build_info',
      'ghl_ingest_oauth_refreshes_total',
      'ghl_ingest_oauth_refresh_failures_total',
      'ghl_ingest_oldest_waiting_age_seconds',
    ]) {
      expect(all).toContain(name);
    }
  });

  it("compose's Grafana provisions the dashboard's folder and a Prometheus datasource (whatever its uid)", () => {
    const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as {
      services: Record<string, { volumes?: string[]; environment?: Record<string, string>; ports?: string[] }>;
    };
    const grafana = compose.services.grafana;
    const mounts = new Map((grafana?.volumes ?? []).map((v) => v.split(':')).map(([from = '', to = '']) => [to, from]));
    const provider = parseYaml(read('monitoring/grafana/provisioning/dashboards/ghl-ingest.yml')) as {
      providers: { type: string; options: { path: string } }[];
    };
    const path = provider.providers[0]?.options.path ?? '';
    expect(mounts.get(path)).toBe('./monitoring/grafana/dashboards');
    expect(mounts.get('/etc/grafana/provisioning')).toBe('./monitoring/grafana/provisioning');
    const home = grafana?.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? '';
    expect(existsSync(resolve(root, 'monitoring/grafana/dashboards', posix.relative(path, home)))).toBe(true);
    const sources = parseYaml(read('monitoring/grafana/provisioning/datasources/prometheus.yml')) as {
      datasources: { type: string; url: string; isDefault?: boolean }[];
    };
    // The dashboard names no uid: it takes the default Prometheus datasource, this one.
    expect(sources.datasources).toEqual([expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090', isDefault: true })]);
  });
});
