/**
 * Messages that name their contact by phone or email, and carry local files: the worker finds or
 * creates each contact once (across processes), uploads files right before the post, and acts on
 * HighLevel's refusals as it does on a post's. HighLevel here is the stand-in for the inbound post,
 * behind a front (a real HTTP server in this test) that answers `POST /contacts/upsert` with
 * HighLevel's duplicate rule, the conversation calls and the upload, counting each.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FileStore } from '@ghl-ingest/queue';
import { normalizeRecord, toJobData } from '@ghl-ingest/schema';
import { useRedis } from '@ghl-ingest/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { until, useHarness, type Harness } from './harness.ts';

/** The contact, conversation and upload calls of HighLevel, in front of the stand-in's inbound post. */
class Front {
  readonly contacts = new Map<string, { id: string; phone?: string; email?: string }>();
  readonly upserts: { phone?: string; email?: string; at: number }[] = [];
  readonly uploads: { names: string[]; bytes: number; at: number; url: string }[] = [];
  readonly conversations = new Map<string, string>();
  /** Phones HighLevel refuses (422), and the next upserts to fail with 500. */
  refusePhones = new Set<string>();
  failUpserts = 0;
  uploadMaxBytes = 5 * 1024 * 1024;
  #server!: Server;
  url = '';
  /** The stand-in's URL, for what the front does not answer itself. */
  inboundUrl = '';

  async start(): Promise<void> {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const path = (req.url ?? '').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (path === '/contacts/upsert' && req.method === 'POST') {
      if (req.headers.version !== '2021-07-28') {
        json(400, { statusCode: 400, message: 'version header' });
        return;
      }
      const body = JSON.parse(raw.toString()) as { phone?: string; email?: string };
      this.upserts.push({ ...body, at: Date.now() });
      if (this.failUpserts > 0) {
        this.failUpserts -= 1;
        json(500, { statusCode: 500, message: 'Internal server error' });
        return;
      }
      if (body.phone !== undefined && this.refusePhones.has(body.phone)) {
        json(422, { statusCode: 422, message: ['phone must be a valid phone number'], error: 'Unprocessable Entity' });
        return;
      }
      // The duplicate rule with both fields checked: phone first, then email.
      const found = [...this.contacts.values()].find(
        (c) => (body.phone !== undefined && c.phone === body.phone) || (body.email !== undefined && c.email === body.email),
      );
      if (found !== undefined) {
        json(200, { new: false, contact: found, traceId: randomUUID() });
        return;
      }
      const contact = {
        id: `ct-${this.contacts.size + 1}`,
        ...(body.phone === undefined ? {} : { phone: body.phone }),
        ...(body.email === undefined ? {} : { email: body.email }),
      };
      this.contacts.set(contact.id, contact);
      json(200, { new: true, contact, traceId: randomUUID() });
      return;
    }
    if (path === '/conversations/search' && req.method === 'GET') {
      const contactId = new URL(req.url ?? '', this.url).searchParams.get('contactId') ?? '';
      const id = this.conversations.get(contactId);
      json(200, { conversations: id === undefined ? [] : [{ id, contactId }], total: id === undefined ? 0 : 1 });
      return;
    }
    if (path === '/conversations/' && req.method === 'POST') {
      const { contactId } = JSON.parse(raw.toString()) as { contactId: string };
      if (this.conversations.has(contactId)) {
        json(400, { statusCode: 400, message: 'Conversation already exists' });
        return;
      }
      const id = `cv-${contactId}`;
      this.conversations.set(contactId, id);
      json(201, { success: true, conversation: { id, contactId } });
      return;
    }
    if (path === '/conversations/messages/upload' && req.method === 'POST') {
      // Undici's own multipart parser: enough for a test's front (the stand-in's uses @fastify/multipart).
      // eslint-disable-next-line @typescript-eslint/no-deprecated
      const form = await new Request(this.url, { method: 'POST', headers: { 'content-type': req.headers['content-type'] ?? '' }, body: raw }).formData();
      const files = form.getAll('fileAttachment').filter((f): f is File => typeof f !== 'string');
      if (form.get('conversationId') === null) {
        json(400, { status: 400, message: 'conversationId is required' });
        return;
      }
      const big = files.find((f) => f.size > this.uploadMaxBytes);
      if (big !== undefined) {
        json(413, { status: 413, message: `File ${big.name} exceeds the maximum size` });
        return;
      }
      const uploadedFiles = Object.fromEntries(files.map((f) => [f.name, `${this.url}/files/${randomUUID()}/${f.name}`]));
      for (const f of files) this.uploads.push({ names: [f.name], bytes: f.size, at: Date.now(), url: uploadedFiles[f.name] as string });
      json(200, { uploadedFiles });
      return;
    }
    // Everything else is the stand-in's: the inbound post with its auth, limits and faults.
    const forwarded = await fetch(`${this.inboundUrl}${req.url ?? ''}`, {
      method: req.method ?? 'GET',
      headers: Object.fromEntries(
        Object.entries(req.headers).filter((e): e is [string, string] => typeof e[1] === 'string' && e[0] !== 'host' && e[0] !== 'content-length'),
      ),
      ...(raw.length > 0 ? { body: raw } : {}),
    });
    res.writeHead(forwarded.status, Object.fromEntries(forwarded.headers)).end(Buffer.from(await forwarded.arrayBuffer()));
  }
}

