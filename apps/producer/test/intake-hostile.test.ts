/**
 * The intake fuzzed: `ingest serve` as users run it (a process with `pnpm ingest`'s heap caps)
 * gets random bytes, random JSON, invalid UTF-8, deep nesting, oversize and concurrent large
 * bodies, wrong media types and methods. Every answer must be a 2xx or a 4xx with a JSON body
 * that says what was wrong (never a 5xx), memory must stay bounded, and it must still serve.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { resolve } from 'node:path';
import { peakRssMb, useRedis } from '@ghl-ingest/testing';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';

const MAIN = resolve(import.meta.dirname, '../src/main.ts');
const TOKEN = 'fuzz-intake-token-41c9';
const valid = { locationId: 'locA', type: 'SMS', contactId: 'c1', message: 'hello', altId: 'fuzz-ok' };

interface Answer {
  status: number;
  body: string;
}

describe('hostile intake requests', () => {
  const redis = useRedis();
  let child: ChildProcess | undefined;

  afterEach(async () => {
    if (child !== undefined && child.exitCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  });

  async function serve(): Promise<{ url: string; peakMb: () => number; output: () => string }> {
    const c = spawn(process.execPath, ['--max-old-space-size=128', '--max-semi-space-size=16', MAIN, 'serve', '--port', '0'], {
      env: { ...process.env, REDIS_URL: redis.url, QUEUE_PREFIX: redis.prefix, INTAKE_TOKEN: TOKEN, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    let output = '';
    c.stdout.on('data', (d: Buffer) => (output += d.toString()));
    c.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const url = await new Promise<string>((ok, fail) => {
      const check = () => {
        const m = /intake listening on (\S+)/.exec(output);
        if (m?.[1] !== undefined) ok(m[1]);
      };
      c.stderr.on('data', check);
      c.once('exit', (code) => {
        fail(new Error(`intake exited ${String(code)}: ${output}`));
      });
    });
    const peakMb = () => peakRssMb(c.pid ?? 0);
    return { url, peakMb, output: () => output };
  }

  async function send(url: string, body: string | Buffer, contentType: string | null = 'application/json', method = 'POST'): Promise<Answer> {
    const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
    if (contentType !== null) headers['content-type'] = contentType;
    const res = await fetch(`${url}/v1/messages`, { method, headers, ...(method === 'GET' ? {} : { body }) });
    return { status: res.status, body: await res.text() };
  }

  /** A 2xx, or a 4xx (or the documented 503 "busy" backpressure) whose JSON body names the error and says why. */
  function expectClear(a: Answer, what: string): void {
    if (a.status !== 503 || !a.body.includes('"busy"')) expect(a.status, `${what}: ${a.body.slice(0, 300)}`).toBeLessThan(500);
    if (a.status >= 400) {
      const parsed = JSON.parse(a.body) as { error?: unknown; message?: unknown };
      expect(typeof parsed.error, what).toBe('string');
      expect(typeof parsed.message, what).toBe('string');
    }
  }

  it('never answers 5xx, says what was wrong, stays bounded, and still serves', async () => {
    const intake = await serve();
    const seen = new Map<number, number>();
    const check = async (body: string | Buffer, what: string, contentType?: string | null, method?: string) => {
      const a = await send(intake.url, body, contentType, method);
      seen.set(a.status, (seen.get(a.status) ?? 0) + 1);
      expectClear(a, what);
      return a;
    };

    // Random bytes, and random JSON values (objects, arrays, strings, numbers, nulls, nested).
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), async (bytes) => {
        await check(Buffer.from(bytes), 'random bytes');
      }),
      { numRuns: 150 },
    );
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 6 }), async (value) => {
        await check(JSON.stringify(value), 'random JSON');
      }),
      { numRuns: 150 },
    );
    // Records that look nearly right: random values in every known field.
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            locationId: fc.jsonValue(),
            type: fc.jsonValue(),
            contactId: fc.jsonValue(),
            message: fc.jsonValue(),
            date: fc.jsonValue(),
            attachments: fc.jsonValue(),
          },
          { requiredKeys: [] },
        ),
        async (record) => {
          await check(JSON.stringify([record, valid]), 'near-valid records');
        },
      ),
      { numRuns: 100 },
    );

    // Invalid UTF-8 inside a string, a lone surrogate escape, NUL bytes.
    await check(
      Buffer.concat([Buffer.from('{"locationId":"locA","type":"SMS","contactId":"c","message":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]),
      'invalid UTF-8',
    );
    await check('{"locationId":"locA","type":"SMS","contactId":"c","message":"\\ud800"}', 'lone surrogate');
    await check('{"locationId":"locA\\u0000","type":"SMS","contactId":"c","message":"x"}', 'NUL in an id');
    // Deep nesting: as the body, and inside a field.
    await check(`${'['.repeat(100_000)}${']'.repeat(100_000)}`, 'deep array');
    await check(`${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`, 'deep object');
    await check(`{"locationId":"locA","type":"SMS","contactId":"c","message":${'['.repeat(10_000)}${']'.repeat(10_000)}}`, 'deep field');
    // Many fields, many records, one huge string, a body just over the limit.
    await check(JSON.stringify(Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`f${i}`, i]))), 'fifty thousand fields');
    const tooMany = await check(JSON.stringify(Array.from({ length: 1001 }, () => valid)), 'too many records');
    expect(tooMany.status).toBe(413);
    const big = await check(JSON.stringify({ ...valid, message: 'x'.repeat(10 * 1024 * 1024) }), 'over 10 MB');
    expect(big.status).toBe(413);
    // Eight bodies of 9 MB at once: some wait their turn (503 busy, Retry-After), the heap cap (128 MB) holds.
    const nine = JSON.stringify([{ ...valid, message: 'y'.repeat(9 * 1024 * 1024) }]);
    const all = await Promise.all(Array.from({ length: 8 }, () => check(nine, 'concurrent large bodies')));
    expect(all.filter((a) => a.status === 400).length).toBeGreaterThanOrEqual(1); // over the 65,536-character message limit
    expect(all.filter((a) => a.status === 503).length).toBeGreaterThanOrEqual(1);
    // Wrong media types and methods.
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml']) {
      await check('locationId=locA', `content-type ${type}`, type);
    }
    await check(JSON.stringify(valid), 'no content-type', null);
    await check(JSON.stringify(valid), 'charset latin1', 'application/json; charset=latin1');
    await check('', 'empty body');
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) await check(JSON.stringify(valid), `${method} /v1/messages`, 'application/json', method);

    // Eight gzip bombs at once, 64 MB each in about 64 KB: refused after 10 MB decompressed, or busy.
    const bomb = gzipSync(
      Buffer.concat([Buffer.from(`{"locationId":"locA","type":"SMS","contactId":"c","message":"`), Buffer.alloc(64 * 1024 * 1024, 'z'), Buffer.from('"}')]),
    );
    const bombs = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await fetch(`${intake.url}/v1/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
          body: bomb,
        });
        const a = { status: res.status, body: await res.text() };
        seen.set(a.status, (seen.get(a.status) ?? 0) + 1);
        expectClear(a, 'gzip bomb');
        return a.status;
      }),
    );
    expect(bombs.every((status) => status === 413 || status === 503)).toBe(true);
    expect(bombs).toContain(413);

    // Still serving, and a valid message still goes in.
    const ok = await send(intake.url, JSON.stringify(valid));
    expect(ok.status).toBe(202);
    expect((await fetch(`${intake.url}/healthz`)).status).toBe(200);
    console.log(`intake peak RSS ${Math.round(intake.peakMb())} MB; answers by status ${JSON.stringify(Object.fromEntries(seen))}`);
    expect(intake.peakMb()).toBeLessThan(400);
    expect(intake.output()).not.toContain('intake error');
    expect([...seen.keys()].every((s) => s < 500 || s === 503)).toBe(true);
  }, 120_000);

  /** A request whose body is still being sent: the intake must treat it as in progress. */
  function openRequest(url: string): { req: ClientRequest; answer: Promise<number> } {
    const req = httpRequest(`${url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    });
    const answer = new Promise<number>((ok, fail) => {
      req.on('response', (res) => {
        res.resume();
        ok(res.statusCode ?? 0);
      });
      req.on('error', fail);
    });
    req.write(JSON.stringify(valid).slice(0, 20));
    return { req, answer };
  }

  it('stops like the worker: SIGTERM finishes requests in progress and exits 0; a second signal exits at once', async () => {
    const first = await serve();
    const c = child;
    if (c === undefined) throw new Error('no intake process');
    const open = openRequest(first.url);
    await sleep(200);
    const exited = once(c, 'exit') as Promise<[number | null]>;
    c.kill('SIGTERM');
    await sleep(500);
    expect(c.exitCode).toBeNull(); // still answering the request in progress
    open.req.end(JSON.stringify(valid).slice(20));
    expect(await open.answer).toBe(202);
    expect((await exited)[0]).toBe(0);

    const second = await serve();
    const d = child;
    if (d === undefined) throw new Error('no intake process');
    const stuck = openRequest(second.url);
    stuck.answer.catch(() => undefined);
    await sleep(200);
    const gone = once(d, 'exit') as Promise<[number | null]>;
    d.kill('SIGTERM');
    await sleep(300);
    d.kill('SIGTERM');
    expect((await gone)[0]).toBe(130);
    stuck.req.destroy();
  }, 60_000);
});
