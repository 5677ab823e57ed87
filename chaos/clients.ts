/**
 * The product's users, as the chaos scenarios play them: a sync process sending live messages
 * through the intake, and a person running an import to its end (again after a failure).
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import type { Dataset } from './accounting.ts';
import type { Cluster, Proc } from './cluster.ts';

/**
 * A sync process sending live messages one by one through `ingest serve`, as a well-behaved
 * client does: a message counts as accepted when the intake answered 202; on a 503 or a network
 * error it is sent again after a pause.
 */
export class LiveSender {
  /** altId → location and when the 202 arrived. */
  readonly accepted = new Map<string, { locationId: string; at: number }>();
  refused = 0;
  #stopping = false;
  readonly #done: Promise<void>;

  readonly #locations: string[];

  constructor(url: string, token: string, locations: string[]) {
    this.#locations = locations;
    this.#done = this.#run(url, token);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#done;
  }

  dataset(): Dataset {
    return { file: '', rows: this.accepted.size, valid: new Map([...this.accepted].map(([id, m]) => [id, m.locationId])), invalid: 0 };
  }

  #running(): boolean {
    return !this.#stopping;
  }

  async #run(url: string, token: string): Promise<void> {
    for (let n = 1; this.#running(); n += 1) {
      const locationId = this.#locations[n % this.#locations.length] as string;
      const altId = `live-${n}`;
      const body = JSON.stringify({ locationId, type: 'SMS', contactId: `live-contact-${n % 50}`, message: `live ${n}`, altId });
      while (this.#running()) {
        try {
          const res = await fetch(`${url}/v1/messages`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body,
            signal: AbortSignal.timeout(5_000),
          });
          await res.arrayBuffer();
          if (res.status === 202) {
            this.accepted.set(altId, { locationId, at: Date.now() });
            break;
          }
          this.refused += 1;
        } catch {
          this.refused += 1;
        }
        await sleep(100);
      }
      await sleep(5);
    }
  }
}

/**
 * The import to its end, run again after a failure (as the README tells users to); says whether
 * the importer noticed the restart and read the file again (or started over) by itself.
 */
export async function importToEnd(c: Cluster, first: Proc, file: string): Promise<{ runs: number; readAgain: boolean }> {
  let code = await first.exited;
  let output = readFileSync(first.log, 'utf8');
  let runs = 1;
  while (code !== 0 && code !== 2 && runs < 4) {
    const r = await c.ingestToEnd(['import', file]);
    code = r.code;
    output += r.output;
    runs += 1;
  }
  expect(code).toBe(2);
  return { runs, readAgain: /reading the file again|started from the top/.test(output) };
}
