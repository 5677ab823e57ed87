/**
 * The intake's token check follows the route a request matched, whatever the URL's spelling:
 * every other spelling of POST /v1/messages without the token is a 401 (or a 404 where it names
 * no route), and nothing reaches the queue. The open routes are the only ones served without it.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger, createRedis, loadConfig, locationQueueName, whenReady } from '@ghl-ingest/queue';
import { pathSpellings, rawRequest, useRedis } from '@ghl-ingest/testing';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { startIntake } from '../src/intake.ts';

const quiet = createLogger('silent', 'intake', new Writable({ write: (_c, _e, done) => done() }));
const record = { locationId: 'locTrick', type: 'SMS', contactId: 'c1', message: 'hello', altId: 'a1' };

describe('intake routes and the token', () => {
  const redis = useRedis();

  it('no spelling of a protected route gets past the token; the open routes stay open', async () => {
    const config = loadConfig({ ...redis.env, INTAKE_TOKEN: 's3cret', GHL_TOKEN_KEY: randomBytes(32).toString('base64') });
    const connection = createRedis(config, 'producer', `${redis.prefix}:intake`);
    connection.on('error', () => undefined);
    await whenReady(connection, 10_000);
    const intake = await startIntake(connection, config, quiet, 0);
    try {
      const body = JSON.stringify([record]);
      const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
      const refused = new Map<string, number>();
      for (const method of ['POST', 'PUT', 'GET']) {
        for (const path of pathSpellings('/v1/messages')) {
          for (const authorization of [undefined, 'Bearer wrong', 'bearer s3cret', 'Bearer  s3cret', 'Basic czNjcmV0', 's3cret']) {
            const res = await rawRequest(intake.url, { method, path, headers: authorization === undefined ? headers : { ...headers, authorization }, body });
            refused.set(`${method} ${path} ${authorization ?? '-'}`, res.status);
          }
        }
      }
      const letThrough = [...refused].filter(([, status]) => status !== 401 && status !== 404);
      expect(letThrough).toEqual([]);
      const queue = new Queue(locationQueueName('locTrick'), { connection: redis.client(), prefix: redis.prefix });
      expect(await queue.getJobCountByTypes('wait', 'active', 'delayed', 'completed', 'failed')).toBe(0);
      const metrics = await (await fetch(`${intake.url}/metrics`)).text();
      // Counted by the route they matched (the spellings the router takes for it), all refused.
      expect(metrics).toMatch(/^ghl_ingest_intake_requests_total\{status="401"\} [1-9]/m);
      expect(metrics).not.toMatch(/^ghl_ingest_intake_requests_total\{status="(?!401")/m);
      expect(metrics).not.toMatch(/^ghl_ingest_intake_records_total\{result="accepted"\} [1-9]/m);

      // The open routes answer without a token, under their own names.
      for (const path of ['/healthz', '/readyz', '/metrics']) expect((await rawRequest(intake.url, { method: 'GET', path })).status).toBe(200);
      expect((await rawRequest(intake.url, { method: 'POST', path: '/webhooks/highlevel', headers, body })).status).not.toBe(401);
      // And the route itself works with the token: the check above refused, it did not break.
      const ok = await rawRequest(intake.url, { method: 'POST', path: '/v1/messages', headers: { ...headers, authorization: 'Bearer s3cret' }, body });
      expect(ok.status).toBe(202);
      expect(await queue.getJobCountByTypes('wait')).toBe(1);
      await queue.close();
    } finally {
      await intake.close();
      connection.disconnect();
    }
  });
});
