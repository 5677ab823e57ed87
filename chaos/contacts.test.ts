/**
 * Chaos for messages as people have them: a provider's CSV keyed by phone numbers and emails,
 * with no HighLevel ids, some rows with local files, imported with `--map` into a stand-in that
 * starts with no contacts, while every worker is SIGKILLed right after an upsert or an upload,
 * so that kills land between a contact's creation and its message's post, and between a file's
 * upload and the post that carries it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countLines, type Dataset } from './accounting.ts';
import type { Cluster } from './cluster.ts';
import { closeScenario, until, useCluster } from './support.ts';

const LOCATIONS = ['loc-north', 'loc-south'];
/** Numbers the stand-in refuses, as HighLevel refuses some: their messages are dead-lettered with its reason. */
const REFUSED_PHONES = ['+14155550990', '+14155550991'];
/** The stand-in's file limit here, so that a file the import takes (under 5 MB) can still be refused (413). */
const UPLOAD_MAX_BYTES = 64 * 1024;

interface ProviderExport extends Dataset {
  /** Phones and emails the valid rows name (the contacts the stand-in must end up with, one each). */
  identities: Set<string>;
  /** Rows that must be dead-lettered, with what HighLevel's reason names. */
  refused: Map<string, string>;
}

/**
 * A message log the way an SMS provider exports it: Sid, From (a phone), Email, Body, DateSent,
 * Direction, MediaFile (a path relative to the file), and columns no record field takes.
 */
function writeExport(dir: string, locationId: string, rows: number): ProviderExport {
  const media = join(dir, 'media');
  mkdirSync(media, { recursive: true });
  writeFileSync(join(media, 'receipt.pdf'), Buffer.alloc(3000, 1));
  writeFileSync(join(media, 'too-big-for-highlevel.png'), Buffer.alloc(UPLOAD_MAX_BYTES + 1, 2));
  writeFileSync(join(media, 'over-5mb.mp4'), Buffer.alloc(5 * 1024 * 1024 + 1, 3));
  const valid = new Map<string, string>();
  const identities = new Set<string>();
  const refused = new Map<string, string>();
  let invalid = 0;
  const lines = ['Sid,From,Email,Body,DateSent,Direction,MediaFile,Status,Price'];
  const tag = locationId.replace('loc-', '');
  for (let i = 1; i <= rows; i += 1) {
    const sid = `SM${tag}${String(i).padStart(5, '0')}`;
    let phone = i % 5 === 0 ? '' : `+1415555${String(1000 + (i % 37)).padStart(4, '0')}`;
    const email = i % 5 === 0 ? `customer${i % 11}@example.com` : '';
    let file = '';
    if (i % 4 === 0) {
      const name = `photo-${tag}-${i}.png`;
      writeFileSync(join(media, name), Buffer.alloc(500 + i, i % 251));
      file = `media/${name}`;
    }
    if (i % 9 === 0) file = 'media/receipt.pdf';
    let outcome: 'valid' | 'rejected' | 'refused' = 'valid';
    if (i === 7) {
      phone = '+1 555'; // no number: the import rejects the row, with its line
      outcome = 'rejected';
    } else if (i === 13) {
      file = 'media/over-5mb.mp4'; // over HighLevel's 5 MB: rejected at import
      outcome = 'rejected';
    } else if (i === 17) {
      file = 'media/missing.png'; // no such file: rejected at import
      outcome = 'rejected';
    } else if (i === 23 || i === 29) {
      phone = REFUSED_PHONES[i === 23 ? 0 : 1] as string;
      refused.set(sid, phone);
      outcome = 'refused';
    } else if (i === 31) {
      file = 'media/too-big-for-highlevel.png';
      refused.set(sid, 'File too large');
      outcome = 'refused';
    }
    if (outcome === 'rejected') invalid += 1;
    else {
      valid.set(sid, locationId);
      if (outcome === 'valid') identities.add(phone === '' ? email : phone);
      else if (phone !== '' && !REFUSED_PHONES.includes(phone)) identities.add(phone);
    }
    const date = new Date(Date.UTC(2024, 4, 1) + i * 97_000).toISOString();
    lines.push([sid, phone, email, `"Message ${i}, from the provider's log"`, date, 'inbound', file, 'received', '-0.0079'].join(','));
  }
  const csv = join(dir, `${locationId}.csv`);
  writeFileSync(csv, `${lines.join('\n')}\n`);
  return { file: csv, rows, valid, invalid, identities, refused };
}

/**
 * What the kills cut off, from what the stand-in holds at the end: contacts created before a kill
 * whose first post came after it, and files uploaded whose URL no post ever carried.
 */
async function cutOff(c: Cluster, kills: number[]): Promise<{ contacts: number; uploads: number }> {
  const [contacts, uploads, messages] = await Promise.all([c.api.contacts(), c.api.uploads(), c.api.messages()]);
  const firstPost = new Map<string, number>();
  for (const m of messages) {
    const id = `${m.locationId}/${String(m.body?.contactId)}`;
    firstPost.set(id, Math.min(firstPost.get(id) ?? Infinity, m.receivedAt));
  }
  const posted = new Set(messages.flatMap((m) => (Array.isArray(m.body?.attachments) ? (m.body.attachments as string[]) : [])));
  return {
    contacts: contacts.filter((ct) => {
      const made = Date.parse(ct.dateAdded);
      const post = firstPost.get(`${ct.locationId}/${ct.id}`) ?? Infinity;
      return kills.some((k) => made < k && k < post);
    }).length,
    uploads: uploads.filter((u) => !posted.has(u.url)).length,
  };
}

