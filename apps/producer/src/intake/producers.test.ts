import { describe, expect, it } from 'vitest';
import type { Producer, SendResult } from '../producer.ts';
import { Producers } from './producers.ts';

/** A producer whose sends finish when the test says, and that records when it was closed. */
function recording() {
  const made: { closed: number; finish: (() => void)[] }[] = [];
  const make = (): Producer => {
    const state = { closed: 0, finish: [] as (() => void)[] };
    made.push(state);
    return {
      check: () => ({ results: [], jobs: [] }),
      status: () => Promise.resolve({ state: 'unknown' }),
      send: () =>
        new Promise<SendResult[]>((resolve) => {
          state.finish.push(() => resolve([]));
        }),
      close: () => {
        state.closed += 1;
        return Promise.resolve();
      },
    };
  };
  return { made, make };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('Producers', () => {
  it('retires a producer past its location cap, closing it once its sends in flight are done', async () => {
    const { made, make } = recording();
    const producers = new Producers(make, 3);
    const first = producers.send([], new Set(['a', 'b']));
    const again = producers.send([], new Set(['a', 'c'])); // three locations: still the first producer
    expect(made).toHaveLength(1);
    const second = producers.send([], new Set(['d'])); // a fourth: a fresh producer
    expect(made).toHaveLength(2);
    await flush();
    expect(made[0]?.closed).toBe(0); // two sends still use its queues
    made[0]?.finish[0]?.();
    await first;
    await flush();
    expect(made[0]?.closed).toBe(0);
    made[0]?.finish[1]?.();
    await again;
    await flush();
    expect(made[0]?.closed).toBe(1);
    made[1]?.finish[0]?.();
    await second;
    await producers.close();
    expect(made.map((m) => m.closed)).toEqual([1, 1]);
  });

  it('a request over the cap on its own still goes through one producer', async () => {
    const { made, make } = recording();
    const producers = new Producers(make, 2);
    const sent = producers.send([], new Set(['a', 'b', 'c', 'd']));
    expect(made).toHaveLength(1);
    made[0]?.finish[0]?.();
    await sent;
    await producers.close();
    expect(made[0]?.closed).toBe(1);
  });
});
