/**
 * An import's record in Redis (`<prefix>:import:<id>`): how far it got (for resuming), its counts
 * (for `status` and `--wait`; the worker adds `delivered` and `dead`), and the size of its rejects
 * file at the last commit (a resumed import cuts the file back to it, so no row is reported twice).
 */
import { createHash, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { keysFor } from '@ghl-ingest/queue';
import { type RedisClient } from '@ghl-ingest/queue';

export interface Checkpoint {
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

export function importKey(prefix: string, importId: string): string {
  return keysFor(prefix).importRecord(importId);
}

/** Same file (path, size and modification time): same id, so a re-run resumes it. Standard input: a new id. */
export async function importIdFor(file: string): Promise<string> {
  if (file === '-') return `stdin-${randomBytes(6).toString('hex')}`;
  const path = resolve(file);
  const s = await stat(path);
  return createHash('sha256').update(`${path}\n${s.size}\n${s.mtimeMs}`).digest('base64url').slice(0, 16);
}

export async function readCheckpoint(redis: RedisClient, prefix: string, importId: string): Promise<Checkpoint | undefined> {
  const h = await redis.hgetall(importKey(prefix, importId));
  if (h.file === undefined) return undefined;
  const n = (k: string) => Number(h[k] ?? 0);
  return {
    file: h.file,
    format: h.format ?? '',
    line: n('line'),
    bytes: n('bytes'),
    rejectsBytes: n('rejectsBytes'),
    rows: n('rows'),
    accepted: n('accepted'),
    rejected: n('rejected'),
    alreadyDelivered: n('alreadyDelivered'),
    state: (h.state as Checkpoint['state'] | undefined) ?? 'running',
    startedAt: n('startedAt'),
    updatedAt: n('updatedAt'),
    locations: h.locations ?? '',
    redisRunId: h.redisRunId ?? '',
  };
}

export async function writeCheckpoint(redis: RedisClient, prefix: string, importId: string, c: Checkpoint): Promise<void> {
  await redis.hset(importKey(prefix, importId), Object.fromEntries(Object.entries(c).map(([k, v]) => [k, String(v)])));
}
