/**
 * What ships beside the code, checked against the code: the Grafana dashboard's queries name
 * metrics (and label values) that a worker and the intake really export; Prometheus scrapes the
 * ports compose gives them; `.env.example` lists every setting the code reads and every variable
 * compose interpolates.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import { FakeHighLevel } from '@ghl-ingest/fake-api';
import { startIntake } from '@ghl-ingest/producer';
import { createLogger, createRedis, loadConfig, ProducerLocations, SETTINGS } from '@ghl-ingest/queue';
import { useRedis } from '@ghl-ingest/testing';
import { startWorker } from '@ghl-ingest/worker';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const root = resolve(import.meta.dirname, '../../..');
const read = (path: string) => readFileSync(resolve(root, path), 'utf8');
const quiet = createLogger('silent', 'test', new Writable({ write: (_c, _e, done) => done() }));

/** PromQL words that are not metric names. */
const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'le', 'inf', 'nan']);

/** Metric selectors of a PromQL expression: names, with their `label="value"` matchers. */
export function selectorsOf(expr: string): { name: string; matchers: [string, string][] }[] {
  const out: { name: string; matchers: [string, string][] }[] = [];
  const cleaned = expr.replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, ' ').replace(/\[[^\]]*\]/g, ' ');
  for (const m of cleaned.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?/g)) {
    const [, name = '', block, call] = m;
    if (call !== undefined || PROMQL_WORDS.has(name.toLowerCase())) continue;
    const matchers = [...(block ?? '').matchAll(/(\w+)\s*=\s*"([^"]*)"/g)].map(([, l = '', v = '']) => [l, v] as [string, string]);
    out.push({ name, matchers });
  }
  return out;
}

/** Series names a /metrics text exports (histograms as their _bucket, _sum and _count), with their sample lines. */
function exported(text: string): Map<string, string[]> {
  const series = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] ?? '';
    series.set(name, [...(series.get(name) ?? []), line]);
  }
  return series;
}

