/** The worker's admin endpoint: metrics after deliveries, health, and the dashboard's auth. */
import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { sms, until, useHarness } from './harness.ts';

describe('admin endpoint', () => {
  const redis = useRedis();
  const harness = useHarness(redis);

  it('/metrics counts deliveries by outcome and location, statuses, latency, dead letters and queue depth', async () => {
    const h = await harness({ fake: { maxMessageChars: 20 } });
    const worker = await h.worker({ admin: { port: 0, explicit: true } });
    await h.send([sms(1), sms(2), sms(3, 'locB'), sms(4, 'locA', { message: 'far too long for the stand-in today' })]);
    await h.settled(['locA', 'locB']);
    const text = await (await fetch(`${worker.admin?.url ?? ''}/metrics`)).text();
    expect(text).toContain('ghl_deliveries_total{outcome="delivered",location="locA"} 2');
    expect(text).toContain('ghl_deliveries_total{outcome="delivered",location="locB"} 1');
    expect(text).toContain('ghl_http_responses_total{status="201"} 3');
    expect(text).toContain('ghl_http_responses_total{status="422"} 1');
    expect(text).toContain('ghl_dead_letters_total{class="permanent",location="locA"} 1');
    expect(text).toMatch(/ghl_request_duration_seconds_count\{location="locA"\} 3/);
    expect(text).toContain('ghl_queue_depth{location="locA",state="failed"} 1');
    expect(text).toContain('ghl_worker_process_cpu_seconds_total');
  });

  it('/metrics shows how long a location has been paused, and unfinished imports', async () => {
    const h = await harness();
    h.fake.configure({ tokens: { 'secret-token-A-5b1f0c': null } });
    const worker = await h.worker({ admin: { port: 0, explicit: true } });
    await h.redis.hset(`${h.config.queuePrefix}:import:imp1`, { accepted: '5', delivered: '2', state: 'done' });
    await h.send([sms(1)]);
    await until(async () => h.queue('locA').isPaused(), 5_000, 'paused');
    const text = await (await fetch(`${worker.admin?.url ?? ''}/metrics`)).text();
    expect(text).toMatch(/ghl_location_held_seconds\{location="locA",state="paused"\} \d/);
    expect(text).toContain('ghl_import_messages{import="imp1",outcome="accepted"} 5');
    expect(text).toContain('ghl_import_messages{import="imp1",outcome="delivered"} 2');
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
    const api = (await (await fetch(`${base}/api/queues`, { headers: auth })).json()) as { queues: { name: string }[] };
    expect(api.queues.map((q) => q.name)).toContain('loc.{locA}');
  });
});
