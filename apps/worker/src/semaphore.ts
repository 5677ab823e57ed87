/** A counting semaphore: at most `limit` holders at once; waiters are served in order, urgent ones first. */
export class Semaphore {
  #free: number;
  #waiters: (() => void)[] = [];

  constructor(limit: number) {
    this.#free = limit;
  }

  /**
   * Resolves with the release function; rejects if `signal` aborts while waiting. An `urgent`
   * waiter (a live message) goes before those already waiting (backfill).
   */
  async acquire(signal?: AbortSignal, urgent = false): Promise<() => void> {
    if (this.#free > 0) this.#free -= 1;
    else {
      signal?.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const waiter = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(signal?.reason as Error);
        };
        if (urgent) this.#waiters.unshift(waiter);
        else this.#waiters.push(waiter);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next === undefined) this.#free += 1;
      else next();
    };
  }
}
