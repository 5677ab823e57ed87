import { afterEach, describe, expect, it } from 'vitest';
import { API_VERSION, FakeHighLevel, INBOUND_PATH } from './server.ts';

let fake: FakeHighLevel | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const headers = { 'content-type': 'application/json', authorization: 'Bearer locA', version: API_VERSION };
async function post(f: FakeHighLevel, body: Record<string, unknown>) {
  const res = await fetch(`${f.url}${INBOUND_PATH}`, { method: 'POST', headers, body: JSON.stringify(body) });
  return (await res.json()) as { conversationId: string; messageId: string };
}
async function get(f: FakeHighLevel, path: string) {
  const res = await fetch(`${f.url}${path}`, { headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('the read side, as HighLevel documents it', () => {
  it('one conversation per contact; its messages newest first, paged with lastMessageId, each with its altId', async () => {
    fake = await FakeHighLevel.start();
    const sent = [];
    for (let i = 0; i < 5; i += 1)
      sent.push(await post(fake, { type: 'SMS', contactId: 'c1', message: `m${i}`, altId: `a${i}`, date: `2024-01-0${i + 1}T00:00:00Z` }));
    expect(new Set(sent.map((s) => s.conversationId)).size).toBe(1);
    const search = await get(fake, `/conversations/search?locationId=locA&contactId=c1`);
    expect(search.body).toMatchObject({ total: 1, conversations: [{ id: sent[0]?.conversationId, contactId: 'c1', locationId: 'locA' }] });
    const first = await get(fake, `/conversations/${sent[0]?.conversationId ?? ''}/messages?limit=2`);
    const page = first.body.messages as { lastMessageId: string; nextPage: boolean; messages: { id: string; altId: string; dateAdded: string }[] };
    expect(page.messages.map((m) => m.altId)).toEqual(['a4', 'a3']);
    expect(page.messages[0]?.dateAdded).toBe('2024-01-05T00:00:00Z');
    expect(page.nextPage).toBe(true);
    const second = await get(fake, `/conversations/${sent[0]?.conversationId ?? ''}/messages?limit=2&lastMessageId=${page.lastMessageId}`);
    expect((second.body.messages as { messages: { altId: string }[] }).messages.map((m) => m.altId)).toEqual(['a2', 'a1']);
    expect(fake.stats().reads).toBe(3);
  });

  it('switches: altId left out; no read scope (401); another location cannot read (404, 403)', async () => {
    fake = await FakeHighLevel.start({ reads: { altId: false } });
    const { conversationId } = await post(fake, { type: 'SMS', contactId: 'c1', message: 'm', altId: 'a' });
    const page = (await get(fake, `/conversations/${conversationId}/messages`)).body.messages as { messages: Record<string, unknown>[] };
    expect(page.messages[0]).not.toHaveProperty('altId');
    expect((await get(fake, `/conversations/search?locationId=locB&contactId=c1`)).status).toBe(403);
    const other = await fetch(`${fake.url}/conversations/${conversationId}/messages`, { headers: { ...headers, authorization: 'Bearer locB' } });
    expect(other.status).toBe(404);
    fake.configure({ reads: { scope: false } });
    expect((await get(fake, `/conversations/${conversationId}/messages`)).status).toBe(401);
  });

  it('slowAfterAccept records the message, then answers late', async () => {
    fake = await FakeHighLevel.start({ faults: { slowAfterAccept: 1, slowAfterAcceptMs: 300 } });
    const aborted = await fetch(`${fake.url}${INBOUND_PATH}`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ type: 'SMS', contactId: 'c1', message: 'm', altId: 'slow' }),
      signal: AbortSignal.timeout(100),
    }).catch((error: unknown) => error);
    expect(aborted).toBeInstanceOf(Error);
    expect(fake.messages().map((m) => m.altId)).toEqual(['slow']);
    await new Promise((r) => setTimeout(r, 350));
    expect(fake.stats().acceptedUnanswered).toBe(1);
  });
});
