/** Waiting in tests: for a condition, and for queues to have nothing left to do. */
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `check` every `pollMs` until it holds; fails after `timeoutMs`, naming what it waited for. */
export async function until(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
  what: string | (() => string) = 'condition',
  pollMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    // A function is asked at the timeout: what it tells (the last state seen, logs) is then current.
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await sleep(pollMs);
  }
}

/** A BullMQ queue, as far as counting its jobs goes. */
export interface CountsJobs {
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
}

/** Jobs not finished yet: waiting (also while the queue is paused), active, delayed, prioritized, waiting for children. */
export async function pendingJobs(queue: CountsJobs): Promise<number> {
  const c = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'waiting-children');
  return Object.values(c).reduce((a, b) => a + b, 0);
}

/** Waits until `pending(id)` is 0 for every id; the error says what was still pending. */
export async function settled(ids: string[], pending: (id: string) => Promise<number>, timeoutMs: number, pollMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await Promise.all(ids.map(pending));
    if (counts.every((n) => n === 0)) return;
    if (Date.now() > deadline) {
      throw new Error(`still pending after ${timeoutMs} ms: ${JSON.stringify(Object.fromEntries(ids.map((id, i) => [id, counts[i]])))}`);
    }
    await sleep(pollMs);
  }
}
