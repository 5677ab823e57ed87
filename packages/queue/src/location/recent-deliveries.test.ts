import { describe, expect, it } from 'vitest';
import { RecentDeliveries } from './recent-deliveries.ts';

const entry = (n: number) => ({ messageId: `m${n}`, at: n });
const keys = (r: RecentDeliveries) => [...r.byLocation().values()].flat().map((d) => d.key);

describe('RecentDeliveries: the ledger entries a process wrote lately', () => {
  it.each([
    // [what, adds at these times (ms), keepMs, max, keys kept]
    ['all within the window', [0, 10, 20], 100, 10, ['k0', 'k1', 'k2']],
    ['older than the window before the newest add age out', [0, 50, 200], 100, 10, ['k2']],
    ['the window is measured back from the newest add', [0, 90, 100], 100, 10, ['k0', 'k1', 'k2']],
    ['past max, the oldest go first', [0, 1, 2, 3], 1_000, 2, ['k2', 'k3']],
  ])('%s', (_what, times, keepMs, max, kept) => {
    const r = new RecentDeliveries(keepMs, max);
    times.forEach((t, n) => {
      r.add({ locationId: 'loc', key: `k${n}`, entry: entry(n) }, t);
    });
    expect(keys(r)).toEqual(kept);
    expect(r.size).toBe(kept.length);
  });

  it('nothing ages out while nothing is added (Redis away for long): the last window stays', () => {
    const r = new RecentDeliveries(100, 10);
    r.add({ locationId: 'loc', key: 'k0', entry: entry(0) }, 0);
    r.add({ locationId: 'loc', key: 'k1', entry: entry(1) }, 50);
    expect(keys(r)).toEqual(['k0', 'k1']);
  });

  it('groups by location, in the order written, and stays bounded over many adds', () => {
    const r = new RecentDeliveries(1_000, 5_000);
    for (let n = 0; n < 100_000; n += 1) r.add({ locationId: `loc${n % 3}`, key: `k${n}`, entry: entry(n) }, n);
    expect(r.size).toBe(1_001);
    const byLocation = r.byLocation();
    expect([...byLocation.keys()].sort()).toEqual(['loc0', 'loc1', 'loc2']);
    expect(byLocation.get('loc0')?.[0]?.key).toBe('k99000');
    expect(byLocation.get('loc0')?.at(-1)?.key).toBe('k99999');
  });
});
