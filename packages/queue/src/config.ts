/**
 * Every setting of ghl-ingest, read from the environment in this one place, parsed once with zod.
 * The rest of the code receives the frozen result. Only the command line (`pnpm ingest`,
 * `pnpm worker`, `ghl-ingest`) reads a `.env` file, into its own environment (`loadDotEnv`); a
 * library caller's environment is only ever read.
 */
import { existsSync } from 'node:fs';
import { isCountryCode, type CountryCode } from '@ghl-ingest/schema';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { parseResetTime } from './rate-budget.ts';

export { ConfigError } from './errors.ts';

const blankIsUnset = (value: unknown) => (typeof value === 'string' && value.trim() === '' ? undefined : value);
const int = (min: number, max: number) => z.preprocess(blankIsUnset, z.coerce.number().int().min(min).max(max));
const text = () => z.preprocess(blankIsUnset, z.string().trim().min(1));

const envSchema = z.object({
  REDIS_URL: z.preprocess(
    blankIsUnset,
    z
      .string()
      .default('redis://127.0.0.1:6379')
      .refine((v) => /^rediss?:\/\/.+/.test(v), 'must be a redis:// or rediss:// URL'),
  ),
  REDIS_CLUSTER_NODES: z.preprocess(
    blankIsUnset,
    z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((u) => u.trim())
          .filter((u) => u !== ''),
      )
      .refine(
        (urls) => urls.length > 0 && urls.every((u) => /^rediss?:\/\/[^/]+:\d+\/?$/.test(u)),
        'must be comma-separated redis://host:port or rediss://host:port URLs',
      )
      .optional(),
  ),
  QUEUE_PREFIX: z.preprocess(
    blankIsUnset,
    z
      .string()
      .default('ghl')
      .pipe(z.string().regex(/^[A-Za-z0-9_.{}-]{1,64}$/, 'may hold only letters, digits and _ . { } -')),
  ),
  GHL_API_BASE_URL: z.preprocess(blankIsUnset, z.url({ protocol: /^https?$/ }).default('https://services.leadconnectorhq.com')),
  GHL_TOKEN: text().optional(),
  GHL_TOKENS_FILE: text().optional(),
  GHL_ATTACHMENT_HEADERS_FILE: text().optional(),
  GHL_CLIENT_ID: text().optional(),
  GHL_CLIENT_SECRET: text().optional(),
  GHL_TOKEN_KEY: text().optional(),
  GHL_WEBHOOK_PUBLIC_KEY: text().optional(),
  GHL_CONVERSATION_PROVIDER_ID: text().optional(),
  GHL_RATE_LIMIT_MAX: int(1, 1_000_000).default(100),
  GHL_RATE_LIMIT_WINDOW_MS: int(1, 86_400_000).default(10_000),
  GHL_DAILY_LIMIT: int(1, 100_000_000).default(200_000),
  WORKER_CONCURRENCY: int(1, 10_000).optional(),
  GHL_MAX_ATTEMPTS: int(1, 100).default(10),
  HTTP_TIMEOUT_MS: int(100, 600_000).default(30_000),
  DEFAULT_PHONE_REGION: z.preprocess(
    blankIsUnset,
    z
      .string()
      .default('US')
      .transform((v) => v.toUpperCase())
      .refine(isCountryCode, 'must be a two-letter region code such as US or GB'),
  ),
  INTAKE_PORT: int(0, 65_535).default(8080),
  INTAKE_TOKEN: text().optional(),
  INTAKE_HOST: text().optional(),
  INTAKE_HIGH_WATER: int(1, 1_000_000_000).default(100_000),
  ADMIN_PORT: int(0, 65_535).optional(),
  DASHBOARD_USER: text().optional(),
  DASHBOARD_PASSWORD: text().optional(),
  DASHBOARD_ALLOW_CHANGES: z.preprocess(blankIsUnset, z.enum(['true', 'false']).default('false')),
  LOG_LEVEL: z.preprocess(blankIsUnset, z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info')),
  // Ours, beyond contract.md (documented in the README):
  GHL_LEDGER_TTL_DAYS: int(1, 3650).default(30),
  GHL_RECONCILE: z.preprocess(blankIsUnset, z.enum(['on', 'off']).default('on')),
  SHUTDOWN_TIMEOUT_MS: int(0, 3_600_000).default(30_000),
  WORKER_LOCK_MS: int(1_000, 600_000).default(30_000),
  GHL_RATE_LIMITS_FILE: text().optional(),
  GHL_DAILY_RESET: z.preprocess(
    blankIsUnset,
    z
      .string()
      .default('00:00')
      .refine((v) => /^([01]\d|2[0-3]):([0-5]\d)$/.test(v), 'must be HH:MM in UTC, such as 00:00'),
  ),
  NOTIFY_WEBHOOK_URL: z.preprocess(blankIsUnset, z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional()),
  NOTIFY_WEBHOOK_SECRET: text().optional(),
});

