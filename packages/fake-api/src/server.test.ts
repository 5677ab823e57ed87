import { afterEach, describe, expect, it } from 'vitest';
import { API_VERSION, FakeHighLevel, INBOUND_PATH, type FakeHighLevelOptions } from './server.ts';

const sms = { type: 'SMS', contactId: 'c1', message: 'hello', direction: 'inbound' };
let fake: FakeHighLevel | undefined;

afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function start(options: FakeHighLevelOptions = {}): Promise<FakeHighLevel> {
  fake = await FakeHighLevel.start({ tokens: { 'tok-a': 'locA', 'tok-b': 'locB' }, ...options });
  return fake;
}

async function post(body: unknown, opts: { token?: string | null; version?: string | null } = {}) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? 'tok-a'}`;
  if (opts.version !== null) headers.version = opts.version ?? API_VERSION;
  const res = await fetch(`${(fake as FakeHighLevel).url}${INBOUND_PATH}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) };
}

async function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${(fake as FakeHighLevel).url}/__admin/${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return res.json();
}

describe('POST /conversations/messages/inbound', () => {
  it('accepts a valid message: 201 with a messageId and all five rate headers', async () => {
    await start();
    const res = await post({ ...sms, altId: 'a1' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ success: true, contactId: 'c1' });
    expect(res.body?.messageId).toMatch(/^[A-Za-z0-9]{20}$/);
    expect(Object.fromEntries([...res.headers].filter(([k]) => k.startsWith('x-ratelimit')))).toEqual({
      'x-ratelimit-limit-daily': '200000',
      'x-ratelimit-daily-remaining': '199999',
      'x-ratelimit-interval-milliseconds': '10000',
      'x-ratelimit-max': '100',
      'x-ratelimit-remaining': '99',
    });
    const [m] = (fake as FakeHighLevel).messages();
    expect(m).toMatchObject({ locationId: 'locA', altId: 'a1', messageId: res.body?.messageId, body: { ...sms, altId: 'a1' } });
  });

  it('refuses a missing, unknown or revoked token with 401', async () => {
    await start();
    expect((await post(sms, { token: null })).status).toBe(401);
    expect((await post(sms, { token: 'nope' })).status).toBe(401);
    await admin('PATCH', 'config', { tokens: { 'tok-a': null } });
    expect((await post(sms)).status).toBe(401);
    expect((await post(sms, { token: 'tok-b' })).status).toBe(201);
  });

  it('accepts any token as its own location when no tokens are configured', async () => {
    fake = await FakeHighLevel.start();
    expect((await post(sms, { token: 'anything' })).status).toBe(201);
    expect(fake.messages()[0]?.locationId).toBe('anything');
  });

  it('refuses a missing Version header with 400', async () => {
    await start();
    const res = await post(sms, { version: null });
    expect(res.status).toBe(400);
    expect(res.body?.message).toContain(API_VERSION);
  });

  it.each([
    ['an unknown type', { ...sms, type: 'Pigeon' }, 422, 'type must be one of'],
    ['an unknown field', { ...sms, colour: 'red' }, 422, 'property colour should not exist'],
    ['a wrong field type', { ...sms, message: 5 }, 422, 'message must be a string'],
    ['a bad direction', { ...sms, direction: 'up' }, 422, 'direction must be one of'],
    ['a bad date', { ...sms, date: 'yesterday' }, 422, 'date must be a valid ISO 8601'],
    ['a bad call status', { ...sms, call: { status: 'ringing' } }, 422, 'call.status must be one of'],
    ['no conversation or contact', { type: 'SMS', message: 'x' }, 400, 'conversationId or contactId'],
    ['a WhatsApp without provider', { ...sms, type: 'WhatsApp' }, 400, 'conversationProviderId is required'],
    ['a Call without numbers', { ...sms, type: 'Call', conversationProviderId: 'p' }, 400, 'call.to and call.from'],
  ])('answers %s NestJS-style', async (_name, body, status, message) => {
    await start();
    const res = await post(body);
    expect(res.status).toBe(status);
    expect(res.body?.statusCode).toBe(status);
    const text = Array.isArray(res.body?.message) ? (res.body.message as string[]).join('\n') : String(res.body?.message);
    expect(text).toContain(message);
    if (status === 422) expect(Array.isArray(res.body?.message)).toBe(true);
  });

  it('refuses messages over maxMessageChars with 422 when configured', async () => {
    await start({ maxMessageChars: 3 });
    const res = await post(sms);
    expect(res.status).toBe(422);
    expect(res.body?.message).toEqual(['message must be shorter than or equal to 3 characters']);
  });

  it('answers malformed JSON with a NestJS-style 400', async () => {
    await start();
    const res = await post('{"type":');
    expect(res.status).toBe(400);
    expect(res.body?.statusCode).toBe(400);
  });

  it('answers an unknown provider 400 "Invalid conversationProviderId" when providers are configured', async () => {
    await start({ providers: ['p1'] });
    expect((await post({ ...sms, type: 'WhatsApp', conversationProviderId: 'p2' })).body?.message).toBe('Invalid conversationProviderId');
    expect((await post({ ...sms, type: 'WhatsApp', conversationProviderId: 'p1' })).status).toBe(201);
  });
});

