import { describe, expect, it } from 'vitest';
import { Semaphore } from './semaphore.ts';

describe('Semaphore', () => {
  it('admits up to its limit, then serves waiters in order', async () => {
    const s = new Semaphore(2);
    const a = await s.acquire();
    await s.acquire();
    const order: number[] = [];
    const third = s.acquire().then((r) => (order.push(3), r));
    const fourth = s.acquire().then((r) => (order.push(4), r));
    a();
    a(); // releasing twice frees once
    (await third)();
    await fourth;
    expect(order).toEqual([3, 4]);
  });

  it('a waiter whose signal aborts leaves the line', async () => {
    const s = new Semaphore(1);
    const held = await s.acquire();
    const controller = new AbortController();
    const waiting = s.acquire(controller.signal);
    controller.abort(new Error('stopping'));
    await expect(waiting).rejects.toThrow('stopping');
    held();
    const next = await s.acquire();
    expect(typeof next).toBe('function');
  });

  it('an urgent waiter (a live message) goes before the others already waiting', async () => {
    const s = new Semaphore(1);
    const held = await s.acquire();
    const order: string[] = [];
    const backfill = s.acquire().then((r) => (order.push('backfill'), r));
    const live = s.acquire(undefined, true).then((r) => (order.push('live'), r));
    held();
    (await live)();
    (await backfill)();
    expect(order).toEqual(['live', 'backfill']);
  });
});
