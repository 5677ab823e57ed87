import { describe, expect, it } from 'vitest';
import { UnknownShare } from './reconcile.ts';

describe('UnknownShare', () => {
  it('is the share of unknown outcomes among a location’s posts, 0 before any', () => {
    const u = new UnknownShare();
    expect(u.share('a', 0)).toBe(0);
    for (let i = 0; i < 95; i += 1) u.record('a', false, 0);
    for (let i = 0; i < 5; i += 1) u.record('a', true, 0);
    expect(u.share('a', 0)).toBeCloseTo(0.05);
    expect(u.share('b', 0)).toBe(0); // each location its own
  });

  it('forgets with time: a burst of unknowns weighs less once the posts after it are answered', () => {
    const u = new UnknownShare({ halfLifeMs: 1_000 });
    for (let i = 0; i < 10; i += 1) u.record('a', true, 0);
    for (let i = 0; i < 10; i += 1) u.record('a', false, 3_000);
    // The burst halved three times (1.25 of 11.25 posts).
    expect(u.share('a', 3_000)).toBeCloseTo(1.25 / 11.25);
  });

  it('keeps at most maxLocations, forgetting the one seen longest ago', () => {
    const u = new UnknownShare({ maxLocations: 2 });
    u.record('a', true, 0);
    u.record('b', true, 0);
    u.record('a', true, 1);
    u.record('c', true, 2);
    expect([u.share('a', 2), u.share('b', 2), u.share('c', 2)]).toEqual([1, 0, 1]);
  });
});
