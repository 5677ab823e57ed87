import { until, useRedis } from '@ghl-ingest/testing';
import { describe, expect, it } from 'vitest';
import { WorkerLocations } from './index.ts';
import { readWake, readySetKeys, type Lease } from './ready-set.ts';

const limiter = { budget: () => ({ max: 100, windowMs: 10_000, daily: 200_000 }), inflightMs: 5_000 };

describe('the ready set (Lua, on a real Redis)', () => {
  const redis = useRedis();
  const state = () => new WorkerLocations(redis.client(), { prefix: redis.prefix, limiter, ledgerTtlMs: 60_000 });
  /** Claims one location, which must be due. */
  const claimOne = async (s: WorkerLocations, leaseMs = 5_000): Promise<Lease> => {
    const [lease] = (await s.claim(1, leaseMs)).leases;
    if (lease === undefined) throw new Error('nothing was due');
    return lease;
  };
  const ids = async (s: WorkerLocations, count = 10, leaseMs = 5_000) => (await s.claim(count, leaseMs)).leases.map((l) => l.locationId);

  it('a marked location is claimed once, and dropped when its turn ends with nothing left', async () => {
    const s = state();
    expect(await s.markReady(['a'], false)).toBe(1);
    const lease = await claimOne(s);
    expect(lease.locationId).toBe('a');
    expect(await ids(s)).toEqual([]); // held: nobody else takes it
    expect(await s.endLease(lease, { mode: 'idle' })).toBe(true);
    expect(await s.dueInMs('a')).toBeUndefined();
    expect(await redis.admin.hlen(readySetKeys(redis.prefix).leases)).toBe(0);
  });

  it('messages added while a location is held keep it due: no wake-up is lost', async () => {
    const s = state();
    await s.markReady(['a'], false);
    const lease = await claimOne(s);
    // The holder found the queue empty just before a producer added a message.
    expect(await s.markReady(['a'], false)).toBe(0);
    await s.endLease(lease, { mode: 'idle' });
    expect(await s.dueInMs('a')).toBe(0);
    expect(await ids(s)).toEqual(['a']);
  });

  it("live messages for a held location tell its holder, each time; backfill and others' due locations say only how many", async () => {
    const s = state();
    const sub = redis.client();
    const raw: string[] = [];
    sub.on('message', (_channel: string, message: string) => raw.push(message));
    await sub.subscribe(s.wakeChannel);
    await s.markReady(['a'], false);
    await claimOne(s);
    await s.markReady(['a'], true);
    await s.markReady(['a'], true); // held and marked already: told again
    await s.markReady(['a'], false);
    await s.markReady(['b'], true); // not held: due, and the dispatchers woken
    // A marker from another connection: on a cluster it may come before the others (another node
    // published it), so it is waited for and left out, not taken for the last.
    await redis.admin.publish(s.wakeChannel, 'end');
    await until(() => raw.includes('end') && raw.length >= 5, 5_000, 'the messages published');
    // 'b' became due for live messages: a full dispatcher takes it in a place kept for live ones.
    expect(raw.filter((m) => m !== 'end').map(readWake)).toEqual([
      { kind: 'due', live: false },
      { kind: 'live', locationId: 'a' },
      { kind: 'live', locationId: 'a' },
      { kind: 'due', live: true },
    ]);
    await sub.quit();
  });

  it('a claim for live locations only takes those live messages made due, and leaves the others due', async () => {
    const s = state();
    await s.markReady(['backfill'], false);
    await s.markReady(['live'], true);
    expect((await s.claim(5, 5_000, true)).leases.map((l) => l.locationId)).toEqual(['live']);
    expect((await s.claim(5, 5_000, true)).leases).toEqual([]);
    expect(await ids(s)).toEqual(['backfill']);
  });

  it('a turn that ends with more to do goes behind the locations already due', async () => {
    const s = state();
    await s.markReady(['a'], false);
    const lease = await claimOne(s);
    await s.markReady(['b', 'c'], false);
    await new Promise((r) => setTimeout(r, 5)); // a turn lasts a while
    await s.endLease(lease, { mode: 'turn' });
    expect(await ids(s)).toEqual(['b', 'c', 'a']);
  });

  it('a wait holds the location for everyone; producers do not shorten it; resume does', async () => {
    const s = state();
    await s.markReady(['a'], false);
    const lease = await claimOne(s);
    await s.endLease(lease, { mode: 'wait', ms: 60_000 });
    await s.markReady(['a'], true);
    const { leases, nextDueInMs } = await s.claim(10, 5_000);
    expect(leases).toEqual([]);
    expect(nextDueInMs).toBeGreaterThan(59_000);
    await s.resume('a');
    expect(await ids(s)).toEqual(['a']);
  });

  it('a retry later: due again at that time', async () => {
    const s = state();
    await s.markReady(['a'], false);
    const lease = await claimOne(s);
    await s.endLease(lease, { mode: 'idle', ms: 300 });
    expect(await ids(s)).toEqual([]);
    await new Promise((r) => setTimeout(r, 350));
    expect(await ids(s)).toEqual(['a']);
  });

  it('live ones first among the due', async () => {
    const s = state();
    await s.markReady(['backfill1', 'backfill2'], false);
    await s.markReady(['live1'], true);
    expect(await ids(s, 1)).toEqual(['live1']);
    expect(await ids(s, 1)).toEqual(['backfill1']);
  });

  it('a lease renewed keeps the location; one that ended is not brought back by a late renewal', async () => {
    const s = state();
    await s.markReady(['a'], false);
    const lease = await claimOne(s, 200);
    const before = lease.lease;
    expect(await s.renewLease(lease, 5_000)).toBe(true);
    expect(lease.lease).not.toBe(before);
    await new Promise((r) => setTimeout(r, 250));
    expect(await ids(s)).toEqual([]); // renewed past the first lease's end
    const stale = { ...lease };
    await s.endLease(lease, { mode: 'idle' });
    expect(await s.renewLease(stale, 5_000)).toBe(false);
    expect(await s.dueInMs('a')).toBeUndefined();
  });

  it('a holder that died: its lease lapses and another process takes the location', async () => {
    const s = state();
    await s.markReady(['a'], false);
    const dead = await claimOne(s, 100);
    await new Promise((r) => setTimeout(r, 150));
    expect(dead.check).toBeUndefined(); // a location taken fresh has nothing to check
    const [taken] = (await s.claim(1, 5_000)).leases;
    expect(taken?.locationId).toBe('a');
    // Its jobs are checked for stalls by the new holder: the dead one's come back that way.
    expect(taken?.check).toBe(true);
    // The dead holder's end of turn, should it come, leaves the new holder's place alone.
    expect(await s.endLease(dead, { mode: 'idle' })).toBe(false);
    expect(await s.dueInMs('a')).toBeGreaterThan(4_000);
  });

  it("a turn that leaves another process's jobs active is checked for stalls at the next one; new work is due at once", async () => {
    const s = state();
    await s.markReady(['a'], false);
    const lease = await claimOne(s);
    await s.endLease(lease, { mode: 'check', ms: 60_000 });
    expect(await s.dueInMs('a')).toBeGreaterThan(59_000);
    await s.markReady(['a'], true);
    const next = await claimOne(s);
    expect(next).toMatchObject({ locationId: 'a', check: true });
  });

  it('a turn that checked for stalls and ends on a wait has its next holder check again; a plain wait does not', async () => {
    const s = state();
    await s.markReady(['a', 'b'], false);
    const [a, b] = (await s.claim(2, 5_000)).leases;
    if (a === undefined || b === undefined) throw new Error('not claimed');
    await s.endLease(a, { mode: 'wait', ms: 150, check: true });
    await s.endLease(b, { mode: 'wait', ms: 150 });
    // New work does not end the wait (a budget's wait, not a turn with nothing to take).
    expect(await s.markReady(['a'], false)).toBe(0);
    expect(await s.dueInMs('a')).toBeGreaterThan(0);
    expect(await ids(s)).toEqual([]);
    await new Promise((r) => setTimeout(r, 180));
    const next = (await s.claim(2, 5_000)).leases;
    expect(next.find((l) => l.locationId === 'a')?.check).toBe(true);
    expect(next.find((l) => l.locationId === 'b')?.check).toBeUndefined();
  });
});