describe('what ships beside the code', () => {
  const redis = useRedis();

  it('every query of the Grafana dashboard names metrics and label values the worker and the intake export', async () => {
    const fake = await FakeHighLevel.start({ maxMessageChars: 20 });
    const config = loadConfig({ REDIS_URL: redis.url, QUEUE_PREFIX: redis.prefix, GHL_API_BASE_URL: fake.url, GHL_TOKEN: 'dash-token', INTAKE_TOKEN: 'dash' });
    const worker = await startWorker(config, { logger: quiet, admin: { port: 0, explicit: true } });
    const connection = createRedis(redis.url, 'service', `${redis.prefix}:intake`);
    const intake = await startIntake(connection, config, quiet, 0);
    try {
      // Traffic that makes every series appear: a delivery, a dead letter, an intake request, and a
      // location held (as delivery holds one whose token HighLevel rejects).
      const locations = new ProducerLocations(connection, { prefix: config.queuePrefix });
      await locations.register(['dashB']);
      await worker.state.pause('dashB', 'token rejected');
      const post = await fetch(`${intake.url}/v1/messages`, {
        method: 'POST',
        headers: { authorization: 'Bearer dash', 'content-type': 'application/json' },
        body: JSON.stringify([
          { locationId: 'dashA', type: 'SMS', contactId: 'c1', message: 'short', altId: 'd1' },
          { locationId: 'dashA', type: 'SMS', contactId: 'c2', message: 'far too long for the stand-in', altId: 'd2' },
        ]),
      });
      expect(post.status).toBe(202);
      const scrape = async (url: string) => exported(await (await fetch(`${url}/metrics`)).text());
      let series = new Map<string, string[]>();
      const deadline = Date.now() + 15_000;
      while (!(series.get('ghl_dead_letters_total')?.length && series.get('ghl_request_duration_seconds_bucket')?.length)) {
        if (Date.now() > deadline) throw new Error('no delivery and dead letter in the worker metrics');
        await new Promise((r) => setTimeout(r, 100));
        series = await scrape(worker.admin?.url ?? '');
      }
      for (const [name, lines] of await scrape(intake.url)) series.set(name, [...(series.get(name) ?? []), ...lines]);

      const dashboard = JSON.parse(read('monitoring/grafana/dashboards/ghl-ingest.json')) as { panels: { title: string; targets: { expr: string }[] }[] };
      const queries = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
      expect(queries.length).toBeGreaterThanOrEqual(12);
      const problems: string[] = [];
      for (const { panel, expr } of queries) {
        const selectors = selectorsOf(expr);
        if (selectors.length === 0) problems.push(`${panel}: no metric in ${expr}`);
        for (const { name, matchers } of selectors) {
          const lines = series.get(name);
          if (lines === undefined) {
            problems.push(`${panel}: ${name} is not exported`);
            continue;
          }
          for (const [label, value] of matchers) {
            if (!lines.some((l) => l.includes(`${label}="${value}"`))) problems.push(`${panel}: ${name} has no series with ${label}="${value}"`);
          }
        }
      }
      expect(problems).toEqual([]);
      // The worker's dashboard covers what the issue names: outcomes, 429s, budget, depth, dead letters, latency.
      const all = queries.map((q) => q.expr).join('\n');
      for (const name of [
        'ghl_deliveries_total',
        'ghl_rate_limited_total',
        'ghl_budget_used_ratio',
        'ghl_queue_jobs',
        'ghl_dead_letter_messages',
        'ghl_request_duration_seconds_bucket',
      ]) {
        expect(all).toContain(name);
      }
    } finally {
      await intake.close();
      connection.disconnect();
      await worker.close();
      await fake.close();
    }
  });

  it('Prometheus scrapes the ports compose gives the worker and the intake', () => {
    const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as {
      services: Record<string, { environment?: Record<string, string>; profiles?: string[] }>;
    };
    const prometheus = parseYaml(read('monitoring/prometheus.yml')) as {
      scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; port: number }[]; static_configs?: { targets: string[] }[] }[];
    };
    const job = (name: string) => prometheus.scrape_configs.find((j) => j.job_name === name);
    expect(job('worker')?.dns_sd_configs?.[0]).toEqual({ names: ['worker'], type: 'A', port: Number(compose.services.worker?.environment?.ADMIN_PORT) });
    expect(job('intake')?.static_configs?.[0]?.targets).toEqual([`intake:${compose.services.intake?.environment?.INTAKE_PORT ?? ''}`]);
    expect(compose.services.prometheus?.profiles).toEqual(['monitoring']);
    expect(compose.services.grafana?.profiles).toEqual(['monitoring']);
  });

  it('.env.example lists every setting the code reads and every variable compose uses, each with its default', () => {
    const example = read('.env.example');
    const listed = new Map([...example.matchAll(/^([A-Z][A-Z0-9_]*)=(.*)$/gm)].map(([, k = '', v = '']) => [k, v]));
    const compose = read('docker-compose.yml');
    const composeVars = new Map([...compose.matchAll(/\$\{([A-Z][A-Z0-9_]*)(?::-([^}]*)|:\?[^}]*)?\}/g)].map(([, k = '', v]) => [k, v]));
    expect(SETTINGS.filter((s) => !listed.has(s))).toEqual([]);
    expect([...composeVars.keys()].filter((v) => !listed.has(v))).toEqual([]);
    // Where compose has a default, it is the one .env.example gives.
    const differing = [...composeVars].filter(([k, v]) => v !== undefined && k !== 'REDIS_URL' && listed.get(k) !== v);
    expect(differing).toEqual([]);
    // And the code's defaults are the ones .env.example gives.
    const defaults = loadConfig({});
    expect(listed.get('GHL_RATE_LIMIT_MAX')).toBe(String(defaults.rateLimit.max));
    expect(listed.get('GHL_DAILY_LIMIT')).toBe(String(defaults.rateLimit.daily));
    expect(listed.get('SHUTDOWN_TIMEOUT_MS')).toBe(String(defaults.shutdownTimeoutMs));
    expect(listed.get('QUEUE_PREFIX')).toBe(defaults.queuePrefix);
    expect(listed.get('REDIS_URL')).toBe(defaults.redisUrl);
  });
});
