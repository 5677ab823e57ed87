import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { CONTACTS_VERSION } from './content-routes.ts';
import { API_VERSION, FakeHighLevel, INBOUND_PATH, type FakeHighLevelOptions } from './server.ts';

let fake: FakeHighLevel | undefined;

afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function start(options: FakeHighLevelOptions = {}): Promise<FakeHighLevel> {
  fake = await FakeHighLevel.start({ tokens: { 'tok-a': 'locA', 'tok-b': 'locB' }, ...options });
  return fake;
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> | undefined;
}

async function call(method: string, path: string, opts: { json?: unknown; form?: FormData; version?: string | null; token?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${opts.token ?? 'tok-a'}` };
  if (opts.version !== null) headers.version = opts.version ?? (path === '/contacts/upsert' ? CONTACTS_VERSION : API_VERSION);
  if (opts.json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${(fake as FakeHighLevel).url}${path}`, {
    method,
    headers,
    ...(opts.json !== undefined ? { body: JSON.stringify(opts.json) } : opts.form !== undefined ? { body: opts.form } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) };
}

const upsert = (body: Record<string, unknown>, token?: string) =>
  call('POST', '/contacts/upsert', { json: { locationId: 'locA', ...body }, ...(token === undefined ? {} : { token }) });
const contactOf = (a: Answer) => a.body?.contact as { id: string; phone?: string; email?: string; name?: string };

function filesForm(conversationId: string | undefined, files: { name: string; bytes: number }[]): FormData {
  const form = new FormData();
  for (const f of files) form.append('fileAttachment', new Blob([new Uint8Array(f.bytes).fill(7)]), f.name);
  if (conversationId !== undefined) form.append('conversationId', conversationId);
  form.append('locationId', 'locA');
  return form;
}

async function conversationFor(contactId: string): Promise<string> {
  const made = await call('POST', '/conversations/', { json: { locationId: 'locA', contactId } });
  expect(made.status).toBe(201);
  return (made.body?.conversation as { id: string }).id;
}

describe('POST /contacts/upsert', () => {
  it('creates a contact once: the same phone again finds it, with its numbers normalised as HighLevel stores them', async () => {
    await start();
    const first = await upsert({ phone: '+1 (415) 555-0100', firstName: 'Ada', lastName: 'Lovelace' });
    expect(first.status).toBe(200);
    expect(first.body?.new).toBe(true);
    expect(contactOf(first)).toMatchObject({ phone: '+14155550100', name: 'Ada Lovelace' });
    expect(first.headers.get('x-ratelimit-remaining')).toBe('99');
    const again = await upsert({ phone: '+14155550100' });
    expect(again.body).toMatchObject({ new: false, contact: { id: contactOf(first).id } });
    expect(fake?.stats()).toMatchObject({ upserts: 2, contactsCreated: 1, requestsByRoute: { upsert: 2 } });
    expect(fake?.contacts('locA')).toHaveLength(1);
    // Another location's contacts are its own.
    expect((await upsert({ phone: '+14155550100' }, 'tok-b')).status).toBe(403);
    expect((await call('POST', '/contacts/upsert', { json: { locationId: 'locB', phone: '+14155550100' }, token: 'tok-b' })).body?.new).toBe(true);
  });

  it.each([
    { contactMatch: ['email', 'phone'] as const, wins: 'byEmail' },
    { contactMatch: ['phone', 'email'] as const, wins: 'byPhone' },
  ])('follows the duplicate rule $contactMatch: the first field that finds a contact wins', async ({ contactMatch, wins }) => {
    await start({ duplicates: { contactMatch: [...contactMatch] } });
    const byEmail = contactOf(await upsert({ email: 'ada@example.com' }));
    const byPhone = contactOf(await upsert({ phone: '+14155550100' }));
    const both = await upsert({ email: 'ADA@example.com', phone: '+14155550100' });
    expect(both.body?.new).toBe(false);
    expect(contactOf(both).id).toBe(wins === 'byEmail' ? byEmail.id : byPhone.id);
    // The other field belongs to another contact: it is left off the update, never shared.
    expect(fake?.contacts('locA').filter((c) => c.phone === '+14155550100')).toHaveLength(1);
    expect(fake?.contacts('locA').filter((c) => c.email === 'ada@example.com')).toHaveLength(1);
  });

  it('creates a duplicate only where the location allows it and the upsert asks', async () => {
    await start({ duplicatesPerLocation: { locA: { allowDuplicates: true } } });
    await upsert({ phone: '+14155550100' });
    expect((await upsert({ phone: '+14155550100' })).body?.new).toBe(false);
    expect((await upsert({ phone: '+14155550100', createNewIfDuplicateAllowed: true })).body?.new).toBe(true);
    await call('POST', '/contacts/upsert', { json: { locationId: 'locB', phone: '+14155550100' }, token: 'tok-b' });
    const b = await call('POST', '/contacts/upsert', {
      json: { locationId: 'locB', phone: '+14155550100', createNewIfDuplicateAllowed: true },
      token: 'tok-b',
    });
    expect(b.body?.new).toBe(false);
  });

  it('refuses what HighLevel refuses, with its reasons', async () => {
    await start({ rejectPhones: ['+14155550199'] });
    expect(await upsert({ phone: '12' })).toMatchObject({ status: 400, body: { message: ['phone must be a valid phone number'] } });
    expect(await upsert({ email: 'not-an-email' })).toMatchObject({ status: 400, body: { message: ['email must be an email'] } });
    expect(await upsert({ firstName: 'Ada' })).toMatchObject({ status: 400, body: { message: 'Either email or phone is required' } });
    expect(await upsert({ phone: 14155550100 })).toMatchObject({ status: 422, body: { message: ['phone must be a string'] } });
    expect((await upsert({ phone: '+14155550199' })).status).toBe(422);
    expect((await call('POST', '/contacts/upsert', { json: { locationId: 'locA', phone: '+14155550100' }, version: API_VERSION })).status).toBe(400);
    expect(fake?.stats().contactsCreated).toBe(0);
  });

  it('has the inbound post faults: 5xx touches nothing; a reset after recording leaves the contact for the retry to find', async () => {
    await start({ faults: { status500: 1 } });
    expect((await upsert({ phone: '+14155550100' })).status).toBe(500);
    expect(fake?.contacts()).toEqual([]);
    fake?.configure({ faults: { status500: 0, dropAfterAccept: 1 } });
    await expect(upsert({ phone: '+14155550100' })).rejects.toThrow();
    expect(fake?.stats()).toMatchObject({ contactsCreated: 1, acceptedUnanswered: 1 });
    fake?.configure({ faults: { dropAfterAccept: 0 } });
    expect((await upsert({ phone: '+14155550100' })).body?.new).toBe(false);
    // Faults strike only the routes faultRoutes names.
    fake?.configure({ faults: { status500: 1 }, faultRoutes: ['inbound'] });
    expect((await upsert({ phone: '+14155550101' })).status).toBe(200);
  });
});

describe('POST /conversations/ and search', () => {
  it('one conversation per contact: a second create answers 400 already exists', async () => {
    await start();
    const made = await call('POST', '/conversations/', { json: { locationId: 'locA', contactId: 'ct1' } });
    expect(made).toMatchObject({ status: 201, body: { success: true, conversation: { contactId: 'ct1', locationId: 'locA' } } });
    const again = await call('POST', '/conversations/', { json: { locationId: 'locA', contactId: 'ct1' } });
    expect(again).toMatchObject({ status: 400, body: { message: 'Conversation with the contact id:ct1 already exists!' } });
    expect((await call('POST', '/conversations/', { json: { locationId: 'locA' } })).status).toBe(422);
    // The inbound post for that contact lands in the conversation created for it.
    const posted = await call('POST', INBOUND_PATH, { json: { type: 'SMS', contactId: 'ct1', message: 'hi' } });
    expect(posted.body?.conversationId).toBe((made.body?.conversation as { id: string }).id);
    expect(fake?.stats().conversationsCreated).toBe(1);
  });

  it('search lags a create by searchLagMs (HighLevel issue #5)', async () => {
    await start({ searchLagMs: 300 });
    const id = await conversationFor('ct1');
    const search = () => call('GET', '/conversations/search?locationId=locA&contactId=ct1');
    expect((await search()).body?.conversations).toEqual([]);
    await sleep(350);
    expect((await search()).body?.conversations).toMatchObject([{ id }]);
  });
});

describe('POST /conversations/messages/upload', () => {
  it('stores the files and answers their URLs, which serve the bytes until they expire', async () => {
    await start({ uploadTtlMs: 400 });
    const conversationId = await conversationFor('ct1');
    const up = await call('POST', '/conversations/messages/upload', {
      form: filesForm(conversationId, [
        { name: 'a.pdf', bytes: 1000 },
        { name: 'b.png', bytes: 10 },
      ]),
    });
    expect(up.status).toBe(200);
    const urls = up.body?.uploadedFiles as Record<string, string>;
    expect(Object.keys(urls)).toEqual(['a.pdf', 'b.png']);
    const served = await fetch(urls['a.pdf'] as string);
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toBe('application/pdf');
    expect((await served.arrayBuffer()).byteLength).toBe(1000);
    expect(fake?.stats()).toMatchObject({ uploadRequests: 1, uploads: 2, uploadBytes: 1010 });
    // Posted at once: counted, with its age.
    await call('POST', INBOUND_PATH, { json: { type: 'SMS', contactId: 'ct1', message: 'see', attachments: [urls['b.png']] } });
    expect(fake?.stats()).toMatchObject({ attachmentsPosted: 1, attachmentsExpired: 0 });
    expect(fake?.stats().uploadAgeMaxMs).toBeLessThan(400);
    await sleep(450);
    expect((await fetch(urls['a.pdf'] as string)).status).toBe(403);
    await call('POST', INBOUND_PATH, { json: { type: 'SMS', contactId: 'ct1', message: 'late', attachments: [urls['a.pdf']] } });
    expect(fake?.stats()).toMatchObject({ attachmentsPosted: 2, attachmentsExpired: 1 });
  });

  it('refuses what HighLevel refuses: too many, too large, the wrong type, no conversation', async () => {
    await start({ uploadMaxBytes: 1000 });
    const conversationId = await conversationFor('ct1');
    const upload = (form: FormData) => call('POST', '/conversations/messages/upload', { form });
    const six = Array.from({ length: 6 }, (_, i) => ({ name: `f${i}.txt`, bytes: 1 }));
    expect(await upload(filesForm(conversationId, six))).toMatchObject({ status: 400, body: { message: 'Too many files' } });
    expect(await upload(filesForm(conversationId, [{ name: 'big.pdf', bytes: 1001 }]))).toMatchObject({ status: 413 });
    expect(await upload(filesForm(conversationId, [{ name: 'tool.exe', bytes: 10 }]))).toMatchObject({ status: 415 });
    expect((await upload(filesForm(undefined, [{ name: 'a.txt', bytes: 10 }]))).status).toBe(400);
    expect((await upload(filesForm('nope', [{ name: 'a.txt', bytes: 10 }]))).status).toBe(400);
    expect(await upload(filesForm(conversationId, [{ name: 'ok.txt', bytes: 1000 }]))).toMatchObject({ status: 200 });
    expect(fake?.stats()).toMatchObject({ uploads: 1, uploadBytes: 1000 });
  });
});

describe('one budget for every call', () => {
  it('upserts, conversations, uploads, reads and posts of a location take from one rolling window', async () => {
    await start({ limits: { max: 5, windowMs: 60_000 } });
    const contact = contactOf(await upsert({ phone: '+14155550100' }));
    const conversationId = await conversationFor(contact.id);
    expect((await call('GET', `/conversations/search?locationId=locA&contactId=${contact.id}`)).status).toBe(200);
    expect((await call('POST', '/conversations/messages/upload', { form: filesForm(conversationId, [{ name: 'a.txt', bytes: 3 }]) })).status).toBe(200);
    expect((await call('POST', INBOUND_PATH, { json: { type: 'SMS', contactId: contact.id, message: 'hi' } })).status).toBe(201);
    const sixth = await upsert({ phone: '+14155550101' });
    expect(sixth.status).toBe(429);
    expect(fake?.stats()).toMatchObject({ rateLimited: 1, requestsByRoute: { upsert: 2, conversation: 1, read: 1, upload: 1, inbound: 1 } });
    // Another location's window is its own.
    expect((await call('POST', '/contacts/upsert', { json: { locationId: 'locB', phone: '+14155550100' }, token: 'tok-b' })).status).toBe(200);
  });
});
