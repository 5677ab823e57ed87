import { describe, expect, it } from 'vitest';
import { CallbackThrottle } from './callback-throttle.ts';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('CallbackThrottle', () => {
  it('lets a burst through per client, then answers how long to wait, then refills', () => {
    const c = clock();
    const throttle = new CallbackThrottle({ perClient: { burst: 3, perMinute: 6 }, overall: { burst: 100, perMinute: 100 }, now: c.now });
    for (let i = 0; i < 3; i += 1) expect(throttle.take('1.2.3.4')).toEqual({ ok: true });
    expect(throttle.take('1.2.3.4')).toEqual({ ok: false, retryAfterSeconds: 10, scope: 'client' });
    expect(throttle.take('5.6.7.8')).toEqual({ ok: true }); // another client has its own bucket
    c.advance(10_000);
    expect(throttle.take('1.2.3.4')).toEqual({ ok: true });
    expect(throttle.take('1.2.3.4').ok).toBe(false);
  });

  it('bounds all clients together, whatever the number of addresses', () => {
    const c = clock();
    const throttle = new CallbackThrottle({ perClient: { burst: 5, perMinute: 5 }, overall: { burst: 4, perMinute: 2 }, now: c.now });
    const answers = Array.from({ length: 10 }, (_, i) => throttle.take(`10.0.0.${i}`));
    expect(answers.filter((a) => a.ok)).toHaveLength(4);
    expect(answers.at(-1)).toEqual({ ok: false, retryAfterSeconds: 30, scope: 'overall' });
  });

  it('remembers at most maxClients addresses, forgetting the least recently seen', () => {
    const c = clock();
    const throttle = new CallbackThrottle({ perClient: { burst: 1, perMinute: 1 }, overall: { burst: 1000, perMinute: 1000 }, maxClients: 2, now: c.now });
    expect(throttle.take('a').ok).toBe(true);
    expect(throttle.take('b').ok).toBe(true);
    expect(throttle.take('c').ok).toBe(true); // 'a' is forgotten
    expect(throttle.take('c').ok).toBe(false);
    expect(throttle.take('a').ok).toBe(true);
  });
});