/** The name of every setting read from the environment. */
export const SETTINGS = Object.keys(envSchema.shape);

export interface Config {
  redisUrl: string;
  /** REDIS_CLUSTER_NODES: seed URLs of a Redis Cluster, used instead of `redisUrl`. */
  redisClusterNodes: readonly string[] | undefined;
  queuePrefix: string;
  apiBaseUrl: string;
  token: string | undefined;
  tokensFile: string | undefined;
  /** JSON `{ "<host>": { "<Header>": "<value>" } }`: request headers for attachment links HighLevel cannot fetch. */
  attachmentHeadersFile: string | undefined;
  /**
   * A marketplace app's OAuth (GHL_CLIENT_ID, GHL_CLIENT_SECRET): tokens come from the encrypted
   * store `ingest auth` fills; `tokenKey` (GHL_TOKEN_KEY) seals them. The key alone is enough to
   * import and show tokens; refreshing them needs the app's credentials too.
   */
  oauth: { clientId: string | undefined; clientSecret: string | undefined; tokenKey: string } | undefined;
  /** GHL_WEBHOOK_PUBLIC_KEY: HighLevel's Ed25519 key (PEM) that signs marketplace webhooks (X-GHL-Signature). */
  webhookPublicKey: string | undefined;
  conversationProviderId: string | undefined;
  rateLimit: { max: number; windowMs: number; daily: number };
  /** GHL_RATE_LIMITS_FILE: per-location budgets over `rateLimit`. */
  rateLimitsFile: string | undefined;
  /** When the daily budget resets: ms after midnight UTC (GHL_DAILY_RESET). */
  dailyResetOffsetMs: number;
  /** In-flight requests per worker process; undefined: the worker chooses. */
  workerConcurrency: number | undefined;
  maxAttempts: number;
  httpTimeoutMs: number;
  defaultPhoneRegion: CountryCode;
  /** `ingest serve`. `host` defaults to 0.0.0.0 with a token and 127.0.0.1 without one. */
  intake: { port: number; token: string | undefined; host: string; highWater: number };
  /** ADMIN_PORT, default 9464. */
  adminPort: number;
  /** ADMIN_PORT was set: a taken port stops the worker. Unset, workers on one host take the next free port. */
  adminPortExplicit: boolean;
  /** `readOnly` unless DASHBOARD_ALLOW_CHANGES=true: no retrying, promoting or deleting jobs from the dashboard. */
  dashboard: { user: string; password: string; readOnly: boolean } | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  ledgerTtlMs: number;
  /** GHL_RECONCILE: look a message up at HighLevel before posting it again after an unknown outcome. */
  reconcile: boolean;
  shutdownTimeoutMs: number;
  /** A job's lock, renewed at half this while it runs; a dead worker's jobs are taken again within about twice this. */
  workerLockMs: number;
  /**
   * NOTIFY_WEBHOOK_URL: where workers POST notifications (locations paused or parked, new dead
   * letters); `secret` (NOTIFY_WEBHOOK_SECRET) signs each body. Undefined: no notifications.
   */
  notify: { url: string; secret: string | undefined } | undefined;
}

