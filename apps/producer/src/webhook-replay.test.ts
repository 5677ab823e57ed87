import { useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { REPLAY_WINDOW_MS, SEEN_TTL_SECONDS, WebhookReplayGuard, windowVerdict } from './webhook-replay.ts';

const NOW = Date.parse('2026-12-02T12:00:00Z');
const at = (offsetMs: number) => new Date(NOW + offsetMs).toISOString();

describe('windowVerdict', () => {
  it('accepts a stamp within 5 minutes either way, and refuses one past it or none', () => {
    expect(windowVerdict({ webhookId: 'w', timestamp: at(-REPLAY_WINDOW_MS) }, NOW)).toBeUndefined();
    expect(windowVerdict({ webhookId: 'w', timestamp: at(REPLAY_WINDOW_MS) }, NOW)).toBeUndefined();
    expect(windowVerdict({ webhookId: 'w', timestamp: at(-REPLAY_WINDOW_MS - 1000) }, NOW)).toMatchObject({ kind: 'refused' });
    expect(windowVerdict({ webhookId: 'w', timestamp: at(REPLAY_WINDOW_MS + 1000) }, NOW)).toMatchObject({ kind: 'refused' });
    expect(windowVerdict({ webhookId: 'w', timestamp: 'yesterday' }, NOW)).toMatchObject({ kind: 'refused' });
    expect(windowVerdict({ webhookId: 'w', timestamp: NOW }, NOW)).toMatchObject({ kind: 'refused' });
    expect(windowVerdict({ timestamp: at(0) }, NOW)).toMatchObject({ kind: 'refused' });
    expect(windowVerdict({ webhookId: '', timestamp: at(0) }, NOW)).toMatchObject({ kind: 'refused' });
  });
});

describe('WebhookReplayGuard', () => {
  const redis = useRedis();

  it('acts on a webhookId once, remembers it for two windows, and forgets it when asked', async () => {
    const guard = new WebhookReplayGuard(redis.client(), redis.prefix, () => NOW);
    const event = { webhookId: 'wh-1', timestamp: at(0) };
    const [a, b] = await Promise.all([guard.check(event), guard.check(event)]);
    expect([a.kind, b.kind].sort()).toEqual(['duplicate', 'fresh']);
    expect(await redis.admin.ttl(`${redis.prefix}:webhook-seen:wh-1`)).toBeGreaterThan(SEEN_TTL_SECONDS - 5);
    await guard.forget('wh-1');
    expect(await guard.check(event)).toEqual({ kind: 'fresh' });
    expect(await guard.check({ webhookId: 'wh-2', timestamp: at(-REPLAY_WINDOW_MS * 2) })).toMatchObject({ kind: 'refused' });
  });
});
