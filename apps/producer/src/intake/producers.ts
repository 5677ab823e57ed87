/**
 * The intake's producers, in generations. A producer keeps a BullMQ Queue object (~9 KB) for
 * every location it has sent to, for as long as it lives: one producer for the intake's life
 * grows with every location ever seen. So a producer serves at most `maxLocations` distinct
 * locations; the request that would pass that retires it and a fresh producer takes over. A
 * retired producer is closed once the sends it has in flight are done: a queue object is never
 * closed under an add. Busy locations keep their queue objects for a generation, and memory stays
 * at about one generation's queues plus those of requests still in flight.
 */
import type { InboundRecord } from '@ghl-ingest/schema';
import type { Producer, SendResult } from '../producer.ts';

/** Distinct locations one producer sends to before it is retired. */
export const LOCATIONS_PER_PRODUCER = 1000;

interface Generation {
  producer: Producer;
  locations: Set<string>;
  sending: number;
  retired: boolean;
}

export class Producers {
  #make: () => Producer;
  #maxLocations: number;
  #current: Generation;
  #closing = new Set<Promise<void>>();

  constructor(make: () => Producer, maxLocations = LOCATIONS_PER_PRODUCER) {
    this.#make = make;
    this.#maxLocations = maxLocations;
    this.#current = this.#fresh();
  }

  /** Validates and normalises without enqueueing (no queue objects involved). */
  check(records: readonly unknown[]): ReturnType<Producer['check']> {
    return this.#current.producer.check(records);
  }

  /** Sends the records, whose locations are `locations`, with a producer that may hold their queues. */
  async send(records: readonly unknown[], locations: ReadonlySet<string>): Promise<SendResult[]> {
    let generation = this.#current;
    let fresh = 0;
    for (const id of locations) if (!generation.locations.has(id)) fresh += 1;
    if (generation.locations.size > 0 && generation.locations.size + fresh > this.#maxLocations) {
      this.#retire(generation);
      generation = this.#current = this.#fresh();
    }
    for (const id of locations) generation.locations.add(id);
    generation.sending += 1;
    try {
      // Records from a request, of no known shape: send checks each one at run time, as for any untyped caller.
      return await generation.producer.send(records as readonly InboundRecord[]);
    } finally {
      generation.sending -= 1;
      if (generation.retired && generation.sending === 0) this.#close(generation);
    }
  }

  /** Closes every producer; call once no request is in progress. */
  async close(): Promise<void> {
    this.#retire(this.#current);
    await Promise.all(this.#closing);
  }

  #fresh(): Generation {
    return { producer: this.#make(), locations: new Set(), sending: 0, retired: false };
  }

  #retire(generation: Generation): void {
    generation.retired = true;
    if (generation.sending === 0) this.#close(generation);
  }

  #close(generation: Generation): void {
    // Closing queue objects on a shared connection sends nothing that matters to Redis: a failure
    // here leaves no state behind, and the requests it served have had their answers.
    const closing: Promise<void> = generation.producer
      .close()
      .catch(() => undefined)
      .finally(() => this.#closing.delete(closing));
    this.#closing.add(closing);
  }
}