describe('chaos: contacts by phone or email, files uploaded just in time', () => {
  const cluster = useCluster();

  it('a provider export imported with --map while every worker is killed between upsert and post, and between upload and post: each message once, one contact per phone or email, 0 × 429', async () => {
    const started = Date.now();
    const c = await cluster({
      locations: LOCATIONS,
      api: { latency: { minMs: 30, maxMs: 90 }, rejectPhones: REFUSED_PHONES, uploadMaxBytes: UPLOAD_MAX_BYTES },
    });
    const exports = LOCATIONS.map((loc) => writeExport(join(c.dir, loc), loc, 120));
    for (let i = 0; i < 3; i += 1) c.spawnWorker();
    const map = 'Sid=altId,From=contact.phone,Email=contact.email,Body=message,DateSent=date,Direction=direction,MediaFile=attachments';
    const imports = exports.map((e, i) => c.ingest(['import', e.file, '--location', LOCATIONS[i] as string, '--type', 'SMS', '--drop-unknown', '--map', map]));

    // Kill every worker at once right after HighLevel saw an upsert or an upload: the message's post
    // is then still to come (a conversation step or an upload, each 30-90 ms, lies in between).
    const kills: number[] = [];
    let seen = { upserts: 0, uploads: 0 };
    const total = exports.reduce((n, e) => n + e.valid.size, 0);
    const nearlyDone = async () => (await c.api.stats()).accepted >= total - 20;
    while (kills.length < 5) {
      await until(
        async () => {
          const s = await c.api.stats();
          const moved = s.upserts > seen.upserts || s.uploads > seen.uploads;
          seen = { upserts: s.upserts, uploads: s.uploads };
          return moved || s.accepted >= total - 20;
        },
        60_000,
        'an upsert or an upload',
      );
      if (await nearlyDone()) break;
      await Promise.all(c.workers().map((w) => c.kill(w)));
      kills.push(Date.now());
      for (let i = 0; i < 3; i += 1) c.spawnWorker();
      // Let the new workers get going before the next kill.
      await until(async () => (await c.api.stats()).accepted > 0 && c.workers().length === 3, 30_000, 'workers again');
      const before = (await c.api.stats()).accepted;
      await until(async () => (await c.api.stats()).accepted > before + 10, 60_000, 'deliveries after the kill');
    }

    for (const p of imports) expect(await p.exited).toBe(2); // 2: some rows rejected
    await c.settled();
    const rejected = exports.reduce((n, e) => n + countLines(`${e.file}.rejects.ndjson`), 0);
    expect(rejected).toBe(exports.reduce((n, e) => n + e.invalid, 0));

    // One contact per distinct phone or email, per location, whatever the kills did.
    const contacts = await c.api.contacts();
    for (const [i, e] of exports.entries()) {
      const mine = contacts.filter((ct) => ct.locationId === LOCATIONS[i]);
      const byIdentity = mine.map((ct) => ct.phone ?? ct.email ?? '');
      expect(new Set(byIdentity).size, 'no two contacts for one phone or email').toBe(byIdentity.length);
      expect(new Set(byIdentity)).toEqual(e.identities);
    }
    // Refused phones and oversize files dead-lettered with HighLevel's reasons.
    const dead = await c.deadLetters();
    const expectedDead = new Map(exports.flatMap((e) => [...e.refused]));
    expect(dead.map((d) => d.job?.body.altId).sort()).toEqual([...expectedDead.keys()].sort());
    for (const d of dead) expect(d.apiError).toContain(expectedDead.get(d.job?.body.altId ?? ''));

    const cut = await cutOff(c, kills);
    expect(kills.length, 'kills').toBeGreaterThanOrEqual(3);
    expect(cut.contacts, 'contacts created before a kill and posted after it').toBeGreaterThan(0);
    expect(cut.uploads, 'uploads a kill cut off from their post').toBeGreaterThan(0);
    const stats = await c.api.stats();
    // Every posted file was uploaded just before its post, never an hour before; none posted dead.
    expect(stats.attachmentsExpired).toBe(0);
    expect(stats.attachmentsUnknown).toBe(0);
    expect(stats.uploadAgeMaxMs).toBeLessThan(60_000);
    const a = await closeScenario(c, exports, rejected, {
      scenario: 'contacts and files, workers SIGKILLed between upsert or upload and post',
      started,
      kills: kills.length,
      note: `${cut.contacts} contacts and ${cut.uploads} uploads cut off before their post; requests per message: ${requestsPerMessage(stats, stats.accepted)}`,
    });
    expect(a.duplicates).toBe(0);
    expect(a.rateLimited).toBe(0);
    expect(a.deadLettered).toBe(expectedDead.size);
  }, 240_000);
});

function requestsPerMessage(stats: Awaited<ReturnType<Cluster['api']['stats']>>, delivered: number): string {
  const by = stats.requestsByRoute;
  const per = (n: number | undefined) => ((n ?? 0) / delivered).toFixed(2);
  return `upsert ${per(by.upsert)}, conversation ${per((by.conversation ?? 0) + (by.read ?? 0))}, upload ${per(by.upload)}, post ${per(by.inbound)}`;
}
