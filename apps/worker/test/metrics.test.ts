/**
 * The worker's metrics as Prometheus reads them: names in the application's namespace that follow
 * Prometheus' naming advice, build info, OAuth refreshes counted with their answers, and the age of
 * the message next in line (held locations left out).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LocationReader, openOAuthStore } from '@ghl-ingest/queue';
import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { WorkerMetrics } from '../src/metrics.ts';
import { sms, until, useHarness } from './harness.ts';

/** Metrics of this codebase, as the registry holds them (Node's default ones are not ours): name, type and label names. */
function own(metrics: WorkerMetrics): { name: string; type: string; labelNames: readonly string[] }[] {
  return metrics.registry
    .getMetricsAsArray()
    .map((m) => ({ name: m.name, type: String(m.type), labelNames: (m as typeof m & { labelNames?: readonly string[] }).labelNames ?? [] }))
    .filter((m) => !/^(process|nodejs)_/.test(m.name));
}

/** What Prometheus' naming advice asks of one metric (https://prometheus.io/docs/practices/naming/); the problems found. */
function namingProblems(m: { name: string; type: string; labelNames: readonly string[] }): string[] {
  const problems: string[] = [];
  if (!m.name.startsWith('ghl_ingest_')) problems.push('not in the ghl_ingest_ namespace');
  if (!/^[a-z][a-z0-9_]*$/.test(m.name) || m.name.includes('__')) problems.push('not snake_case');
  if ((m.type === 'counter') !== m.name.endsWith('_total')) problems.push(m.type === 'counter' ? 'a counter without _total' : `a ${m.type} ending in _total`);
  if (m.type === 'histogram' && !/_(seconds|bytes)$/.test(m.name)) problems.push('a histogram without its base unit');
  if (/_(milliseconds|ms|minutes|hours|kilobytes|megabytes|percent)(_|$)/.test(m.name)) problems.push('not in base units');
  for (const label of m.labelNames) {
    if (!/^[a-z][a-z0-9_]*$/.test(label) || label.startsWith('__')) problems.push(`label ${label} is not snake_case`);
    if (/(seconds|bytes|_ms|ratio|total)$/.test(label)) problems.push(`label ${label} names a unit`);
    if (['job', 'instance'].includes(label)) problems.push(`label ${label} is Prometheus' own`);
  }
  return problems;
}

describe('namingProblems', () => {
  it.each<[string, { name: string; type: string; labelNames: string[] }, string[]]>([
    ['a good counter', { name: 'ghl_ingest_deliveries_total', type: 'counter', labelNames: ['outcome'] }, []],
    ['the vendor prefix', { name: 'ghl_deliveries_total', type: 'counter', labelNames: [] }, ['not in the ghl_ingest_ namespace']],
    ['a counter without _total', { name: 'ghl_ingest_deliveries', type: 'counter', labelNames: [] }, ['a counter without _total']],
    ['a gauge with _total', { name: 'ghl_ingest_jobs_total', type: 'gauge', labelNames: [] }, ['a gauge ending in _total']],
    ['milliseconds', { name: 'ghl_ingest_wait_milliseconds', type: 'gauge', labelNames: [] }, ['not in base units']],
    ['a histogram without unit', { name: 'ghl_ingest_latency', type: 'histogram', labelNames: [] }, ['a histogram without its base unit']],
    ['a unit in a label', { name: 'ghl_ingest_x', type: 'gauge', labelNames: ['wait_seconds'] }, ['label wait_seconds names a unit']],
    ['a label Prometheus sets', { name: 'ghl_ingest_x', type: 'gauge', labelNames: ['instance'] }, ["label instance is Prometheus' own"]],
    ['camelCase', { name: 'ghl_ingest_heldSeconds', type: 'gauge', labelNames: ['locationId'] }, ['not snake_case', 'label locationId is not snake_case']],
  ])('%s', (_, metric, expected) => {
    expect(namingProblems(metric)).toEqual(expected);
  });
});

