import { Cluster } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisCluster } from './redis-cluster.ts';

describe('RedisCluster: a real local cluster for tests', () => {
  it('starts 3 masters and 3 replicas that serve every slot, spreads keys over the masters, and stops', async () => {
    const cluster = await RedisCluster.start();
    try {
      const nodes = await cluster.nodes();
      const masters = nodes.filter((n) => n.role === 'master');
      expect(masters).toHaveLength(3);
      expect(
        nodes
          .filter((n) => n.role === 'replica')
          .map((n) => n.masterId)
          .sort(),
      ).toEqual(masters.map((m) => m.id).sort());
      expect(masters.every((m) => m.slots.length > 0)).toBe(true);

      const client = new Cluster(cluster.nodesSetting.split(',').map((url) => ({ host: '127.0.0.1', port: Number(new URL(url).port) })));
      try {
        for (let i = 0; i < 30; i += 1) await client.set(`{loc${i}}:k`, String(i));
        const perMaster = await Promise.all(client.nodes('master').map((n) => n.dbsize()));
        expect(perMaster.filter((n) => n > 0)).toHaveLength(3);
        expect(perMaster.reduce((a, b) => a + b, 0)).toBe(30);
      } finally {
        client.disconnect();
      }
    } finally {
      await cluster.stop();
    }
    expect(cluster.servers.every((s) => !s.running)).toBe(true);
  }, 60_000);
});
