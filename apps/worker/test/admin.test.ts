/** The worker's admin endpoint: metrics after deliveries, health, and the dashboard's auth. */
import { deadLetterQueueName } from '@ghl-ingest/queue';
import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { sms, until, useHarness } from './harness.ts';

describe('admin endpoint', () => {
  const redis = useRedis();
  const harness = useHarness(redis);

  const scrape = async (worker: { admin?: { url: string } | undefined }) => (await fetch(`${worker.admin?.url ?? ''}/metrics`)).text();
  const value = (text: string, series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  it('/metrics: outcomes, statuses, latency and dead letters without a location label; standard process metrics', async () => {
    const h = await harness({ fake: { maxMessageChars: 20 } });
    const worker = await h.worker({ admin: { port: 0, explicit: true } });
    await h.send([sms(1), sms(2), sms(3, 'locB'), sms(4, 'locA', { message: 'far too long for the stand-in today' })]);
    await h.settled(['locA', 'locB']);
    const text = await scrape(worker);
    expect(value(text, 'ghl_ingest_deliveries_total{outcome="delivered"}')).toBe(3);
    expect(value(text, 'ghl_ingest_http_responses_total{status="201"}')).toBe(3);
    expect(value(text, 'ghl_ingest_http_responses_total{status="422"}')).toBe(1);
    expect(value(text, 'ghl_ingest_dead_letters_total{class="permanent"}')).toBe(1);
    expect(value(text, 'ghl_ingest_post_duration_seconds_count')).toBe(4);
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes /m);
    expect(text).not.toMatch(/ghl_worker_/);
    // Per-location series only where they stay few: held locations.
    expect(
      text
        .split('\n')
        .filter((l) => l.includes('location="'))
        .every((l) => l.startsWith('ghl_ingest_location_held_seconds')),
    ).toBe(true);
    expect(value(text, 'ghl_ingest_metrics_reporter')).toBe(1);
    expect(value(text, 'ghl_ingest_queue_jobs{state="failed"}')).toBeUndefined(); // failed jobs are dead letters
    expect(value(text, 'ghl_ingest_queue_jobs{state="wait"}')).toBe(0);
    expect(value(text, 'ghl_ingest_locations{state="known"}')).toBe(2);
    expect(value(text, 'ghl_ingest_dead_letter_messages')).toBe(1);
  });

  it('the whole-system gauges come from one worker at a time, so sums over workers do not double count', async () => {
    const h = await harness();
    h.fake.configure({ tokens: { 'secret-token-A-5b1f0c': null } });
    const a = await h.worker({ admin: { port: 0, explicit: true } });
    const b = await h.worker({ admin: { port: 0, explicit: true } });
    await h.send([sms(1), sms(2, 'locB')]);
    await until(async () => h.queue('locA').isPaused(), 5_000, 'locA paused');
    await h.settled(['locB']);
    await until(async () => value(await scrape(a), 'ghl_ingest_queue_jobs{state="wait"}') === 1, 15_000, 'the reporter to see the paused message');
    const [ta, tb] = [await scrape(a), await scrape(b)];
    expect([value(ta, 'ghl_ingest_metrics_reporter'), value(tb, 'ghl_ingest_metrics_reporter')].sort()).toEqual([0, 1]);
    const sum = (series: string) => (value(ta, series) ?? 0) + (value(tb, series) ?? 0);
    expect(sum('ghl_ingest_queue_jobs{state="wait"}')).toBe(1);
    expect(sum('ghl_ingest_locations{state="paused"}')).toBe(1);
    expect([ta, tb].join('\n')).toMatch(/ghl_ingest_location_held_seconds\{location="locA",state="paused"\} \d/);
    // The reporter stops: the other takes the role at its next scrape.
    const [reporter, other] = value(ta, 'ghl_ingest_metrics_reporter') === 1 ? [a, b] : [b, a];
    await reporter.close();
    expect(value(await scrape(other), 'ghl_ingest_metrics_reporter')).toBe(1);
    expect(value(await scrape(other), 'ghl_ingest_queue_jobs{state="wait"}')).toBe(1);
  });

  it('/metrics shows unfinished imports', async () => {
    const h = await harness();
    const worker = await h.worker({ admin: { port: 0, explicit: true } });
    await h.redis.hset(`${h.config.queuePrefix}:import:imp1`, { accepted: '5', delivered: '2', state: 'done' });
    const text = await scrape(worker);
    expect(text).toContain('ghl_ingest_import_messages{import="imp1",outcome="accepted"} 5');
    expect(text).toContain('ghl_ingest_import_messages{import="imp1",outcome="delivered"} 2');
  });

  it('/healthz and /readyz', async () => {
    const h = await harness();
    const worker = await h.worker({ admin: { port: 0, explicit: true } });
    const base = worker.admin?.url ?? '';
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${base}/readyz`)).json()).toEqual({ status: 'ready' });
    expect((await fetch(`${base}/dashboard`)).status).toBe(404); // off without credentials configured
  });

  it('the dashboard answers 401 without credentials or with wrong ones, and serves with them', async () => {
    const h = await harness({ env: { DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'dash-secret' } });
    const worker = await h.worker({ admin: { port: 0, explicit: true } });
    await h.send([sms(1)]);
    await h.settled(['locA']);
    const base = `${worker.admin?.url ?? ''}/dashboard`;
    const none = await fetch(base);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toContain('Basic');
    const wrong = await fetch(base, { headers: { authorization: `Basic ${Buffer.from('ops:nope').toString('base64')}` } });
    expect(wrong.status).toBe(401);
    const auth = { authorization: `Basic ${Buffer.from('ops:dash-secret').toString('base64')}` };
    const page = await fetch(base, { headers: auth });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const api = (await (await fetch(`${base}/api/queues`, { headers: auth })).json()) as { queues: { name: string; readOnlyMode: boolean }[] };
    expect(api.queues.map((q) => q.name)).toEqual(expect.arrayContaining([deadLetterQueueName(redis.onCluster), 'loc.{locA}']));
    // Read-only unless DASHBOARD_ALLOW_CHANGES=true: no cleaning the dead letters from the dashboard.
    expect(api.queues.every((q) => q.readOnlyMode)).toBe(true);
    const clean = await fetch(`${base}/api/queues/${encodeURIComponent(deadLetterQueueName(redis.onCluster))}/clean/waiting`, { method: 'PUT', headers: auth });
    expect(clean.status).toBe(405);
  });

  it('DASHBOARD_ALLOW_CHANGES=true lets the dashboard change queues', async () => {
    const h = await harness({ env: { DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'dash-secret', DASHBOARD_ALLOW_CHANGES: 'true' } });
    const worker = await h.worker({ admin: { port: 0, explicit: true } });
    const auth = { authorization: `Basic ${Buffer.from('ops:dash-secret').toString('base64')}` };
    const api = (await (await fetch(`${worker.admin?.url ?? ''}/dashboard/api/queues`, { headers: auth })).json()) as {
      queues: { name: string; readOnlyMode: boolean }[];
    };
    expect(api.queues.find((q) => q.name === deadLetterQueueName(redis.onCluster))?.readOnlyMode).toBe(false);
  });
});
