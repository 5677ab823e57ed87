import { describe, expect, it } from 'vitest';
import { judgeRedis, type RedisSettings } from './health.ts';

describe('judgeRedis', () => {
  const cases: [string, RedisSettings, 'ok' | 'refuse' | 'warn'][] = [
    ['noeviction with AOF', { maxmemoryPolicy: 'noeviction', aofEnabled: true, savePoints: '' }, 'ok'],
    ['noeviction with RDB save points', { maxmemoryPolicy: 'noeviction', aofEnabled: false, savePoints: '3600 1 300 100' }, 'ok'],
    ['noeviction, nothing on disk', { maxmemoryPolicy: 'noeviction', aofEnabled: false, savePoints: '' }, 'warn'],
    ['noeviction, AOF off, CONFIG disabled', { maxmemoryPolicy: 'noeviction', aofEnabled: false, savePoints: undefined }, 'warn'],
    ['noeviction with AOF, CONFIG disabled', { maxmemoryPolicy: 'noeviction', aofEnabled: true, savePoints: undefined }, 'ok'],
    ['volatile-lru', { maxmemoryPolicy: 'volatile-lru', aofEnabled: true, savePoints: '' }, 'refuse'],
    ['allkeys-lru', { maxmemoryPolicy: 'allkeys-lru', aofEnabled: true, savePoints: '' }, 'refuse'],
    ['volatile-ttl', { maxmemoryPolicy: 'volatile-ttl', aofEnabled: false, savePoints: '' }, 'refuse'],
    ['allkeys-random', { maxmemoryPolicy: 'allkeys-random', aofEnabled: true, savePoints: '3600 1' }, 'refuse'],
    ['volatile-lfu', { maxmemoryPolicy: 'volatile-lfu', aofEnabled: true, savePoints: undefined }, 'refuse'],
  ];
  it.each(cases)('%s', (_name, settings, expected) => {
    expect(judgeRedis(settings).verdict).toBe(expected);
  });

  it('names the setting and the fix when it refuses', () => {
    const v = judgeRedis({ maxmemoryPolicy: 'allkeys-lru', aofEnabled: true, savePoints: '' });
    expect(v.verdict === 'refuse' && v.message).toMatch(/maxmemory-policy allkeys-lru.*maxmemory-policy noeviction/);
  });
});
