import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useTempDirs } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './config.ts';
import { budgetFor, dayIndex, effectiveBudget, lookupsPerMinute, nextReset, parseResetTime, readBudgetOverrides } from './rate-budget.ts';

const cfg = { max: 100, windowMs: 10_000, daily: 200_000 };

describe('effectiveBudget', () => {
  it.each([
    [{}, cfg],
    [{ max: 50 }, { ...cfg, max: 50 }],
    [{ max: 200 }, cfg],
    [{ max: 0 }, cfg],
    [{ windowMs: 20_000 }, { ...cfg, windowMs: 20_000 }],
    [{ windowMs: 5_000 }, cfg],
    [{ daily: 1000 }, { ...cfg, daily: 1000 }],
    [
      { max: 60, windowMs: 60_000, daily: 500_000 },
      { max: 60, windowMs: 60_000, daily: 200_000 },
    ],
  ])('headers %j -> %j', (learned, expected) => {
    expect(effectiveBudget(cfg, learned)).toEqual(expected);
  });
});

describe('daily reset', () => {
  const at = (iso: string) => Date.parse(iso);
  it.each([
    ['2026-11-24T10:00:00Z', '00:00', '2026-11-25T00:00:00.000Z'],
    ['2026-11-24T23:59:59Z', '00:00', '2026-11-25T00:00:00.000Z'],
    ['2026-11-24T04:59:00Z', '05:00', '2026-11-24T05:00:00.000Z'],
    ['2026-11-24T05:00:00Z', '05:00', '2026-11-25T05:00:00.000Z'],
  ])('at %s with reset %s, the day ends %s', (now, reset, expected) => {
    expect(new Date(nextReset(at(now), parseResetTime(reset))).toISOString()).toBe(expected);
  });

  it('counts days from the reset time', () => {
    const offset = parseResetTime('05:00');
    expect(dayIndex(at('2026-11-24T04:59:59Z'), offset)).toBe(dayIndex(at('2026-11-23T06:00:00Z'), offset));
    expect(dayIndex(at('2026-11-24T05:00:00Z'), offset)).toBe(dayIndex(at('2026-11-23T06:00:00Z'), offset) + 1);
  });

  it.each(['24:00', '5:00', 'noon', '00:60'])('refuses %s', (text) => {
    expect(() => parseResetTime(text)).toThrow(ConfigError);
  });
});

describe('per-location overrides', () => {
  const tempDir = useTempDirs();
  const file = (content: string) => {
    const path = join(tempDir('ghl-limits-'), 'limits.json');
    writeFileSync(path, content);
    return path;
  };

  it('apply over the defaults for the locations they name', () => {
    const overrides = readBudgetOverrides(file('{"slow": {"max": 10}, "big": {"daily": 500000, "windowMs": 5000}}'));
    expect(budgetFor('slow', cfg, overrides)).toEqual({ ...cfg, max: 10 });
    expect(budgetFor('big', cfg, overrides)).toEqual({ max: 100, windowMs: 5000, daily: 500_000 });
    expect(budgetFor('other', cfg, overrides)).toEqual(cfg);
    expect(readBudgetOverrides(undefined)).toEqual({});
  });

  it.each([
    ['not json', 'GHL_RATE_LIMITS_FILE'],
    ['{"a": {"max": -1}}', 'max'],
    ['{"a": {"burst": 5}}', 'burst'],
    ['{"a:b": {"max": 5}}', 'a:b'],
  ])('refuse %s naming what is wrong', (content, message) => {
    expect(() => readBudgetOverrides(file(content))).toThrow(message);
  });
});

describe('lookupsPerMinute', () => {
  // HighLevel's default: 100 requests per 10 s, 600 a minute.
  it.each([
    [cfg, 0, 30], // nothing unknown measured: the floor, 5 % of 600
    [cfg, 0.01, 30], // 12 needed: still the floor
    [cfg, 0.05, 60], // 3 % resets and 2 % late answers: 30 unknown a minute, twice that
    [cfg, 0.0625, 75], // up to the ceiling: 75 lookups of 2 reads, a quarter of 600
    [cfg, 0.5, 75], // HighLevel failing half the posts: never more than the ceiling
    [{ max: 20, windowMs: 2_000 }, 0.05, 60], // 600 a minute too, in a shorter window
    [{ max: 10, windowMs: 1_000 }, 0.05, 60],
    [{ max: 1, windowMs: 10_000 }, 0.2, 1], // 6 a minute: one lookup at least
    [cfg, -1, 30], // nonsense in, the floor out
    [cfg, Number.NaN, 30],
  ])('%o at unknown share %d: %d a minute', (budget, share, expected) => {
    expect(lookupsPerMinute(budget, share)).toBe(expected);
  });
});
