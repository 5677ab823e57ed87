/**
 * An import's record in Redis (`<prefix>:import:<id>`, a HASH): how far the import got (for
 * resuming), its counts (for `status` and `import --wait`), and the size of its rejects file at the
 * last commit. The producer writes its checkpoint; the workers count what became of its messages
 * (`delivered`, `dead`). Owns the key, the fields and how they read back: nothing else touches it.
 */
import { scanEvery, type RedisClient } from '../connection.ts';

export function importRecordKey(prefix: string, importId: string): string {
  return `${prefix}:import:${importId}`;
}

/** What the producer writes at each commit. */
export interface ImportCheckpoint {
  file: string;
  format: string;
  /** Last line committed (all rows up to it are enqueued or rejected). */
  line: number;
  /** Bytes of the file up to and including that line (NDJSON resumes from here). */
  bytes: number;
  rejectsBytes: number;
  rows: number;
  accepted: number;
  rejected: number;
  alreadyDelivered: number;
  state: 'running' | 'interrupted' | 'done';
  startedAt: number;
  updatedAt: number;
  locations: string;
  /**
   * The Redis server's run id when this was written. Another run id means Redis restarted since,
   * and may have lost the last writes (appendfsync everysec): the checkpoint is not trusted then.
   */
  redisRunId: string;
}

/** What the workers count of an import's messages. */
export interface ImportOutcomes {
  delivered: number;
  dead: number;
}

/** What became of an import's message, as the record counts it (a skip, already in the ledger, counts as delivered). */
export type ImportOutcome = keyof ImportOutcomes;

export interface ImportCounts {
  importId: string;
  file: string;
  state: string;
  accepted: number;
  rejected: number;
  /** Valid rows the ledger already knew: not enqueued again. */
  alreadyDelivered: number;
  /** Counted by the workers. */
  delivered: number;
  dead: number;
  /** Accepted, and neither delivered nor dead-lettered yet. */
  pending: number;
}

const n = (h: Record<string, string>, field: string) => Number(h[field] ?? 0);

/** Writes the producer's checkpoint (the workers' counts are left as they are). */
export async function writeImportCheckpoint(redis: RedisClient, prefix: string, importId: string, c: ImportCheckpoint): Promise<void> {
  await redis.hset(importRecordKey(prefix, importId), Object.fromEntries(Object.entries(c).map(([k, v]) => [k, String(v)])));
}

/** The producer's last checkpoint of the import, or undefined if it has none. */
export async function readImportCheckpoint(redis: RedisClient, prefix: string, importId: string): Promise<ImportCheckpoint | undefined> {
  const h = await redis.hgetall(importRecordKey(prefix, importId));
  if (h.file === undefined) return undefined;
  return {
    file: h.file,
    format: h.format ?? '',
    line: n(h, 'line'),
    bytes: n(h, 'bytes'),
    rejectsBytes: n(h, 'rejectsBytes'),
    rows: n(h, 'rows'),
    accepted: n(h, 'accepted'),
    rejected: n(h, 'rejected'),
    alreadyDelivered: n(h, 'alreadyDelivered'),
    state: (h.state as ImportCheckpoint['state'] | undefined) ?? 'running',
    startedAt: n(h, 'startedAt'),
    updatedAt: n(h, 'updatedAt'),
    locations: h.locations ?? '',
    redisRunId: h.redisRunId ?? '',
  };
}

/** Counts one of the import's messages as delivered or dead-lettered (a worker, off its hot path). */
export async function countImportOutcome(redis: RedisClient, prefix: string, importId: string, outcome: ImportOutcome): Promise<void> {
  await redis.hincrby(importRecordKey(prefix, importId), outcome, 1);
}

/** What the workers counted of the import so far. */
export async function readImportOutcomes(redis: RedisClient, prefix: string, importId: string): Promise<ImportOutcomes> {
  const [delivered, dead] = await redis.hmget(importRecordKey(prefix, importId), 'delivered', 'dead');
  return { delivered: Number(delivered ?? 0), dead: Number(dead ?? 0) };
}

/** Every import's record, sorted by id. On Redis Cluster the records spread over the masters (sharded by id), so each master is scanned. */
export async function readImports(redis: RedisClient, prefix: string): Promise<ImportCounts[]> {
  const pattern = importRecordKey(prefix, '*');
  const idStart = pattern.length - 1;
  const out: ImportCounts[] = [];
  for await (const found of scanEvery(redis, pattern, 500)) {
    for (const key of found) {
      const h = await redis.hgetall(key);
      out.push({
        importId: key.slice(idStart),
        file: h.file ?? '',
        state: h.state ?? '',
        accepted: n(h, 'accepted'),
        rejected: n(h, 'rejected'),
        alreadyDelivered: n(h, 'alreadyDelivered'),
        delivered: n(h, 'delivered'),
        dead: n(h, 'dead'),
        pending: Math.max(0, n(h, 'accepted') - n(h, 'alreadyDelivered') - n(h, 'delivered') - n(h, 'dead')),
      });
    }
  }
  return out.sort((a, b) => a.importId.localeCompare(b.importId));
}
