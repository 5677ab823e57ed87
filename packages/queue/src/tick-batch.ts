/**
 * Coalesces calls made in the same turn of the event loop into one call per key (a location):
 * the ledger's reads and writes (ledger-gate.ts) take a batch of one location's messages, so jobs
 * finishing together cost Redis one round trip instead of one each. Each caller still gets its
 * own result, or the batch's error.
 */
export class TickBatch<In, Out> {
  readonly #run: (key: string, items: In[]) => Promise<Out[]>;
  readonly #max: number;
  #pending = new Map<string, { item: In; resolve: (out: Out) => void; reject: (error: unknown) => void }[]>();
  #scheduled = false;

  /** `max`: items per call at most. */
  constructor(run: (key: string, items: In[]) => Promise<Out[]>, max = 64) {
    this.#run = run;
    this.#max = max;
  }

  add(key: string, item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      let list = this.#pending.get(key);
      if (list === undefined) {
        list = [];
        this.#pending.set(key, list);
      }
      list.push({ item, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const pending = this.#pending;
    this.#pending = new Map();
    for (const [key, list] of pending) {
      for (let i = 0; i < list.length; i += this.#max) {
        const chunk = list.slice(i, i + this.#max);
        this.#run(
          key,
          chunk.map((c) => c.item),
        ).then(
          (results) => chunk.forEach((c, j) => c.resolve(results[j] as Out)),
          (error: unknown) => chunk.forEach((c) => c.reject(error)),
        );
      }
    }
  }
}
