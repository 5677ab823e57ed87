/**
 * `pnpm bench contacts`: messages that name their contact by phone or email (new to HighLevel)
 * and carry local files, against the stand-in at HighLevel's real limits, where the upserts, the
 * conversation steps the uploads need, the uploads and the posts all spend one budget per location.
 * Reports the requests per delivered message by kind, the budget used (requests the stand-in let
 * through over what the window allows), 429s, and the oldest file's age at its post.
 *
 * BENCH_CONTACTS_SECONDS (default 40), BENCH_CONTACTS_LOCATIONS (default 8), BENCH_CONTACTS_PER_CONTACT
 * (messages per contact, default 3), BENCH_CONTACTS_FILE_EVERY (1 message in N has a file, default 4).
 */
import { Enqueuer, FileStore } from '@ghl-ingest/queue';
import { normalizeRecord, toJobData, type JobData, type StoredFile } from '@ghl-ingest/schema';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fmt, node, ownRedis, standIn, stopChild } from './support.ts';

const MAX = 100;
const WINDOW_MS = 10_000;
/** Messages per contact, and every how many messages one carries a file. */
const PER_CONTACT = Number(process.env.BENCH_CONTACTS_PER_CONTACT ?? 3);
const FILE_EVERY = Number(process.env.BENCH_CONTACTS_FILE_EVERY ?? 4);

interface RouteStats {
  requests: number;
  accepted: number;
  rateLimited: number;
  upserts: number;
  contactsCreated: number;
  uploads: number;
  uploadAgeMaxMs: number;
  attachmentsExpired: number;
  requestsByRoute: Record<string, number | undefined>;
  admittedByLocation: Record<string, number | undefined>;
}

export async function contactsBench(): Promise<void> {
  const seconds = Number(process.env.BENCH_CONTACTS_SECONDS ?? 40);
  const count = Number(process.env.BENCH_CONTACTS_LOCATIONS ?? 8);
  const own = await ownRedis('bench-contacts');
  const locations = Array.from({ length: count }, (_, i) => `loc${String(i).padStart(2, '0')}`);
  const dir = mkdtempSync(join(tmpdir(), 'ghl-bench-contacts-'));
  const workerTokens = join(dir, 'tokens.json');
  const standTokens = join(dir, 'stand-tokens.json');
  writeFileSync(workerTokens, JSON.stringify(Object.fromEntries(locations.map((l) => [l, `tok-${l}`]))));
  writeFileSync(standTokens, JSON.stringify(Object.fromEntries(locations.map((l) => [`tok-${l}`, l]))));
  // More than the run can deliver, so every location stays busy throughout.
  const perLocation = Math.ceil((MAX * (seconds * 1000 + 2 * WINDOW_MS)) / WINDOW_MS);
  const store = new FileStore(own.client, 'cb');
  const picture = Buffer.alloc(20_000, 7);
  const file: StoredFile = { name: 'photo.png', bytes: picture.length, sha256: await store.put(picture), from: 'file:///export/photo.png' };
  const enqueuer = new Enqueuer(own.client, 'cb', 10);
  for (const [l, locationId] of locations.entries()) {
    const jobs: JobData[] = [];
    for (let i = 0; i < perLocation; i += 1) {
      const withFile = i % FILE_EVERY === 0;
      const contact = i % 2 === 0 ? { phone: `+1415${200 + l}${String(Math.floor(i / PER_CONTACT)).padStart(4, '0')}` } : undefined;
      const r = normalizeRecord(
        {
          locationId,
          type: 'SMS',
          message: `contacts bench ${i}`,
          key: `${locationId}-${i}`,
          contact: contact ?? { email: `c${Math.floor(i / PER_CONTACT)}@bench.example` },
          ...(withFile ? { attachments: [file.from] } : {}),
        },
        { localFiles: 'allow' },
      );
      if (!r.ok) throw new Error(`bad record: ${JSON.stringify(r.issues)}`);
      jobs.push(toJobData(r.record, 'backfill', withFile ? { files: [file] } : {}));
    }
    await enqueuer.enqueue(jobs);
  }
  await enqueuer.close();
  const stand = await standIn([
    '--tokens',
    standTokens,
    '--rate-max',
    String(MAX),
    '--rate-window-ms',
    String(WINDOW_MS),
    '--latency',
    '20-80',
    '--no-record-bodies',
  ]);

  const env = {
    ...own.env,
    QUEUE_PREFIX: 'cb',
    GHL_API_BASE_URL: stand.url,
    GHL_TOKENS_FILE: workerTokens,
    HTTP_TIMEOUT_MS: '10000',
    LOG_LEVEL: 'warn',
    ADMIN_PORT: '0',
  };
  const workers = Array.from({ length: 2 }, () => node('apps/worker/src/main.ts', env));
  await sleep(WINDOW_MS + 2000); // warm-up: processes start and the first windows fill
  const before = (await stand.stats()) as unknown as RouteStats;
  const started = performance.now();
  await sleep(seconds * 1000);
  const elapsed = performance.now() - started;
  const after = (await stand.stats()) as unknown as RouteStats;
  await Promise.all(workers.map((w) => stopChild(w)));
  await stand.stop();
  await own.stop();

  const delta = (pick: (s: RouteStats) => number | undefined) => (pick(after) ?? 0) - (pick(before) ?? 0);
  const delivered = delta((s) => s.accepted);
  const per = (route: string) => fmt(delta((s) => s.requestsByRoute[route]) / Math.max(1, delivered), 2);
  const allowed = (MAX * elapsed) / WINDOW_MS;
  const used = locations.map((l) => delta((s) => s.admittedByLocation[l]) / allowed).sort((a, b) => a - b);
  const mid = used[Math.floor(used.length / 2)] ?? 0;
  process.stdout.write(
    `contacts and files at ${MAX} per ${WINDOW_MS / 1000} s, 2 processes, ${count} locations, ${fmt(elapsed / 1000, 1)} s measured ` +
      `(each contact new, ${PER_CONTACT} messages per contact, 1 in ${FILE_EVERY} with a 20 kB file)\n` +
      `  delivered ${delivered}; requests per delivered message: upsert ${per('upsert')}, conversation ${per('conversation')}, ` +
      `search and reads ${per('read')}, upload ${per('upload')}, post ${per('inbound')}; ` +
      `total ${fmt(delta((s) => s.requests) / Math.max(1, delivered), 2)}\n` +
      `  budget used per location (requests let through over ${MAX} per window): min ${fmt(used[0] ?? 0, 3)}, median ${fmt(mid, 3)}, max ${fmt(used.at(-1) ?? 0, 3)}\n` +
      `  429s: ${delta((s) => s.rateLimited)}; contacts created ${delta((s) => s.contactsCreated)} by ${delta((s) => s.upserts)} upserts; ` +
      `files uploaded ${delta((s) => s.uploads)}, the oldest ${fmt(after.uploadAgeMaxMs)} ms old at its post, ${after.attachmentsExpired} posted expired\n`,
  );
}
