/**
 * Repair after Redis lost writes it acknowledged: a restart that replays an AOF missing its last
 * second (`everysec` and a host crash), or a cluster failover to a replica the last writes had not
 * reached. A location's own keys share a slot, so they stay consistent with each other; but the
 * structures shared by all locations live elsewhere (on a cluster, on other masters), and may now
 * disagree with them: above all, a location with jobs that lost its place in the ready set would
 * never be taken again. Owns the keys `redis-run` (STRING: the Redis run id(s) the shared
 * structures were last checked against) and `repair` (STRING: the process checking them now,
 * with a TTL); puts locations back through the registry, the held set and the ready set's owners.
 */
import { randomUUID } from 'node:crypto';
import { redisRunId, scanEvery, type RedisClient } from '../connection.ts';
import type { Holds } from './holds.ts';
import type { LedgerWriteBack } from './ledger-writeback.ts';
import { locationKeysPattern, locationOfWorkKey } from './queues.ts';
import type { ReadySet } from './ready-set.ts';
import type { Registry } from './registry.ts';
import type { LocationSnapshot } from './snapshot.ts';

export interface RepairKeys {
  /** STRING: the Redis run id(s) the shared structures were last checked against. */
  redisRun: string;
  /** STRING: the process checking them now, with a TTL. */
  repairLock: string;
}

export function repairKeys(prefix: string): RepairKeys {
  return { redisRun: `${prefix}:redis-run`, repairLock: `${prefix}:repair` };
}

/** What `repairAfterLoss` found and put back. */
export interface RepairReport {
  /** The Redis run id(s) now. */
  runId: string;
  /** Locations whose queues hold jobs (waiting, retrying, active or paused). */
  withWork: number;
  /** Of those, locations that had lost their place in the ready set and got it back. */
  requeued: number;
  /** Locations with a hold, listed in the held set again. */
  held: number;
}

export interface RepairSources {
  redis: RedisClient;
  prefix: string;
  ledger: LedgerWriteBack;
  registry: Registry;
  holds: Holds;
  readySet: ReadySet;
  snapshot: (locationIds: readonly string[]) => Promise<LocationSnapshot[]>;
}

/**
 * When the servers' run ids differ from those this check last recorded (or none is recorded), one
 * process at a time scans every master for location queues holding jobs, and puts each back in
 * the registry, in the ready set (when it has no place there; due now, as backfill) and in the
 * held set (when it has a hold). A SCAN over every key: once per restart or failover. First this
 * process's own ledger entries go back (see LedgerWriteBack). Returns what it did, or undefined
 * when nothing changed, another process is at it, or `signal` stopped it (a worker shutting down
 * does not wait for a long scan).
 */
export async function repairAfterLoss(s: RepairSources, signal?: AbortSignal): Promise<RepairReport | undefined> {
  const { redis, prefix } = s;
  const keys = repairKeys(prefix);
  const runId = await redisRunId(redis);
  await s.ledger.writeBackIfChanged(runId);
  if ((await redis.get(keys.redisRun)) === runId) return undefined;
  const me = randomUUID();
  if ((await redis.set(keys.repairLock, me, 'PX', 120_000, 'NX')) === null) return undefined;
  try {
    const ids = new Set<string>();
    for await (const batch of scanEvery(redis, locationKeysPattern(prefix))) {
      // A stopping process leaves the check to the next one (nothing is recorded, the lock is freed).
      if (signal?.aborted === true) return undefined;
      for (const key of batch) {
        const id = locationOfWorkKey(prefix, key);
        if (id !== undefined) ids.add(id);
      }
    }
    const found = await s.snapshot([...ids]);
    const lost = found.filter((f) => f.waiting + f.active + f.delayed > 0 && f.dueAt === undefined && f.hold?.state !== 'paused').map((f) => f.locationId);
    const held = found.filter((f) => f.hold !== undefined).map((f) => f.locationId);
    await s.registry.register(ids);
    await s.holds.list(held);
    await s.readySet.mark(lost, 'backfill');
    await redis.set(keys.redisRun, runId);
    return { runId, withWork: ids.size, requeued: lost.length, held: held.length };
  } finally {
    // Only our own lock: a check that outlived its TTL must not end another's.
    if ((await redis.get(keys.repairLock)) === me) await redis.del(keys.repairLock);
  }
}
