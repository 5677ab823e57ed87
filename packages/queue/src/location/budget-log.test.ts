import { describe, expect, it } from 'vitest';
import { BudgetLog, type BudgetLogOptions } from './budget-log.ts';

const B = { max: 3, windowMs: 1_000, daily: 1_000 };
// The sliding log's arithmetic, unpaced; pacing has its own test below.
const O: BudgetLogOptions = { inflightMs: 5_000, horizonMs: () => 2_000, resetOffsetMs: 0, pace: false };
const T = 1_800_000_000_000;
const log = () => new BudgetLog(O);
/** Takes a slot and sends at once when it is free (what a delivery with a place in flight does). */
const send = (l: BudgetLog, slot: string, at: number, b = B, live = false) => {
  const took = l.take(slot, live, at, b);
  return took.kind === 'go' ? l.proceed(slot, at, b) : took;
};

describe("BudgetLog: the holder's sliding log", () => {
  it('lets max requests go at once, then reserves the moment a slot is expected to free', () => {
    const l = log();
    expect(['a', 'b', 'c'].map((s) => send(l, s, T).kind)).toEqual(['go', 'go', 'go']);
    // None answered yet, latency unknown (0): the first frees one window after it was sent.
    expect(l.take('d', false, T, B)).toEqual({ kind: 'reserved', sendInMs: 1_000 });
  });

  it('counts an answered request until one window after its answer, not after its send', () => {
    const l = log();
    for (const s of ['a', 'b', 'c']) send(l, s, T);
    l.answered('a', T + 200, B, undefined, 'up');
    expect(l.view(T + 1_199, B).counted).toBe(3);
    expect(l.view(T + 1_200, B).counted).toBe(2);
    expect(send(l, 'd', T + 1_200)).toEqual({ kind: 'go' });
  });

  it('reserves one slot after another, each at its own expected expiry', () => {
    const l = log();
    for (const [s, at] of [
      ['a', 0],
      ['b', 100],
      ['c', 200],
    ] as const)
      send(l, s, T + at);
    for (const [s, at] of [
      ['a', 50],
      ['b', 150],
      ['c', 250],
    ] as const)
      l.answered(s, T + at, B, undefined, 'up');
    const waits = ['d', 'e', 'f'].map((s) => l.take(s, false, T + 300, B));
    expect(waits).toEqual([
      { kind: 'reserved', sendInMs: 750 },
      { kind: 'reserved', sendInMs: 850 },
      { kind: 'reserved', sendInMs: 950 },
    ]);
  });

  it('the gate lets a reserved request go only while fewer than max count, else says how much longer', () => {
    const l = log();
    for (const s of ['a', 'b', 'c']) send(l, s, T);
    expect(l.take('d', false, T, B).kind).toBe('reserved');
    // Woke at its time but no answer came back yet: the window is still full.
    expect(l.proceed('d', T + 1_000, B)).toMatchObject({ kind: 'later' });
    l.answered('a', T + 1_000, B, undefined, 'up');
    expect(l.proceed('d', T + 2_000, B)).toEqual({ kind: 'go' });
  });

  it('says wait instead of reserving past the horizon', () => {
    const l = new BudgetLog({ ...O, horizonMs: () => 500 });
    for (const s of ['a', 'b', 'c']) send(l, s, T);
    expect(l.take('d', false, T, B)).toEqual({ kind: 'wait', waitMs: 1_000 });
  });

  it('a live message ranks ahead of every backfill reservation, and live ones keep their order', () => {
    const l = log();
    for (const s of ['a', 'b', 'c']) send(l, s, T);
    for (const [s, at] of [
      ['a', 10],
      ['b', 20],
      ['c', 30],
    ] as const)
      l.answered(s, T + at, B, undefined, 'up');
    expect(l.take('backfill-1', false, T + 40, B)).toEqual({ kind: 'reserved', sendInMs: 970 });
    expect(l.take('backfill-2', false, T + 40, B)).toEqual({ kind: 'reserved', sendInMs: 980 });
    // The live ones take the first two slots that free, in the order they came.
    expect(l.take('live-1', true, T + 50, B)).toEqual({ kind: 'reserved', sendInMs: 960 });
    expect(l.take('live-2', true, T + 60, B)).toEqual({ kind: 'reserved', sendInMs: 960 });
    // The first slot frees: backfill-1 woke first, but live-1 and live-2 are ranked ahead of it.
    expect(l.proceed('backfill-1', T + 1_010, B)).toMatchObject({ kind: 'later' });
    expect(l.proceed('live-1', T + 1_010, B)).toEqual({ kind: 'go' });
    expect(l.proceed('live-2', T + 1_020, B)).toEqual({ kind: 'go' });
    expect(l.proceed('backfill-1', T + 1_030, B)).toEqual({ kind: 'go' });
  });

  it('a 429 gives the slot back, blocks the location, and then one request probes before the rest', () => {
    const l = log();
    send(l, 'a', T);
    expect(l.refuse('a', T + 50, 2_000)).toBe(2_000);
    expect(l.take('b', false, T + 100, B)).toEqual({ kind: 'wait', waitMs: 1_950 });
    expect(send(l, 'probe', T + 2_100)).toEqual({ kind: 'go' });
    expect(l.take('c', false, T + 2_110, B)).toEqual({ kind: 'wait', waitMs: 50 });
    l.answered('probe', T + 2_150, B, { remaining: 2, max: 3 }, 'up');
    expect(send(l, 'c', T + 2_160)).toEqual({ kind: 'go' });
  });

  it("counts HighLevel's failures in a row; one in flight when the wait began does not count again; an answer clears them", () => {
    const l = log();
    for (const s of ['a', 'b', 'c']) send(l, s, T);
    expect(l.answered('a', T + 10, B, undefined, 'down')).toBe(1);
    l.refuse('a', T + 10, 1_000);
    expect(l.answered('b', T + 20, B, undefined, 'down')).toBe(1);
    expect(l.answered('c', T + 30, B, undefined, 'up')).toBe(0);
    send(l, 'd', T + 5_000);
    expect(l.answered('d', T + 5_010, B, undefined, 'down')).toBe(1);
  });

  it('parks a location whose daily budget is spent until the next reset; a slot given back gives back its count', () => {
    const l = log();
    const daily = { ...B, max: 10, daily: 2 };
    send(l, 'a', T, daily);
    l.take('b', false, T, daily);
    const parked = l.take('c', false, T, daily);
    expect(parked).toMatchObject({ kind: 'parked', until: (Math.floor(T / 86_400_000) + 1) * 86_400_000 });
    l.release('b');
    expect(l.take('c', false, T, daily).kind).toBe('go');
  });

  it('learns that others spend the location from X-RateLimit-Remaining, and adopts a lower max, a longer window and the daily count HighLevel reports', () => {
    const l = log();
    const b = { max: 10, windowMs: 1_000, daily: 1_000 };
    send(l, 'a', T, b);
    l.answered('a', T + 10, b, { remaining: 5, dailyRemaining: 900, daily: 1_000 }, 'up');
    // 10 - 5 = 5 counted by HighLevel, 1 of them ours: 4 others'.
    expect(l.view(T + 20, b)).toMatchObject({ counted: 5, dailyUsed: 100 });
    send(l, 'b', T + 20, b);
    l.answered('b', T + 30, b, { max: 4, intervalMs: 3_000 }, 'up');
    expect(l.view(T + 40, b).budget).toEqual({ max: 4, windowMs: 3_000, daily: 1_000 });
    // A larger max or shorter window than the settings is not adopted: the settings are the ceiling.
    l.answered('x', T + 50, b, { max: 50, intervalMs: 100 }, 'up');
    expect(l.view(T + 60, b).budget).toEqual(b);
  });

  it("a request of ours that stopped counting while another was on its way is not taken for another app's", () => {
    const l = log();
    send(l, 'a', T);
    l.answered('a', T + 10, B, { remaining: 2 }, 'up');
    // b is sent while a still counts (until T + 1010); HighLevel counts both when b arrives.
    send(l, 'b', T + 1_000);
    l.answered('b', T + 1_050, B, { remaining: 1 }, 'up');
    expect(l.view(T + 1_060, B).counted).toBe(1);
  });

  it('saves in Redis time and loads in local time; a request in flight is saved as counting as long as it may', () => {
    const l = log();
    send(l, 'a', T);
    send(l, 'b', T);
    l.answered('a', T + 100, B, undefined, 'up');
    const saved = l.save(T + 200, B, (t) => t + 7);
    expect(saved.counted).toEqual([T + 1_100 + 7, T + 5_000 + 1_000 + 7]);
    const loaded = BudgetLog.load(saved, O, (t) => t - 7);
    expect(loaded.view(T + 1_099, B).counted).toBe(2);
    expect(loaded.view(T + 1_100, B).counted).toBe(1);
    expect(loaded.view(T + 6_000, B).counted).toBe(0);
  });

  it('a slot free now counts only from its send: a request waiting for a place in flight holds none', () => {
    const l = log();
    expect(['a', 'b', 'c'].map((s) => l.take(s, false, T, B).kind)).toEqual(['go', 'go', 'go']);
    expect(l.view(T, B).counted).toBe(0);
    // A fourth ranks behind the three reserved: it waits for one of their slots to free.
    expect(l.take('d', false, T, B).kind).toBe('reserved');
    // The first has its place 200 ms later: it counts from then, until a window after its answer.
    expect(l.proceed('a', T + 200, B)).toEqual({ kind: 'go' });
    expect(l.view(T + 200, B).counted).toBe(1);
    l.answered('a', T + 250, B, undefined, 'up');
    expect(l.view(T + 1_249, B).counted).toBe(1);
    expect(l.view(T + 1_250, B).counted).toBe(0);
  });

  it('backfill is paced to one request per window / max, two at most together; a live message is not, and goes first', () => {
    const l = new BudgetLog({ ...O, pace: true });
    const b = { max: 10, windowMs: 1_000, daily: 1_000 };
    expect(['b1', 'b2'].map((s) => l.take(s, false, T, b))).toEqual([{ kind: 'go' }, { kind: 'go' }]);
    expect(l.hasRoom(false, T, b)).toBe(false);
    expect(l.take('b3', false, T, b)).toEqual({ kind: 'reserved', sendInMs: 100 });
    expect(l.take('b4', false, T, b)).toEqual({ kind: 'reserved', sendInMs: 200 });
    expect(l.hasRoom(true, T, b)).toBe(true);
    expect(l.take('live', true, T + 10, b)).toEqual({ kind: 'go' });
    // Late (its slot freed late): the pace lets it catch up, but no more than two together.
    expect(l.hasRoom(false, T + 900, b)).toBe(true);
    expect(['b5', 'b6', 'b7'].map((s) => l.take(s, false, T + 900, b).kind)).toEqual(['go', 'go', 'reserved']);
  });

  it("a paced reservation given back gives back its step of the pace, while it is the pace's last", () => {
    const l = new BudgetLog({ ...O, pace: true });
    const b = { max: 10, windowMs: 1_000, daily: 1_000 };
    for (const s of ['b1', 'b2']) l.take(s, false, T, b);
    expect(l.take('b3', false, T, b)).toEqual({ kind: 'reserved', sendInMs: 100 });
    expect(l.take('b4', false, T, b)).toEqual({ kind: 'reserved', sendInMs: 200 });
    // The last one given back: the next takes its place, not the one after.
    l.release('b4');
    expect(l.take('b5', false, T, b)).toEqual({ kind: 'reserved', sendInMs: 200 });
    // One with others after it: its step stays spent (the later ones keep theirs).
    l.release('b3');
    expect(l.take('b6', false, T, b)).toEqual({ kind: 'reserved', sendInMs: 300 });
  });

  it('a block set for a lapsed holder holds every request until it ends', () => {
    const l = log();
    l.blockUntil(T + 3_000);
    expect(l.take('a', true, T, B)).toEqual({ kind: 'wait', waitMs: 3_000 });
    expect(send(l, 'a', T + 3_000, B, true)).toEqual({ kind: 'go' });
  });
});