describe('contacts by phone or email, and files uploaded right before the post', () => {
  const redis = useRedis();
  const harness = useHarness(redis);
  let fronts: Front[] = [];
  afterEach(async () => {
    await Promise.all(fronts.map((f) => f.close()));
    fronts = [];
  });

  async function setup(): Promise<{ h: Harness; front: Front; start: () => Promise<void> }> {
    const front = new Front();
    await front.start();
    fronts.push(front);
    // The workers talk to the front; the front passes the inbound post on to the stand-in.
    const h = await harness({ env: { GHL_API_BASE_URL: front.url } });
    front.inboundUrl = h.fake.url;
    return {
      h,
      front,
      start: async () => {
        await h.worker();
      },
    };
  }

  const named = (i: number, contact: Record<string, string>, extra: Record<string, unknown> = {}) => ({
    locationId: 'locA',
    type: 'SMS',
    message: `message ${i}`,
    key: `m${i}`,
    contact,
    ...extra,
  });

  it('one upsert per contact across two workers; every message posted once with its contact', async () => {
    const { h, front } = await setup();
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
    expect(h.fake.stats()).toMatchObject({ accepted: 24, duplicateAltIds: 0 });
    expect(front.contacts.size).toBe(8);
    expect(front.upserts).toHaveLength(8);
    const byPhone = new Map([...front.contacts.values()].map((c) => [c.phone, c.id]));
    for (const m of h.fake.messages()) {
      const i = Number(String(m.body?.message).split(' ')[1]);
      expect(m.body?.contactId).toBe(byPhone.get(phones[i % 8]));
    }
    const [snapshot] = await h.state.snapshot(['locA']);
    expect(snapshot?.contacts).toEqual({ found: 0, created: 8 });
  }, 60_000);

  it('an upsert that fails is retried; a post that fails after it does not make a second contact', async () => {
    const { h, front, start } = await setup();
    front.failUpserts = 1;
    h.fake.configure({ faults: { status500: 1 } });
    await h.send([named(1, { phone: '+14155550100' })]);
    await start();
    await until(() => front.upserts.length >= 2, 20_000, 'the upsert again');
    await until(() => h.fake.stats().byStatus['500'] !== undefined, 20_000, 'a failed post');
    h.fake.configure({ faults: { status500: 0 } });
    await until(() => h.fake.stats().accepted === 1, 20_000, 'the message');
    await h.settled(['locA']);
    // One failed upsert, one that created the contact; the post's retry asked the directory.
    expect(front.upserts).toHaveLength(2);
    expect(front.contacts.size).toBe(1);
    expect(await h.deadLettered()).toEqual([]);
  }, 60_000);

  it("a contact HighLevel refuses is dead-lettered with HighLevel's reason, and nothing is posted", async () => {
    const { h, front, start } = await setup();
    front.refusePhones.add('+14155550199');
    await h.send([named(1, { phone: '+14155550199' }), named(2, { phone: '+14155550100' })]);
    await start();
    await h.settled(['locA']);
    const [dead] = await h.deadLettered();
    expect(dead).toMatchObject({ key: 'k-m1', class: 'permanent', httpStatus: 422 });
    expect(dead?.reason).toContain('finding or creating the contact');
    expect(dead?.apiError).toContain('phone must be a valid phone number');
    expect(h.fake.stats().accepted).toBe(1);
  }, 60_000);

  it("files are uploaded to the contact's conversation right before the post; one too large is dead-lettered with HighLevel's reason", async () => {
    const { h, front, start } = await setup();
    const store = new FileStore(h.redis, h.config.queuePrefix);
    const small = Buffer.from('a small picture');
    const large = Buffer.alloc(2048, 1);
    front.uploadMaxBytes = 1024;
    const stored = async (bytes: Buffer, name: string) => ({ name, bytes: bytes.length, sha256: await store.put(bytes), from: `file:///data/${name}` });
    const job = (i: number, files: Awaited<ReturnType<typeof stored>>[]) => {
      const r = normalizeRecord(named(i, { phone: `+1415555010${i}` }, { attachments: files.map((f) => f.from) }), { localFiles: 'allow' });
      if (!r.ok) throw new Error(JSON.stringify(r.issues));
      return toJobData(r.record, 'backfill', { files });
    };
    await h.enqueuer.enqueue([job(1, [await stored(small, 'a.png'), await stored(small, 'b.png')]), job(2, [await stored(large, 'big.pdf')])]);
    await start();
    await h.settled(['locA']);
    const posted = h.fake.messages();
    expect(posted).toHaveLength(1);
    expect(posted[0]?.body?.attachments).toEqual(front.uploads.filter((u) => u.names[0] !== 'big.pdf').map((u) => u.url));
    expect(front.uploads.map((u) => u.names[0])).toEqual(['a.png', 'b.png']);
    // Uploaded shortly before the post (never an hour early).
    for (const u of front.uploads) expect((posted[0]?.receivedAt ?? 0) - u.at).toBeLessThan(60_000);
    const [dead] = await h.deadLettered();
    expect(dead).toMatchObject({ key: 'k-m2', class: 'permanent', httpStatus: 413 });
    expect(dead?.reason).toContain('uploading the files');
    expect(dead?.apiError).toContain('exceeds the maximum size');
  }, 60_000);
});
