/**
 * `ingest dlq <list|show|export|redrive|purge>`: the dead-letter queue for people.
 * Every command counts what it matches before acting; redrive and purge remove only the records
 * they acted on. Redrive puts a message back on its location's queue with its attempts reset and
 * the same key, so it cannot post twice (the delivery ledger still guards it).
 */
import { createInterface } from 'node:readline/promises';
import { DeadLetters, Enqueuer, FAILURE_CLASSES, type Config, type DeadLetterRecord } from '@ghl-ingest/queue';
import { toImportRecord } from '@ghl-ingest/schema';
import type { Job } from 'bullmq';
import type { RedisClient } from '@ghl-ingest/queue';
import { table } from './status.ts';

export interface DlqFilter {
  location?: string;
  class?: string;
  status?: number;
  /** ISO date-times: the last attempt at or after / before. */
  since?: string;
  until?: string;
  ids?: string[];
}

export function parseFilter(flags: { location?: string; class?: string; status?: string; since?: string; until?: string }, ids: string[] = []): DlqFilter {
  const f: DlqFilter = {};
  if (flags.location !== undefined) f.location = flags.location;
  if (flags.class !== undefined) {
    if (!(FAILURE_CLASSES as readonly string[]).includes(flags.class)) throw new Error(`--class must be one of ${FAILURE_CLASSES.join(', ')}`);
    f.class = flags.class;
  }
  if (flags.status !== undefined) {
    if (!/^\d{3}$/.test(flags.status)) throw new Error(`--status must be an HTTP status such as 422, not "${flags.status}"`);
    f.status = Number(flags.status);
  }
  for (const key of ['since', 'until'] as const) {
    const v = flags[key];
    if (v !== undefined) {
      if (Number.isNaN(Date.parse(v))) throw new Error(`--${key} must be an ISO date-time such as 2026-11-24T10:00:00Z`);
      f[key] = v;
    }
  }
  if (ids.length > 0) f.ids = ids;
  return f;
}

function matches(r: DeadLetterRecord, f: DlqFilter): boolean {
  if (f.ids !== undefined && !f.ids.includes(r.id)) return false;
  if (f.location !== undefined && r.locationId !== f.location) return false;
  if (f.class !== undefined && r.class !== f.class) return false;
  if (f.status !== undefined && r.httpStatus !== f.status) return false;
  if (f.since !== undefined && r.lastAttemptAt < Date.parse(f.since)) return false;
  if (f.until !== undefined && r.lastAttemptAt >= Date.parse(f.until)) return false;
  return true;
}

export class DeadLetterTool {
  #dlq: DeadLetters;
  #redis: RedisClient;
  #config: Config;

  constructor(redis: RedisClient, config: Config) {
    this.#redis = redis;
    this.#config = config;
    this.#dlq = new DeadLetters(redis, config.queuePrefix);
  }

  /** Records matching the filter, oldest first, read in pages (a DLQ can hold millions). */
  async *records(f: DlqFilter): AsyncGenerator<{ job: Job<DeadLetterRecord>; record: DeadLetterRecord }> {
    if (f.ids !== undefined) {
      for (const id of f.ids) {
        const job = await this.#dlq.queue.getJob(id);
        if (job !== undefined && matches(job.data, f)) yield { job, record: job.data };
      }
      return;
    }
    const total = await this.#dlq.queue.getWaitingCount();
    for (let start = total - 1; start >= 0; start -= 1000) {
      // The wait list holds the newest first: read it from the end for oldest first.
      const page = await this.#dlq.queue.getJobs(['wait'], Math.max(0, start - 999), start, true);
      for (const job of page) if (matches(job.data, f)) yield { job, record: job.data };
    }
  }

  async list(f: DlqFilter): Promise<DeadLetterRecord[]> {
    const out: DeadLetterRecord[] = [];
    for await (const { record } of this.records(f)) out.push(record);
    return out;
  }

  async show(id: string): Promise<DeadLetterRecord | undefined> {
    return this.#dlq.get(id);
  }

  /** Writes matching records in the import-record format; returns how many (and how many had no job to export). */
  async export(f: DlqFilter, out: NodeJS.WritableStream): Promise<{ exported: number; unexportable: number }> {
    let exported = 0;
    let unexportable = 0;
    for await (const { record } of this.records(f)) {
      if (record.job === undefined) {
        unexportable += 1;
        continue;
      }
      out.write(`${JSON.stringify(toImportRecord(record.job))}\n`);
      exported += 1;
    }
    return { exported, unexportable };
  }

  /**
   * Puts matching messages back on their queues (attempts reset, same key). Enqueueing replaces
   * the failed job and drops the record (enqueue.ts); a message whose job is queued or running
   * already is left, and one the ledger knows was delivered only loses its out-of-date record.
   */
  async redrive(f: DlqFilter, dryRun: boolean): Promise<{ matched: number; redriven: number; skipped: number; delivered: number }> {
    let matched = 0;
    let redriven = 0;
    let skipped = 0;
    let delivered = 0;
    const enqueuer = new Enqueuer(this.#redis, this.#config.queuePrefix, this.#config.maxAttempts);
    try {
      for await (const { record } of this.records(f)) {
        matched += 1;
        if (record.job === undefined) {
          skipped += 1; // its data no longer parses: fix it through export and import instead
          continue;
        }
        if (dryRun) continue;
        const [outcome] = await enqueuer.enqueue([record.job]);
        if (outcome === 'pending') {
          skipped += 1; // it is queued or running already
          continue;
        }
        if (outcome === 'delivered') delivered += 1;
        else redriven += 1;
      }
    } finally {
      await enqueuer.close();
    }
    return { matched, redriven, skipped, delivered };
  }

  async purge(f: DlqFilter): Promise<number> {
    let purged = 0;
    for await (const { job } of this.records(f)) {
      await job.remove();
      purged += 1;
    }
    return purged;
  }

  async close(): Promise<void> {
    await this.#dlq.close();
  }
}

/** What becomes of a record, as `dlq list` says under the table. */
export const LIFECYCLE =
  'A record is dropped once its message is queued again (dlq redrive, ingest import, the intake) or found delivered; a message that fails again gets a new record.';

export function renderList(records: DeadLetterRecord[]): string {
  if (records.length === 0) return 'no dead-lettered messages match\n';
  const rows = records.map((r) => [
    r.id,
    r.class,
    r.httpStatus === undefined ? '-' : String(r.httpStatus),
    String(r.attempts),
    new Date(r.lastAttemptAt).toISOString(),
    r.reason.length > 80 ? `${r.reason.slice(0, 79)}…` : r.reason,
  ]);
  return (
    `${table(['id', 'class', 'status', 'attempts', 'last attempt', 'reason'], rows)}\n${records.length} record${records.length === 1 ? '' : 's'}\n` +
    `${LIFECYCLE}\n`
  );
}

/** Asks on a terminal; elsewhere (scripts, CI) the answer must be given with --yes. */
export async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}