describe('worker metrics', () => {
  const redis = useRedis();
  const harness = useHarness(redis);

  it("every metric of ours is in the ghl_ingest_ namespace and follows Prometheus' naming advice", async () => {
    const h = await harness();
    const metrics = new WorkerMetrics({ state: h.state, redis: h.redis, prefix: h.config.queuePrefix, deadLetterCount: () => Promise.resolve(0) });
    try {
      const all = own(metrics);
      expect(all.length).toBeGreaterThanOrEqual(20);
      expect(all.flatMap((m) => namingProblems(m).map((p) => `${m.name}: ${p}`))).toEqual([]);
    } finally {
      await metrics.close();
    }
  });

  it('ghl_ingest_build_info: 1, with the worker package version, the git revision and the Node version', async () => {
    const h = await harness();
    const metrics = new WorkerMetrics({ state: h.state, redis: h.redis, prefix: h.config.queuePrefix, deadLetterCount: () => Promise.resolve(0) });
    try {
      const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
      const text = await metrics.registry.metrics();
      expect(text).toMatch(
        new RegExp(
          `^ghl_ingest_build_info\\{version="${version.replaceAll('.', '\\.')}",revision="(?:[0-9a-f]{40}|unknown)",node_version="${process.version}"\\} 1$`,
          'm',
        ),
      );
    } finally {
      await metrics.close();
    }
  });

  it('counters with a closed set of labels start at 0 for each, so increase() sees the first event', async () => {
    const h = await harness();
    const metrics = new WorkerMetrics({ state: h.state, redis: h.redis, prefix: h.config.queuePrefix, deadLetterCount: () => Promise.resolve(0) });
    try {
      const text = await metrics.registry.metrics();
      for (const series of [
        'ghl_ingest_deliveries_total{outcome="delivered"} 0',
        'ghl_ingest_deliveries_total{outcome="api-down"} 0',
        'ghl_ingest_dead_letters_total{class="permanent"} 0',
        'ghl_ingest_dead_letters_total{class="stalled"} 0',
        'ghl_ingest_oauth_refreshes_total 0',
        'ghl_ingest_oauth_refresh_failures_total{reason="revoked"} 0',
        'ghl_ingest_oauth_refresh_failures_total{reason="unavailable"} 0',
        'ghl_ingest_rate_limited_total 0',
      ]) {
        expect(text.split('\n')).toContain(series);
      }
    } finally {
      await metrics.close();
    }
  });

  it('OAuth refreshes are counted, and those that brought no token by reason', async () => {
    const h = await harness({
      fake: { oauth: { clientId: 'app', clientSecret: 'app-secret', accessTtlMs: 60_000 } },
      env: { GHL_CLIENT_ID: 'app', GHL_CLIENT_SECRET: 'app-secret', GHL_TOKEN_KEY: randomBytes(32).toString('base64') },
    });
    const store = openOAuthStore(h.redis, h.config);
    for (const id of ['oauthA', 'oauthB'])
      await store?.put({ kind: 'location', id }, { refreshToken: h.fake.oauth.authorise({ kind: 'location', id }).refreshToken });
    h.fake.oauth.revoke({ kind: 'location', id: 'oauthB' });
    const worker = await h.worker({ admin: { port: 0, explicit: true } });
    await h.send([sms(1, 'oauthA'), sms(2, 'oauthB')]);
    await h.settled(['oauthA']);
    await until(async () => (await h.state.hold('oauthB'))?.state === 'paused', 10_000, 'oauthB paused');
    const text = await (await fetch(`${worker.admin?.url ?? ''}/metrics`)).text();
    const lines = text.split('\n');
    expect(lines).toContain('ghl_ingest_oauth_refreshes_total 2');
    expect(lines).toContain('ghl_ingest_oauth_refresh_failures_total{reason="revoked"} 1');
    expect(lines).toContain('ghl_ingest_oauth_refresh_failures_total{reason="unavailable"} 0');
  });

  it('ghl_ingest_oldest_waiting_age_seconds: how long the message next in line has waited, live and backfill apart, held locations left out', async () => {
    const h = await harness();
    const age = async (metrics: WorkerMetrics) => {
      const gauge = (await metrics.registry.getSingleMetric('ghl_ingest_oldest_waiting_age_seconds')?.get())?.values ?? [];
      return Object.fromEntries(gauge.map((v) => [String(v.labels.source), v.value]));
    };
    const sources = () => ({
      state: new LocationReader(h.redis, { prefix: h.config.queuePrefix }),
      redis: h.redis,
      prefix: h.config.queuePrefix,
      deadLetterCount: () => Promise.resolve(0),
    });
    // No worker takes these messages: the metrics alone, as bench/scale.ts measures them.
    const empty = new WorkerMetrics(sources());
    try {
      expect(await age(empty)).toEqual({ live: 0, backfill: 0 });
    } finally {
      await empty.close();
    }
    await h.send([sms(1, 'heldLoc')], 'live'); // the oldest, but its location is paused
    await h.locations.pause('heldLoc', 'token rejected');
    await new Promise((r) => setTimeout(r, 300)); // counted, it would be 0.3 s older than the rest
    const before = Date.now();
    await h.send([sms(1, 'locA'), sms(2, 'locA')], 'live');
    await h.send([sms(3, 'locB')], 'backfill');
    const after = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    const metrics = new WorkerMetrics(sources());
    try {
      const seen = Date.now();
      const { live, backfill } = await age(metrics);
      for (const value of [live, backfill]) {
        expect(value).toBeGreaterThanOrEqual((seen - after) / 1000 - 0.05);
        expect(value).toBeLessThanOrEqual((Date.now() - before) / 1000 + 0.05);
      }
      // Read at most every 10 s, but the age grows at each scrape.
      await new Promise((r) => setTimeout(r, 200));
      expect((await age(metrics)).live).toBeGreaterThan(live ?? Infinity);
    } finally {
      await metrics.close();
    }
  });
});
