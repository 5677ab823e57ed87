/** Reading imports' records (`<prefix>:import:<id>`), for `status` and the worker's metrics. */
import { scanEvery, type RedisClient } from './connection.ts';
import { keysFor } from './keys.ts';

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

/** Every import's record. On Redis Cluster the records spread over the masters (sharded by id), so each master is scanned. */
export async function readImports(redis: RedisClient, prefix: string): Promise<ImportCounts[]> {
  const pattern = keysFor(prefix).importRecord('*');
  const idStart = pattern.length - 1;
  const out: ImportCounts[] = [];
  for await (const found of scanEvery(redis, pattern, 500)) {
    for (const key of found) {
      const h = await redis.hgetall(key);
      const n = (field: string) => Number(h[field] ?? 0);
      out.push({
        importId: key.slice(idStart),
        file: h.file ?? '',
        state: h.state ?? '',
        accepted: n('accepted'),
        rejected: n('rejected'),
        alreadyDelivered: n('alreadyDelivered'),
        delivered: n('delivered'),
        dead: n('dead'),
        pending: Math.max(0, n('accepted') - n('alreadyDelivered') - n('delivered') - n('dead')),
      });
    }
  }
  return out.sort((a, b) => a.importId.localeCompare(b.importId));
}
