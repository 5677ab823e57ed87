/**
 * The library API for sync processes:
 *
 *   const producer = await createProducer();            // settings from the environment
 *   const results = await producer.send([record, ...]); // per record: { ok, key } or { ok: false, errors }
 *   await producer.close();
 *
 * Records are validated and normalised exactly as imports are, and enqueued as live traffic
 * (delivered before any backfill of the same location).
 */
import { coerceError, Enqueuer, loadConfig, type Config } from '@ghl-ingest/queue';
import { normalizeRecord, toJobData, type JobData, type NormalizeOptions, type RecordIssue } from '@ghl-ingest/schema';
import type { RedisClient } from '@ghl-ingest/queue';
import { connectProducer } from './connect.ts';

export type SendResult = { ok: true; key: string; locationId: string } | { ok: false; errors: RecordIssue[]; key?: string };

export interface ProducerOptions {
  /** Settings; default: from the environment (contract.md), like the CLI. */
  config?: Config;
  /** `drop` ignores unknown fields instead of refusing the record. Default `reject`. */
  unknownFields?: 'reject' | 'drop';
}

export interface Producer {
  /** Validates, normalises and enqueues; one result per record, in order. Throws only when Redis fails. */
  send(records: readonly unknown[]): Promise<SendResult[]>;
  /** Validates and normalises without enqueueing (what `send` would answer). */
  check(records: readonly unknown[]): { results: SendResult[]; jobs: JobData[] };
  close(): Promise<void>;
}

export async function createProducer(options: ProducerOptions = {}): Promise<Producer> {
  const config = options.config ?? loadConfig();
  const redis = await connectProducer(config, 'producer', 'service');
  return producerOn(redis, config, options, true);
}

/** A producer on a connection the caller owns (the intake shares its own). */
export function producerOn(redis: RedisClient, config: Config, options: ProducerOptions = {}, ownsConnection = false): Producer {
  const enqueuer = new Enqueuer(redis, config.queuePrefix, config.maxAttempts);
  const normalize: NormalizeOptions = {
    defaultRegion: config.defaultPhoneRegion,
    unknownFields: options.unknownFields ?? 'reject',
    ...(config.conversationProviderId === undefined ? {} : { defaultConversationProviderId: config.conversationProviderId }),
  };
  const check = (records: readonly unknown[]) => {
    const jobs: JobData[] = [];
    const results = records.map((record): SendResult => {
      const r = normalizeRecord(record, normalize);
      if (!r.ok) return r.key === undefined ? { ok: false, errors: r.issues } : { ok: false, errors: r.issues, key: r.key };
      jobs.push(toJobData(r.record, 'live'));
      return { ok: true, key: r.record.key, locationId: r.record.locationId };
    });
    return { results, jobs };
  };
  return {
    check,
    async send(records) {
      const { results, jobs } = check(records);
      if (jobs.length > 0) await enqueuer.enqueue(jobs);
      return results;
    },
    async close() {
      await enqueuer.close();
      if (ownsConnection) {
        await redis.quit().catch((error: unknown) => {
          redis.disconnect();
          return coerceError(error);
        });
      }
    },
  };
}