/** Parses settings from `env` (default: `process.env`, read only). Throws ConfigError naming each bad variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Readonly<Config> {
  // A blank value is unset (`GHL_TOKEN=` in a .env copied from .env.example): dropped before
  // parsing, so optional settings stay unset and defaults apply.
  const parsed = envSchema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => blankIsUnset(v) !== undefined)));
  if (!parsed.success) {
    throw new ConfigError(`invalid settings:\n${z.prettifyError(parsed.error)}`);
  }
  const e = parsed.data;
  if ((e.DASHBOARD_USER === undefined) !== (e.DASHBOARD_PASSWORD === undefined)) {
    throw new ConfigError('invalid settings: set both DASHBOARD_USER and DASHBOARD_PASSWORD, or neither');
  }
  if ((e.GHL_CLIENT_ID === undefined) !== (e.GHL_CLIENT_SECRET === undefined)) {
    throw new ConfigError('invalid settings: set both GHL_CLIENT_ID and GHL_CLIENT_SECRET (the marketplace app), or neither');
  }
  if (e.GHL_CLIENT_ID !== undefined && e.GHL_TOKEN_KEY === undefined) {
    throw new ConfigError(
      'invalid settings: GHL_CLIENT_ID needs GHL_TOKEN_KEY, the key that encrypts OAuth tokens in Redis (make one: openssl rand -base64 32)',
    );
  }
  if (e.NOTIFY_WEBHOOK_SECRET !== undefined && e.NOTIFY_WEBHOOK_URL === undefined) {
    throw new ConfigError('invalid settings: NOTIFY_WEBHOOK_SECRET signs notifications, which need NOTIFY_WEBHOOK_URL too');
  }
  return Object.freeze({
    redisUrl: e.REDIS_URL,
    redisClusterNodes: e.REDIS_CLUSTER_NODES === undefined ? undefined : Object.freeze(e.REDIS_CLUSTER_NODES),
    queuePrefix: e.QUEUE_PREFIX,
    apiBaseUrl: e.GHL_API_BASE_URL.replace(/\/+$/, ''),
    token: e.GHL_TOKEN,
    tokensFile: e.GHL_TOKENS_FILE,
    attachmentHeadersFile: e.GHL_ATTACHMENT_HEADERS_FILE,
    oauth:
      e.GHL_TOKEN_KEY === undefined ? undefined : Object.freeze({ clientId: e.GHL_CLIENT_ID, clientSecret: e.GHL_CLIENT_SECRET, tokenKey: e.GHL_TOKEN_KEY }),
    webhookPublicKey: e.GHL_WEBHOOK_PUBLIC_KEY,
    conversationProviderId: e.GHL_CONVERSATION_PROVIDER_ID,
    rateLimit: Object.freeze({ max: e.GHL_RATE_LIMIT_MAX, windowMs: e.GHL_RATE_LIMIT_WINDOW_MS, daily: e.GHL_DAILY_LIMIT }),
    rateLimitsFile: e.GHL_RATE_LIMITS_FILE,
    dailyResetOffsetMs: parseResetTime(e.GHL_DAILY_RESET),
    workerConcurrency: e.WORKER_CONCURRENCY,
    maxAttempts: e.GHL_MAX_ATTEMPTS,
    httpTimeoutMs: e.HTTP_TIMEOUT_MS,
    defaultPhoneRegion: e.DEFAULT_PHONE_REGION,
    intake: Object.freeze({
      port: e.INTAKE_PORT,
      token: e.INTAKE_TOKEN,
      host: e.INTAKE_HOST ?? (e.INTAKE_TOKEN === undefined ? '127.0.0.1' : '0.0.0.0'),
      highWater: e.INTAKE_HIGH_WATER,
    }),
    adminPort: e.ADMIN_PORT ?? 9464,
    adminPortExplicit: e.ADMIN_PORT !== undefined,
    dashboard:
      e.DASHBOARD_USER !== undefined && e.DASHBOARD_PASSWORD !== undefined
        ? Object.freeze({ user: e.DASHBOARD_USER, password: e.DASHBOARD_PASSWORD, readOnly: e.DASHBOARD_ALLOW_CHANGES !== 'true' })
        : undefined,
    logLevel: e.LOG_LEVEL,
    ledgerTtlMs: e.GHL_LEDGER_TTL_DAYS * 86_400_000,
    reconcile: e.GHL_RECONCILE === 'on',
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    workerLockMs: e.WORKER_LOCK_MS,
    notify: e.NOTIFY_WEBHOOK_URL === undefined ? undefined : Object.freeze({ url: e.NOTIFY_WEBHOOK_URL, secret: e.NOTIFY_WEBHOOK_SECRET }),
  });
}

/**
 * The command line's, at start: a `.env` file of the working directory into the process's
 * environment, under the real variables (they win). A library never calls this: it would change
 * its host application's environment.
 */
export function loadDotEnv(): void {
  if (existsSync('.env')) process.loadEnvFile('.env');
}
