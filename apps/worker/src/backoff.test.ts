import { describe, expect, it } from 'vitest';
import { backoffDelay, outageWait, parseRetryAfter } from './backoff.ts';

const top = () => 0.999_999;
const zero = () => 0;

describe('backoffDelay', () => {
  it.each([
    [1, 999],
    [2, 1999],
    [3, 3999],
    [9, 255_999],
    [10, 299_999], // capped at 5 min
    [40, 299_999],
  ])('attempt %i with the largest draw waits %i ms', (attempt, expected) => {
    expect(backoffDelay(attempt, top)).toBe(expected);
  });

  it('draws uniformly below the ceiling (full jitter)', () => {
    expect(backoffDelay(3, () => 0.5)).toBe(2000);
    expect(backoffDelay(3, zero)).toBe(0);
  });

  it('lets Retry-After win only when it asks for longer', () => {
    expect(backoffDelay(1, top, 5_000)).toBe(5_000);
    expect(backoffDelay(10, top, 5_000)).toBe(299_999);
    expect(backoffDelay(10, zero, 5_000)).toBe(5_000);
  });

  it('takes other bases and caps', () => {
    expect(backoffDelay(4, top, undefined, { baseMs: 10, capMs: 50 })).toBe(49);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-24T10:00:00Z');
  it.each([
    ['120', 120_000],
    [' 0 ', 0],
    ['Tue, 24 Nov 2026 10:00:30 GMT', 30_000],
    ['Tue, 24 Nov 2026 09:00:00 GMT', 0],
    ['soon', undefined],
    ['-5', undefined],
    ['1.5', undefined],
    [undefined, undefined],
  ])('%s -> %s', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});

describe('outageWait', () => {
  it.each([
    [1, undefined],
    [4, undefined], // below the threshold: the message's own attempt
    [5, 1_000],
    [6, 2_000],
    [9, 16_000],
    [10, 30_000], // capped
    [1_000, 30_000],
  ])('%i failures in a row: %s', (failures, expected) => {
    expect(outageWait(failures)).toBe(expected);
  });
});