describe('rate limits', () => {
  it('answers the 101st request inside the window with 429 and headers, per location', async () => {
    await start();
    const answers = await Promise.all(Array.from({ length: 101 }, (_, i) => post({ ...sms, altId: `m${i}` })));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(100);
    const refused = answers.find((a) => a.status === 429);
    expect(refused?.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(refused?.headers.get('x-ratelimit-max')).toBe('100');
    expect(refused?.headers.get('retry-after')).toBeNull();
    expect((await post(sms, { token: 'tok-b' })).status).toBe(201); // another location's budget is its own
    expect((fake as FakeHighLevel).stats()).toMatchObject({ rateLimited: 1, rateLimitedByLocation: { locA: 1 } });
  });

  it('frees the rolling window as requests age out', async () => {
    await start({ limits: { max: 2, windowMs: 300 } });
    expect((await post(sms)).status).toBe(201);
    expect((await post(sms)).status).toBe(201);
    expect((await post(sms)).status).toBe(429);
    await new Promise((r) => setTimeout(r, 320));
    expect((await post(sms)).status).toBe(201);
  });

  it('sends Retry-After when asked to', async () => {
    await start({ limits: { max: 1, windowMs: 5000 }, retryAfter: true });
    await post(sms);
    const res = await post(sms);
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(4);
  });

  it('enforces the daily cap and reports it in the headers', async () => {
    await start({ limits: { daily: 2 } });
    await post(sms);
    const second = await post(sms);
    expect(second.headers.get('x-ratelimit-daily-remaining')).toBe('0');
    const third = await post(sms);
    expect(third.status).toBe(429);
    expect(third.headers.get('x-ratelimit-daily-remaining')).toBe('0');
  });

  it('lets another client spend a location budget, and limits change at run time', async () => {
    await start({ limits: { max: 5 } });
    expect(await admin('POST', 'spend', { locationId: 'locA', count: 4 })).toEqual({ spent: 4 });
    expect((await post(sms)).headers.get('x-ratelimit-remaining')).toBe('0');
    expect((await post(sms)).status).toBe(429);
    await admin('PATCH', 'config', { perLocation: { locB: { max: 1 } } });
    expect((await post(sms, { token: 'tok-b' })).status).toBe(201);
    expect((await post(sms, { token: 'tok-b' })).status).toBe(429);
  });

  it('in fixed mode lets a burst through at each window edge', async () => {
    await start({ limits: { max: 2, windowMs: 200, mode: 'fixed' } });
    const now = performance.now();
    await new Promise((r) => setTimeout(r, 200 - (now % 200) + 5));
    const statuses = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await post(sms)).status);
    expect(statuses).toEqual([201, 201, 429]);
  });
});

