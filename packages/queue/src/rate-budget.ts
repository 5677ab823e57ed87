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
