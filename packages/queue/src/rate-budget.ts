/**
 * The arithmetic of a location's budget that needs no Redis: which limits apply (settings,
 * per-location overrides, and what HighLevel's headers said), and when a daily budget resets.
 * The sliding-window accounting itself runs in Redis (rate-limiter.ts), atomically.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from './errors.ts';

export interface Budget {
  /** Requests per window. */
  max: number;
  /** Window in ms. */
  windowMs: number;
  /** Requests per day. */
  daily: number;
}

const DAY_MS = 86_400_000;

const overridesSchema = z.record(
  z.string().regex(/^[A-Za-z0-9_-]+$/),
  z.strictObject({
    max: z.number().int().positive().optional(),
    windowMs: z.number().int().positive().optional(),
    daily: z.number().int().positive().optional(),
  }),
);
export type BudgetOverrides = z.infer<typeof overridesSchema>;

/** Reads GHL_RATE_LIMITS_FILE: `{ "<locationId>": { "max"?, "windowMs"?, "daily"? } }`. */
export function readBudgetOverrides(file: string | undefined): BudgetOverrides {
  if (file === undefined) return {};
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(`GHL_RATE_LIMITS_FILE ${file}: ${(error as Error).message}`, { cause: error });
  }
  const parsed = overridesSchema.safeParse(json);
  if (!parsed.success) {
    throw new ConfigError(`GHL_RATE_LIMITS_FILE ${file}: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

export function budgetFor(locationId: string, defaults: Budget, overrides: BudgetOverrides): Budget {
  return { ...defaults, ...overrides[locationId] };
}

/**
 * What HighLevel's headers may change: a smaller `X-RateLimit-Max` or a longer
 * `X-RateLimit-Interval-Milliseconds` than configured wins (HighLevel calls its headers
 * authoritative); a larger max or shorter window does not (the settings are the user's ceiling).
 */
export function effectiveBudget(configured: Budget, learned: { max?: number; windowMs?: number; daily?: number }): Budget {
  return {
    max: learned.max !== undefined && learned.max > 0 && learned.max < configured.max ? learned.max : configured.max,
    windowMs: learned.windowMs !== undefined && learned.windowMs > configured.windowMs ? learned.windowMs : configured.windowMs,
    daily: learned.daily !== undefined && learned.daily > 0 && learned.daily < configured.daily ? learned.daily : configured.daily,
  };
}

/** `HH:MM` (UTC) → ms after midnight UTC. */
export function parseResetTime(text: string): number {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text.trim());
  if (m === null) throw new ConfigError(`GHL_DAILY_RESET must be HH:MM in UTC, such as 00:00, not "${text}"`);
  return Number(m[1]) * 3_600_000 + Number(m[2]) * 60_000;
}

/** The day (a whole number) that `nowMs` falls in, for a day that starts `resetOffsetMs` after midnight UTC. */
export function dayIndex(nowMs: number, resetOffsetMs: number): number {
  return Math.floor((nowMs - resetOffsetMs) / DAY_MS);
}

/** When the day of `nowMs` ends: the next daily reset, epoch ms. */
export function nextReset(nowMs: number, resetOffsetMs: number): number {
  return (dayIndex(nowMs, resetOffsetMs) + 1) * DAY_MS + resetOffsetMs;
}

/** Reads a lookup (reconcile) takes at most, usually: a search for the conversation and a page of it. */
const READS_PER_LOOKUP = 2;

/**
 * How many lookups (reads before posting again after an unknown outcome) a location may start a
 * minute: twice what its rate would need at the share of unknown outcomes measured there
 * (`unknownShare`: unknown outcomes per post, 0..1), at least 5 % of its requests a minute (a worker
 * that dies leaves its requests in flight unknown all at once, and nothing measured them), and at
 * most what keeps the lookups' reads to a quarter of its requests. A message past the budget waits
 * for the next minute; it is never posted without its lookup.
 */
export function lookupsPerMinute(budget: Pick<Budget, 'max' | 'windowMs'>, unknownShare: number): number {
  const requests = (budget.max * 60_000) / budget.windowMs;
  const share = Number.isFinite(unknownShare) ? Math.min(1, Math.max(0, unknownShare)) : 0;
  const needed = Math.ceil(2 * requests * share);
  const floor = Math.ceil(0.05 * requests);
  const ceiling = Math.floor((0.25 * requests) / READS_PER_LOOKUP);
  return Math.max(1, Math.min(ceiling, Math.max(floor, needed)));
}
