/**
 * The library API for sync processes:
 *
 *   const producer = await createProducer({ config });  // or settings from process.env, read only
 *   const results = await producer.send([record, ...]); // per record: { ok, key } or { ok: false, errors }
 *   await producer.status({ locationId, key });         // delivered, pending, dead-lettered or unknown
 *   await producer.close();
 *
 * Records are validated and normalised exactly as imports are, and enqueued as live traffic
 * (delivered before any backfill of the same location). A producer lives inside another
 * application: it never writes to `process.env` and never reads a `.env` file (the command line
 * does, for itself: `loadDotEnv`).
 */
import { coerceError, Enqueuer, loadConfig, MessageStatusReader, type Config, type MessageStatus } from '@ghl-ingest/queue';
import type { RedisClient } from '@ghl-ingest/queue';
import {
  isMessageKey,
  keyOfSourceId,
  LIMITS,
  LOCATION_ID,
  normalizeRecord,
  toJobData,
  type InboundRecord,
  type JobData,
  type NormalizeOptions,
  type RecordIssue,
} from '@ghl-ingest/schema';
import { connectProducer } from './connect.ts';

export type SendResult = { ok: true; key: string; locationId: string } | { ok: false; errors: RecordIssue[]; key?: string };

/**
 * Which message `status` reads. `key`: its message key, as `send` answered it (`k-msg-991`, or
 * `h-...` for a record that gave neither `key` nor `altId`), so a `SendResult` itself will do.
 * `sourceKey`: the record's own `key`, or its `altId` when it had no `key` (`msg-991`). Keys are
 * per location, hence `locationId`.
 */
export type MessageRef = { locationId: string; key: string; sourceKey?: never } | { locationId: string; sourceKey: string; key?: never };

export interface ProducerOptions {
  /**
   * Settings (`loadConfig(env)` makes them from any object of variables). Default:
   * `loadConfig(process.env)`, reading `process.env` only, never changing it: REDIS_URL or
   * REDIS_CLUSTER_NODES, QUEUE_PREFIX, GHL_MAX_ATTEMPTS, DEFAULT_PHONE_REGION and
   * GHL_CONVERSATION_PROVIDER_ID are the ones a producer uses (every setting is checked: a bad
   * value of any throws ConfigError). No `.env` file is read.
   */
  config?: Config;
  /** `drop` ignores unknown fields instead of refusing the record. Default `reject`. */
  unknownFields?: 'reject' | 'drop';
}

export interface Producer {
  /**
   * Validates, normalises and enqueues; one result per record, in order. Throws only when Redis
   * fails. Records are checked at run time whatever their type says (plain JavaScript callers):
   * a bad one gets `{ ok: false, errors: [{ path, message }] }`, the others are still sent.
   */
  send(records: readonly InboundRecord[]): Promise<SendResult[]>;
  /** Validates and normalises without enqueueing (what `send` would answer), for input of any shape. */
  check(records: readonly unknown[]): { results: SendResult[]; jobs: JobData[] };
  /**
   * Where one message is, as the workers left it (see MessageStatus). Throws TypeError for a
   * malformed `ref` (a `key` that is no message key: give the record's own id as `sourceKey`),
   * and when Redis fails.
   */
  status(ref: MessageRef): Promise<MessageStatus>;
  close(): Promise<void>;
}

export async function createProducer(options: ProducerOptions = {}): Promise<Producer> {
  const config = options.config ?? loadConfig(process.env);
  const redis = await connectProducer(config, 'producer', 'service');
  return producerOn(redis, config, options, true);
}

/** A producer on a connection the caller owns (the intake shares its own). */
export function producerOn(redis: RedisClient, config: Config, options: ProducerOptions = {}, ownsConnection = false): Producer {
  const enqueuer = new Enqueuer(redis, config.queuePrefix, config.maxAttempts);
  // Made on the first `status` call: the intake's producers never read.
  let reader: MessageStatusReader | undefined;
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
    async status(ref) {
      const { locationId, key } = messageKeyOf(ref);
      reader ??= new MessageStatusReader(redis, config.queuePrefix);
      return reader.read(locationId, key);
    },
    async close() {
      await Promise.all([enqueuer.close(), reader?.close()]);
      if (ownsConnection) {
        await redis.quit().catch((error: unknown) => {
          redis.disconnect();
          return coerceError(error);
        });
      }
    },
  };
}

/** The location and message key a `status` call names; TypeError, naming the field, when it names none (callers may be untyped). */
export function messageKeyOf(ref: MessageRef): { locationId: string; key: string } {
  const given: unknown = ref;
  const { locationId, key, sourceKey } = (typeof given === 'object' && given !== null ? given : {}) as Partial<
    Record<'locationId' | 'key' | 'sourceKey', unknown>
  >;
  if (typeof locationId !== 'string' || locationId.length > LIMITS.idChars || !LOCATION_ID.test(locationId)) {
    throw new TypeError(`status: locationId must be a location id (letters, digits, "_" and "-"), not ${shown(locationId)}`);
  }
  if ((key === undefined) === (sourceKey === undefined)) {
    throw new TypeError("status: give the message's key (as send() answered it) or its sourceKey (the record's own key or altId), one of the two");
  }
  if (sourceKey !== undefined) {
    if (typeof sourceKey !== 'string' || sourceKey.trim() === '' || sourceKey.trim().length > LIMITS.sourceIdChars) {
      throw new TypeError(`status: sourceKey must be the record's key or altId (text of 1 to ${LIMITS.sourceIdChars} characters)`);
    }
    return { locationId, key: keyOfSourceId(sourceKey) };
  }
  if (typeof key !== 'string' || !isMessageKey(key)) {
    throw new TypeError(
      `status: key ${shown(key)} is not a message key (k-... or h-..., as send() answered it): give the record's own key or altId as sourceKey`,
    );
  }
  return { locationId, key };
}

/** A value as a message shows it. */
function shown(value: unknown): string {
  // JSON.stringify gives undefined for a function or a symbol, whatever its type says.
  const text: string | undefined = value === undefined ? undefined : JSON.stringify(value);
  return text ?? (value === undefined ? 'none' : typeof value);
}
