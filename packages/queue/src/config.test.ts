import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('has the defaults of contract.md', () => {
    expect(loadConfig({})).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6379',
      queuePrefix: 'ghl',
      apiBaseUrl: 'https://services.leadconnectorhq.com',
      rateLimit: { max: 100, windowMs: 10_000, daily: 200_000 },
      maxAttempts: 10,
      httpTimeoutMs: 30_000,
      defaultPhoneRegion: 'US',
      intake: { port: 8080, token: undefined, host: '127.0.0.1', highWater: 100_000 },
      adminPort: 9464,
      dashboard: undefined,
      logLevel: 'info',
      ledgerTtlMs: 30 * 86_400_000,
      workerConcurrency: undefined,
      dailyResetOffsetMs: 0,
      rateLimitsFile: undefined,
    });
  });

  it('reads values, treating blank ones as unset, and is frozen', () => {
    const c = loadConfig({
      GHL_MAX_ATTEMPTS: '3',
      DEFAULT_PHONE_REGION: 'gb',
      QUEUE_PREFIX: '  ',
      REDIS_URL: 'rediss://u:p@h:6380',
      GHL_TOKEN: '',
      GHL_TOKENS_FILE: ' ',
    });
    expect(c).toMatchObject({
      maxAttempts: 3,
      defaultPhoneRegion: 'GB',
      queuePrefix: 'ghl',
      redisUrl: 'rediss://u:p@h:6380',
      token: undefined,
      tokensFile: undefined,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('takes .env.example as it is: every setting blank or at its default', () => {
    const example = Object.fromEntries(
      readFileSync(new URL('../../../.env.example', import.meta.url), 'utf8')
        .split('\n')
        .filter((line) => /^[A-Z_]+=/.test(line))
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    expect(Object.keys(example).length).toBeGreaterThan(20);
    expect(() => loadConfig(example)).not.toThrow();
  });

  it.each([
    ['GHL_MAX_ATTEMPTS', 'ten'],
    ['GHL_MAX_ATTEMPTS', '0'],
    ['REDIS_URL', 'http://localhost'],
    ['GHL_API_BASE_URL', 'not a url'],
    ['DEFAULT_PHONE_REGION', 'XX'],
    ['QUEUE_PREFIX', 'a:b'],
    ['LOG_LEVEL', 'loud'],
    ['HTTP_TIMEOUT_MS', '-1'],
    ['GHL_DAILY_RESET', '25:00'],
    ['NOTIFY_WEBHOOK_URL', 'ftp://hooks.example.com/x'],
    ['NOTIFY_WEBHOOK_URL', 'hooks.example.com/x'],
  ])('refuses %s=%s, naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });

  it('wants both dashboard credentials or neither', () => {
    expect(() => loadConfig({ DASHBOARD_USER: 'a' })).toThrow('DASHBOARD_PASSWORD');
    expect(loadConfig({ DASHBOARD_USER: 'a', DASHBOARD_PASSWORD: 'b' }).dashboard).toEqual({ user: 'a', password: 'b', readOnly: true });
    expect(loadConfig({ DASHBOARD_USER: 'a', DASHBOARD_PASSWORD: 'b', DASHBOARD_ALLOW_CHANGES: 'true' }).dashboard?.readOnly).toBe(false);
    expect(() => loadConfig({ DASHBOARD_ALLOW_CHANGES: 'yes' })).toThrow('DASHBOARD_ALLOW_CHANGES');
  });

  it('takes a notification webhook, signed or not; a secret alone is refused', () => {
    expect(loadConfig({}).notify).toBeUndefined();
    expect(loadConfig({ NOTIFY_WEBHOOK_URL: 'http://127.0.0.1:9000/hook' }).notify).toEqual({ url: 'http://127.0.0.1:9000/hook', secret: undefined });
    expect(loadConfig({ NOTIFY_WEBHOOK_URL: 'https://hooks.example.com/x?token=t', NOTIFY_WEBHOOK_SECRET: 's3' }).notify).toEqual({
      url: 'https://hooks.example.com/x?token=t',
      secret: 's3',
    });
    expect(() => loadConfig({ NOTIFY_WEBHOOK_SECRET: 's3' })).toThrow('NOTIFY_WEBHOOK_URL');
    // The value is not echoed: the URL may carry a token.
    const refused = (() => {
      try {
        loadConfig({ NOTIFY_WEBHOOK_URL: 'ftp://user:hunter2@hooks.example.com' });
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(refused).toBeInstanceOf(ConfigError);
    expect(String(refused)).toMatch(/must be an http:\/\/ or https:\/\/ URL[\s\S]*NOTIFY_WEBHOOK_URL/);
    expect(String(refused)).not.toContain('hunter2');
  });
});
