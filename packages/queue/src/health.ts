/**
 * Readiness as both HTTP servers (the worker's admin endpoint and the intake) answer it, and the
 * start check of the Redis a process runs on: one that may evict keys would silently drop jobs,
 * ledger entries and leases under memory pressure, so workers, the intake and imports refuse it.
 */
import { ReplyError } from 'ioredis';
import type { Redis } from 'ioredis';
import { ConfigError } from './errors.ts';
import { knownPrimaries, whenReady, type RedisClient } from './connection.ts';

export interface Readiness {
  status: 200 | 503;
  body: { status: 'ready' } | { status: 'unavailable'; message: string };
  /** Seconds, for a `Retry-After` header when not ready. */
  retryAfter?: number;
}

export async function readiness(redis: RedisClient): Promise<Readiness> {
  try {
    await redis.ping();
    return { status: 200, body: { status: 'ready' } };
  } catch {
    return { status: 503, body: { status: 'unavailable', message: 'Redis does not answer' }, retryAfter: 5 };
  }
}

/** What a Redis says about eviction and persistence (INFO memory, INFO persistence, CONFIG GET save). */
export interface RedisSettings {
  /** `maxmemory_policy` of INFO memory. */
  maxmemoryPolicy: string;
  aofEnabled: boolean;
  /** The RDB save points (`''`: none), or undefined when CONFIG is disabled (managed services). */
  savePoints: string | undefined;
}

export type RedisVerdict = { verdict: 'ok' } | { verdict: 'refuse'; message: string } | { verdict: 'warn'; message: string };

/** Whether to run on a Redis with these settings: evicting refuses, keeping nothing on disk warns. */
export function judgeRedis(s: RedisSettings): RedisVerdict {
  if (s.maxmemoryPolicy !== 'noeviction') {
    return {
      verdict: 'refuse',
      message:
        `Redis has maxmemory-policy ${s.maxmemoryPolicy}: when full it evicts keys, and queued jobs, ledger entries and leases would vanish without a trace. ` +
        "Set maxmemory-policy noeviction (redis.conf, CONFIG SET maxmemory-policy noeviction, or your provider's parameter group)",
    };
  }
  if (s.aofEnabled) return { verdict: 'ok' };
  if (s.savePoints === undefined) {
    return {
      verdict: 'warn',
      message:
        'Redis has AOF off (appendonly no) and its RDB save points cannot be read (CONFIG is disabled): if it keeps no snapshots either, a restart loses every queued message',
    };
  }
  if (s.savePoints.trim() === '') {
    return {
      verdict: 'warn',
      message: 'Redis keeps nothing on disk (appendonly no, no save points): a restart loses every queued message; set appendonly yes for production',
    };
  }
  return { verdict: 'ok' };
}

/** A field of an INFO section's text. */
function infoField(text: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*?)\\r?$`, 'm').exec(text)?.[1];
}

async function settingsOf(node: Redis): Promise<RedisSettings> {
  const [memory, persistence] = await Promise.all([node.info('memory'), node.info('persistence')]);
  let savePoints: string | undefined;
  try {
    const reply = (await node.config('GET', 'save')) as string[];
    savePoints = reply[1] ?? '';
  } catch (error) {
    // CONFIG renamed or disabled (managed services): judge by INFO alone.
    if (!(error instanceof ReplyError)) throw error;
  }
  return { maxmemoryPolicy: infoField(memory, 'maxmemory_policy') ?? 'noeviction', aofEnabled: infoField(persistence, 'aof_enabled') === '1', savePoints };
}

/** Thrown by `checkRedis` for a Redis that evicts: the process says why and stops (exit 1). */
export class EvictingRedis extends ConfigError {
  override name = 'EvictingRedis';
}

/**
 * Checks every master (one Redis, or each of a cluster's): throws EvictingRedis for one that may
 * evict, passes a warning for one that keeps nothing on disk to `warn`. Uses INFO, which managed
 * services allow where they disable CONFIG.
 */
export async function checkRedis(redis: RedisClient, warn: (fields: { node: string }, message: string) => void): Promise<void> {
  // A producer's connection refuses commands until it is ready (no offline queue); a worker's queues them.
  if (redis.options.enableOfflineQueue === false) await whenReady(redis, 30_000);
  for (const node of await knownPrimaries(redis)) {
    const where = `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}`;
    const verdict = judgeRedis(await settingsOf(node));
    if (verdict.verdict === 'refuse') throw new EvictingRedis(`${verdict.message} (Redis at ${where})`);
    if (verdict.verdict === 'warn') warn({ node: where }, verdict.message);
  }
}
