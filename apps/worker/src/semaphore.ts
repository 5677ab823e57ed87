/** A counting semaphore: at most `limit` holders at once; waiters are served in order. */
export class Semaphore {
  #free: number;
  #waiters: (() => void)[] = [];

  constructor(limit: number) {
    this.#free = limit;
  }

  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free -= 1;
    else await new Promise<void>((resolve) => this.#waiters.push(resolve));
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
