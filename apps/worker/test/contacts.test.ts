/**
 * Messages that name their contact by phone or email, and carry local files: the worker finds or
 * creates each contact once (across processes), finds or creates its conversation when a file
 * needs one, uploads files right before the post, and acts on HighLevel's refusals as it does on a
 * post's. HighLevel is the stand-in, with its upsert duplicate rule, its search lag, its upload
 * limits and one rate window for every call.
 */
import { FileStore } from '@ghl-ingest/queue';
import { normalizeRecord, toJobData } from '@ghl-ingest/schema';
import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { until, useHarness } from './harness.ts';

describe('contacts by phone or email, and files uploaded right before the post', () => {
  const redis = useRedis();
  const harness = useHarness(redis);

  const named = (i: number, contact: Record<string, string>, extra: Record<string, unknown> = {}) => ({
    locationId: 'locA',
    type: 'SMS',
    message: `message ${i}`,
    key: `m${i}`,
    contact,
    ...extra,
  });

  it('one upsert per contact across two workers; every message posted once with its contact', async () => {
    const h = await harness();
    const phones = Array.from({ length: 8 }, (_, i) => `+1415555${String(100 + i).padStart(4, '0')}`);
    // Three messages per contact, interleaved, some naming the email too.
    const records = Array.from({ length: 24 }, (_, i) =>
      named(i, i % 2 === 0 ? { phone: phones[i % 8] as string } : { phone: phones[i % 8] as string, email: `p${i % 8}@example.com` }),
    );
    await h.send(records);
    await Promise.all([h.worker(), h.worker()]);
    await until(() => h.fake.stats().accepted >= 24, 30_000, 'every message');
    await h.settled(['locA']);
    expect(await h.deadLettered()).toEqual([]);
    expect(h.fake.stats()).toMatchObject({ accepted: 24, duplicateAltIds: 0, contactsCreated: 8, upserts: 8, rateLimited: 0 });
    const byPhone = new Map(h.fake.contacts('locA').map((c) => [c.phone, c.id]));
    expect(byPhone.size).toBe(8);
    for (const m of h.fake.messages()) {
      const i = Number(String(m.body?.message).split(' ')[1]);
      expect(m.body?.contactId).toBe(byPhone.get(phones[i % 8]));
    }
    const [snapshot] = await h.state.snapshot(['locA']);
    expect(snapshot?.contacts).toEqual({ found: 0, created: 8 });
  }, 60_000);

  it('an upsert that fails is retried; a post that fails after it does not make a second contact', async () => {
    const h = await harness();
    // Upserts fail with 503 (each failure is an attempt of the message's five) ...
    h.fake.configure({ faults: { status503: 1 }, faultRoutes: ['upsert'] });
    await h.send([named(1, { phone: '+14155550100' })]);
    await h.worker();
    await until(() => (h.fake.stats().requestsByRoute.upsert ?? 0) >= 2, 20_000, 'the upsert again');
    // ... then the upsert goes through and the post fails.
    h.fake.configure({ faultRoutes: ['inbound'] });
    await until(() => h.fake.stats().contactsCreated === 1, 20_000, 'the contact');
    await until(() => (h.fake.stats().byStatus['503'] ?? 0) >= 3, 20_000, 'a failed post after the contact');
    h.fake.configure({ faults: { status503: 0 } });
    await until(() => h.fake.stats().accepted === 1, 20_000, 'the message');
    await h.settled(['locA']);
    // The post's retries asked the directory, not HighLevel.
    expect(h.fake.stats()).toMatchObject({ upserts: 1, contactsCreated: 1 });
    expect(await h.deadLettered()).toEqual([]);
  }, 60_000);

  it("a post whose answer was lost is looked up in the contact's conversation, never posted twice", async () => {
    const h = await harness();
    // The post is recorded, then its connection reset: the worker cannot know it landed.
    h.fake.configure({ faults: { dropAfterAccept: 1 }, faultRoutes: ['inbound'] });
    await h.send([named(1, { phone: '+14155550100' }), named(2, { email: 'ada@example.com' })]);
    await h.worker();
    await until(() => h.fake.stats().acceptedUnanswered >= 2, 20_000, 'both posts unanswered');
    await h.settled(['locA']);
    expect(await h.deadLettered()).toEqual([]);
    expect(h.fake.stats()).toMatchObject({ accepted: 2, duplicateAltIds: 0, duplicateBodies: 0, contactsCreated: 2, upserts: 2 });
    expect(h.fake.stats().reads).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it("a contact HighLevel refuses is dead-lettered with HighLevel's reason, and nothing is posted", async () => {
    const h = await harness({ fake: { rejectPhones: ['+14155550199'] } });
    await h.send([named(1, { phone: '+14155550199' }), named(2, { phone: '+14155550100' })]);
    await h.worker();
    await h.settled(['locA']);
    const [dead] = await h.deadLettered();
    expect(dead).toMatchObject({ key: 'k-m1', class: 'permanent', httpStatus: 422 });
    expect(dead?.reason).toContain('finding or creating the contact');
    expect(dead?.apiError).toContain('+14155550199');
    expect(h.fake.stats()).toMatchObject({ accepted: 1, contactsCreated: 1 });
  }, 60_000);

  it("files are uploaded to the contact's conversation right before the post; one too large is dead-lettered with HighLevel's reason", async () => {
    // Search lags a create (HighLevel's issue #5); two workers race for each contact's conversation.
    const h = await harness({ fake: { uploadMaxBytes: 1024, searchLagMs: 2000 } });
    const store = new FileStore(h.redis, h.config.queuePrefix);
    const small = Buffer.from('a small picture');
    const large = Buffer.alloc(2048, 1);
    const stored = async (bytes: Buffer, name: string) => ({ name, bytes: bytes.length, sha256: await store.put(bytes), from: `file:///data/${name}` });
    const job = (i: number, phone: string, files: Awaited<ReturnType<typeof stored>>[]) => {
      const r = normalizeRecord(named(i, { phone }, { attachments: files.map((f) => f.from) }), { localFiles: 'allow' });
      if (!r.ok) throw new Error(JSON.stringify(r.issues));
      return toJobData(r.record, 'backfill', { files });
    };
    const picture = await stored(small, 'a.png');
    await h.enqueuer.enqueue([
      job(1, '+14155550101', [picture, await stored(small, 'b.png')]),
      job(2, '+14155550102', [await stored(large, 'big.pdf')]),
      job(3, '+14155550101', [picture]),
      job(4, '+14155550103', [picture]),
    ]);
    await Promise.all([h.worker(), h.worker()]);
    await h.settled(['locA']);
    const posted = h.fake.messages();
    expect(posted.map((m) => m.body?.message).sort()).toEqual(['message 1', 'message 3', 'message 4']);
    const stats = h.fake.stats();
    // Every posted file is one this host served, posted within seconds of its upload.
    expect(stats).toMatchObject({ attachmentsPosted: 4, attachmentsExpired: 0, attachmentsUnknown: 0, uploads: 4, duplicateBodies: 0 });
    expect(stats.uploadAgeMaxMs).toBeLessThan(30_000);
    // One conversation per contact, whatever the search said.
    const conversations = h.fake.conversations('locA');
    expect(new Set(conversations.map((c) => c.contactId)).size).toBe(conversations.length);
    const [dead] = await h.deadLettered();
    expect(dead).toMatchObject({ key: 'k-m2', class: 'permanent', httpStatus: 413 });
    expect(dead?.reason).toContain('uploading the files');
    expect(dead?.apiError).toContain('File too large');
  }, 60_000);
});
