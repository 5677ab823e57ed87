/** The baselines' bare ioredis connection: one Redis URL, or a cluster's seed URLs separated by commas. */
import { Cluster, Redis } from 'ioredis';

export function bareConnection(target: string): Redis | Cluster {
  const urls = target.split(',');
  if (urls.length === 1) return new Redis(target, { maxRetriesPerRequest: null });
  return new Cluster(
    urls.map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port) })),
    { redisOptions: { maxRetriesPerRequest: null } },
  );
}