describe('fault knobs', () => {
  it.each([
    ['status500', 500],
    ['status502', 502],
    ['status503', 503],
  ] as const)('%s answers %i and records nothing', async (knob, status) => {
    await start({ faults: { [knob]: 1 } });
    expect((await post(sms)).status).toBe(status);
    expect((fake as FakeHighLevel).stats().accepted).toBe(0);
  });

  it('drop resets the connection before recording', async () => {
    await start({ faults: { drop: 1 } });
    await expect(post(sms)).rejects.toThrow();
    expect((fake as FakeHighLevel).stats()).toMatchObject({ accepted: 0, dropped: 1 });
  });

  it('dropAfterAccept records the message, then resets the connection', async () => {
    await start({ faults: { dropAfterAccept: 1 } });
    await expect(post(sms)).rejects.toThrow();
    expect((fake as FakeHighLevel).stats()).toMatchObject({ accepted: 1, dropped: 1, acceptedUnanswered: 1 });
  });

  it('records a message whose client gave up waiting, and counts it as unanswered', async () => {
    await start({ latency: { minMs: 300, maxMs: 300 } });
    await expect(
      fetch(`${(fake as FakeHighLevel).url}${INBOUND_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer tok-a', version: API_VERSION },
        body: JSON.stringify(sms),
        signal: AbortSignal.timeout(50),
      }),
    ).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 400));
    expect((fake as FakeHighLevel).stats()).toMatchObject({ accepted: 1, acceptedUnanswered: 1 });
  });

  it('empty201 answers 201 with no body and creates nothing', async () => {
    await start({ faults: { empty201: 1 } });
    const res = await post(sms);
    expect(res).toMatchObject({ status: 201, body: undefined });
    expect((fake as FakeHighLevel).stats().accepted).toBe(0);
  });

  it('latency and slow answers delay the answer', async () => {
    await start({ latency: { minMs: 50, maxMs: 60 } });
    let t = performance.now();
    await post(sms);
    expect(performance.now() - t).toBeGreaterThanOrEqual(45);
    (fake as FakeHighLevel).configure({ latency: { minMs: 0, maxMs: 0, slowProbability: 1, slowMs: 150 } });
    t = performance.now();
    await post(sms);
    expect(performance.now() - t).toBeGreaterThanOrEqual(140);
  });

  it('a scripted outage answers 503 for its length, then recovers', async () => {
    await start();
    await admin('POST', 'outage', { ms: 200 });
    expect((await post(sms)).status).toBe(503);
    await new Promise((r) => setTimeout(r, 220));
    expect((await post(sms)).status).toBe(201);
  });

  it('faults are settable at run time through the admin route', async () => {
    await start();
    await admin('PATCH', 'config', { faults: { status502: 1 } });
    expect((await post(sms)).status).toBe(502);
    await admin('PATCH', 'config', { faults: { status502: 0 } });
    expect((await post(sms)).status).toBe(201);
  });
});

describe('recording', () => {
  it('counts duplicates by altId and by body, per location', async () => {
    await start();
    await post({ ...sms, altId: 'x' });
    await post({ ...sms, altId: 'x', message: 'other' }); // same altId
    await post({ ...sms, altId: 'x' }); // same altId and same body
    await post({ ...sms, altId: 'x' }, { token: 'tok-b' }); // another location: not a duplicate
    const stats = await admin('GET', 'stats');
    expect(stats).toMatchObject({ accepted: 4, duplicateAltIds: 2, duplicateBodies: 1, acceptedByLocation: { locA: 3, locB: 1 } });
    const messages = (await admin('GET', 'messages?locationId=locB')) as { locationId: string }[];
    expect(messages.map((m) => m.locationId)).toEqual(['locB']);
  });

  it('keeps hashes only when bodies are not recorded, and reset clears everything', async () => {
    await start({ recordBodies: false });
    await post(sms);
    expect((fake as FakeHighLevel).messages()[0]).not.toHaveProperty('body');
    await admin('POST', 'reset');
    expect((fake as FakeHighLevel).stats().accepted).toBe(0);
    expect((fake as FakeHighLevel).messages()).toEqual([]);
  });
});
