import { describe, expect, it } from 'vitest';
import { RateWindow, type RateLimits } from './rate-window.ts';

const rolling: RateLimits = { max: 3, windowMs: 1000, daily: 100, mode: 'rolling' };
const fixed: RateLimits = { ...rolling, mode: 'fixed' };

describe('RateWindow', () => {
  it('rolling: refuses the 4th inside any 1000 ms, counting down remaining', () => {
    const w = new RateWindow();
    expect([0, 100, 200].map((t) => w.take(t, 'd', rolling).remaining)).toEqual([2, 1, 0]);
    const refused = w.take(999, 'd', rolling);
    expect(refused).toMatchObject({ allowed: false, remaining: 0, retryInMs: 1 });
    expect(w.take(1000, 'd', rolling).allowed).toBe(true); // the request at 0 has left the window
    expect(w.take(1050, 'd', rolling).allowed).toBe(false);
  });

  it('fixed: allows a burst at each window start (up to 2x max in a rolling second)', () => {
    const w = new RateWindow();
    for (const t of [900, 950, 990]) expect(w.take(t, 'd', fixed).allowed).toBe(true);
    for (const t of [1000, 1010, 1020]) expect(w.take(t, 'd', fixed).allowed).toBe(true);
    expect(w.take(1030, 'd', fixed)).toMatchObject({ allowed: false, retryInMs: 970 });
  });

  it('refused requests do not count', () => {
    const w = new RateWindow();
    for (let i = 0; i < 10; i += 1) w.take(i, 'd', rolling);
    expect(w.peek(10, 'd', rolling)).toEqual({ remaining: 0, dailyRemaining: 97 });
  });

  it('enforces the daily cap and resets on a new day', () => {
    const w = new RateWindow();
    const daily = { ...rolling, max: 1000, daily: 2 };
    expect(w.take(0, 'd1', daily).dailyRemaining).toBe(1);
    expect(w.take(1, 'd1', daily).dailyRemaining).toBe(0);
    expect(w.take(2, 'd1', daily)).toMatchObject({ allowed: false, dailyRemaining: 0 });
    expect(w.take(3, 'd2', daily)).toMatchObject({ allowed: true, dailyRemaining: 1 });
  });
});
