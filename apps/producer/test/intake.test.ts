import { createLogger, createRedis, loadConfig, locationQueueName, whenReady } from '@ghl-ingest/queue';
import type { InboundRecord } from '@ghl-ingest/schema';
import { RedisServer, useRedis } from '@ghl-ingest/testing';
import { Queue } from 'bullmq';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { startIntake } from '../src/intake.ts';
import { createProducer } from '../src/producer.ts';

const sms = (i: number, loc = 'locA') => ({ locationId: loc, type: 'SMS', contactId: `c${i}`, message: `m${i}`, altId: `a${i}` });
const quiet = createLogger('silent', 'intake', new Writable({ write: (_c, _e, done) => done() }));

describe('library API and HTTP intake', () => {
  const redis = useRedis();
  const configFor = (env: Record<string, string> = {}) => loadConfig({ ...redis.env, ...env });

  /** An intake on this file's Redis (one or a cluster), or on the one Redis at `url`. */
  async function intake(env: Record<string, string> = {}, url?: string) {
    const config = loadConfig({ ...(url === undefined ? redis.env : { REDIS_URL: url, QUEUE_PREFIX: redis.prefix }), INTAKE_TOKEN: 'intake-secret', ...env });
    const connection = createRedis(config, 'producer', `${redis.prefix}:intake`);
    connection.on('error', () => undefined);
    await whenReady(connection, 10_000); // as `ingest serve` does: a cluster client needs a moment to learn the slots
    const server = await startIntake(connection, config, quiet, 0);
    const post = (body: unknown, token: string | null = 'intake-secret') =>
      fetch(`${server.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    return {
      server,
      post,
      close: async () => {
        await server.close();
        connection.disconnect();
      },
    };
  }

  it('createProducer().send validates, normalises and enqueues as live traffic', async () => {
    const producer = await createProducer({ config: configFor() });
    // Untyped, as from plain JavaScript: send checks every record at run time.
    const results = await producer.send([sms(1), { ...sms(2), type: 'Pigeon' }] as unknown as InboundRecord[]);
    await producer.close();
    expect(results[0]).toEqual({ ok: true, key: 'k-a1', locationId: 'locA' });
    expect(results[1]).toMatchObject({ ok: false, key: 'a2', errors: [{ path: 'type' }] });
    const q = new Queue(locationQueueName('locA'), { connection: redis.client(), prefix: redis.prefix });
    const [job] = await q.getJobs(['wait']);
    await q.close();
    expect(job?.data).toMatchObject({ source: 'live', key: 'k-a1' });
    // Live: BullMQ's wait list, first in first out (backfill goes to its prioritized set, after).
    expect(job?.opts.lifo).toBeUndefined();
    expect(job?.opts.priority).toBeUndefined();
  });

  it('POST /v1/messages: 202 with a result per record', async () => {
    const i = await intake();
    const res = await i.post([sms(1), { ...sms(2), date: 'yesterday' }]);
    expect(res.status).toBe(202);
    const body = (await res.json()) as { accepted: number; rejected: number; results: unknown[] };
    expect(body).toMatchObject({
      accepted: 1,
      rejected: 1,
      results: [
        { ok: true, key: 'k-a1' },
        { ok: false, errors: [{ path: 'date' }] },
      ],
    });
    const one = await i.post(sms(3));
    expect(one.status).toBe(202);
    await i.close();
  });

  it('GET /metrics: requests by status, records by result, latency, standard process metrics', async () => {
    const i = await intake();
    await i.post([sms(1), { ...sms(2), date: 'yesterday' }]);
    await i.post(sms(3), 'wrong');
    const text = await (await fetch(`${i.server.url}/metrics`)).text();
    expect(text).toContain('ghl_ingest_intake_requests_total{status="202"} 1');
    expect(text).toContain('ghl_ingest_intake_requests_total{status="401"} 1');
    expect(text).toContain('ghl_ingest_intake_records_total{result="accepted"} 1');
    expect(text).toContain('ghl_ingest_intake_records_total{result="rejected"} 1');
    expect(text).toContain('ghl_ingest_intake_request_duration_seconds_count 2');
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    await i.close();
  });

  it('refuses a missing or wrong token, and the health routes need none', async () => {
    const i = await intake();
    expect((await i.post(sms(1), null)).status).toBe(401);
    expect((await i.post(sms(1), 'intake-secreT')).status).toBe(401);
    expect((await i.post(sms(1), '')).status).toBe(401);
    expect((await fetch(`${i.server.url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${i.server.url}/readyz`)).json()).toEqual({ status: 'ready' });
    await i.close();
  });

  it('malformed JSON is 400, over 1,000 records or 10 MB is 413', async () => {
    const i = await intake();
    const bad = await i.post('{"locationId": ');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('not valid JSON');
    expect((await i.post(Array.from({ length: 1001 }, (_, n) => sms(n)))).status).toBe(413);
    expect((await i.post({ ...sms(1), message: 'x'.repeat(11 * 1024 * 1024) })).status).toBe(413);
    await i.close();
  });

  it('a client still sending a body announced over 10 MB gets the 413 and why, not a broken pipe', async () => {
    const i = await intake();
    const size = 12 * 1024 * 1024;
    const piece = new Uint8Array(256 * 1024).fill(120);
    let sent = 0;
    // Sent slowly, as over a real network: the answer comes while most of the body is still to go.
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= size) {
          controller.close();
          return;
        }
        await sleep(2);
        sent += piece.length;
        controller.enqueue(piece);
      },
    });
    const headers = { authorization: 'Bearer intake-secret', 'content-type': 'application/json', 'content-length': String(size) };
    const answer = await fetch(`${i.server.url}/v1/messages`, { method: 'POST', headers, body, duplex: 'half' }).then(
      async (res) => ({ status: res.status, body: await res.text() }),
      (error: unknown) => ({ status: 0, body: String(((error as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? error) }),
    );
    expect(answer.status, answer.body).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'payload_too_large' });
    await i.close();
  });

  it('takes gzip and NDJSON as sync clients send them; every limit counts the decompressed body', async () => {
    const i = await intake();
    const send = (body: Buffer | string, headers: Record<string, string>) =>
      fetch(`${i.server.url}/v1/messages`, { method: 'POST', headers: { authorization: 'Bearer intake-secret', ...headers }, body });
    const ndjson = [sms(1), sms(2), { ...sms(3), date: 'yesterday' }].map((r) => JSON.stringify(r)).join('\n');

    const gzJson = await send(gzipSync(JSON.stringify([sms(4), sms(5)])), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(gzJson.status).toBe(202);
    expect(await gzJson.json()).toMatchObject({ accepted: 2, rejected: 0 });
    const nd = await send(`${ndjson}\n`, { 'content-type': 'application/x-ndjson' });
    expect(nd.status).toBe(202);
    expect(await nd.json()).toMatchObject({ accepted: 2, rejected: 1, results: [{ ok: true }, { ok: true }, { ok: false, errors: [{ path: 'date' }] }] });
    const gzNd = await send(gzipSync(ndjson), { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' });
    expect(gzNd.status).toBe(202);

    const badLine = await send(`${JSON.stringify(sms(6))}\n{"locationId":\n`, { 'content-type': 'application/x-ndjson' });
    expect(badLine.status).toBe(400);
    expect(((await badLine.json()) as { message: string }).message).toMatch(/^line 2 of the NDJSON body/);
    const notGzip = await send('{"not": "gzip"}', { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(notGzip.status).toBe(400);
    expect(((await notGzip.json()) as { message: string }).message).toContain('not valid gzip');
    const brotli = await send(JSON.stringify(sms(7)), { 'content-type': 'application/json', 'content-encoding': 'br' });
    expect(brotli.status).toBe(415);

    // 64 MB of one record's padding in about 64 KB on the wire: refused once 10 MB are decompressed.
    const bomb = gzipSync(
      Buffer.concat([Buffer.from('{"locationId":"locA","type":"SMS","contactId":"c","message":"'), Buffer.alloc(64 * 1024 * 1024, 'x'), Buffer.from('"}')]),
    );
    expect(bomb.length).toBeLessThan(200 * 1024);
    const refused = await send(bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(refused.status).toBe(413);
    expect(((await refused.json()) as { message: string }).message).toContain('decompressed');

    const q = new Queue(locationQueueName('locA'), { connection: redis.client(), prefix: redis.prefix });
    // sms 4 and 5, sms 1 and 2 (sent twice: the same keys, one job each).
    expect(await q.getWaitingCount()).toBe(4);
    await q.close();
    expect((await i.post(sms(8))).status).toBe(202);
    await i.close();
  });

  it('503 with Retry-After when a location is over its high-water mark', async () => {
    const i = await intake({ INTAKE_HIGH_WATER: '2' });
    expect((await i.post([sms(1), sms(2)])).status).toBe(202);
    const res = await i.post([sms(3)]);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('30');
    expect(((await res.json()) as { message: string }).message).toContain('location locA');
    expect((await i.post([sms(4, 'locB')])).status).toBe(202);
    await i.close();
  });

  it('503 with Retry-After when Redis cannot be reached, and /readyz says so', async () => {
    const server = await RedisServer.start();
    const i = await intake({}, server.url);
    expect((await i.post(sms(1))).status).toBe(202);
    await server.kill();
    const res = await i.post(sms(2));
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect((await fetch(`${i.server.url}/readyz`)).status).toBe(503);
    await i.close();
    await server.stop();
  });

  it('refuses to start without a token unless bound to loopback', async () => {
    const config = loadConfig({ ...redis.env, INTAKE_HOST: '0.0.0.0' });
    const c = redis.client();
    await expect(startIntake(c, config, quiet, 0)).rejects.toThrow('without INTAKE_TOKEN');
    const local = await startIntake(c, loadConfig(redis.env), quiet, 0);
    expect(local.url).toMatch(/^http:\/\/127\.0\.0\.1:/);
    expect(
      (await fetch(`${local.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(sms(1)) })).status,
    ).toBe(202);
    await local.close();
  });
});
