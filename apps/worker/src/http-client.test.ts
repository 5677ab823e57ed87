import { describe, expect, it } from 'vitest';
import { readRateHeaders } from './http-client.ts';

describe('readRateHeaders', () => {
  it.each([
    [{}, undefined],
    [{ 'content-type': 'application/json' }, undefined],
    [
      {
        'x-ratelimit-max': '100',
        'x-ratelimit-remaining': '99',
        'x-ratelimit-interval-milliseconds': '10000',
        'x-ratelimit-limit-daily': '200000',
        'x-ratelimit-daily-remaining': '199999',
      },
      { max: 100, remaining: 99, intervalMs: 10_000, daily: 200_000, dailyRemaining: 199_999 },
    ],
    // Whitespace around a number is HTTP's; anything else that is not a whole number is left out.
    [{ 'x-ratelimit-remaining': ' 7 ' }, { remaining: 7 }],
    [{ 'x-ratelimit-remaining': '0' }, { remaining: 0 }],
    [{ 'x-ratelimit-remaining': '-1', 'x-ratelimit-max': '100' }, { max: 100 }],
    [{ 'x-ratelimit-remaining': '1.5' }, undefined],
    [{ 'x-ratelimit-remaining': '1e3' }, undefined],
    [{ 'x-ratelimit-remaining': '' }, undefined],
    [{ 'x-ratelimit-remaining': 'NaN' }, undefined],
    // A header sent twice is a list: neither value is trusted.
    [{ 'x-ratelimit-remaining': ['5', '6'] }, undefined],
  ] as [Record<string, string | string[]>, unknown][])('%j -> %j', (headers, expected) => {
    expect(readRateHeaders(headers)).toEqual(expected);
  });
});
