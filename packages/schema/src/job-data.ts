/**
 * What the producer puts in a BullMQ job and the worker reads back. Versioned: a worker refuses
 * (as a permanent failure) a version it does not know rather than guess at its meaning.
 */
import { z } from 'zod';
import { contactRefSchema, storedFileSchema, type StoredFile } from './contact.ts';
import { LIMITS } from './limits.ts';
import type { MessageRecord } from './record.ts';
import { inboundMessageBodySchema, locationIdSchema } from './strict.ts';

export const JOB_DATA_VERSION = 1;

/** `live`: intake and library (sync processes), delivered first. `backfill`: bulk imports. */
export const JOB_SOURCES = ['live', 'backfill'] as const;
export type JobSource = (typeof JOB_SOURCES)[number];

export const jobDataSchema = z.strictObject({
  v: z.literal(JOB_DATA_VERSION),
  key: z
    .string()
    .min(3)
    .regex(/^[^:]+$/),
  locationId: locationIdSchema,
  sourceKey: z.string().optional(),
  source: z.enum(JOB_SOURCES),
  /** The import this message came in with (`ingest import`), for progress and status. */
  importId: z.string().optional(),
  /** The line or row of the import file, for people tracing a failure back to its source. */
  line: z.number().int().nonnegative().optional(),
  body: inboundMessageBodySchema,
  /** The contact by phone or email (the body then has no contactId): the worker finds or creates it. */
  contact: contactRefSchema.optional(),
  /** Local files, stored in Redis at import time: the worker uploads them right before the post. */
  files: z.array(storedFileSchema).min(1).max(LIMITS.attachments).optional(),
  /**
   * Set when a post's outcome was unknown (it may have reached HighLevel, no answer came back):
   * epoch ms of the first such post. The next attempt looks the message up before posting.
   */
  unknownSince: z.number().int().nonnegative().optional(),
});
export type JobData = z.infer<typeof jobDataSchema>;

/**
 * A record as a job. A record with local files needs them stored first (`extra.files`, one per
 * `record.files`, in order): a job never names a file a worker on another host cannot read.
 */
export function toJobData(record: MessageRecord, source: JobSource, extra: { importId?: string; line?: number; files?: StoredFile[] } = {}): JobData {
  if ((record.files?.length ?? 0) !== (extra.files?.length ?? 0)) {
    throw new Error(`message ${record.key}: its ${record.files?.length ?? 0} local file(s) must be stored before it is enqueued`);
  }
  const data: JobData = { v: JOB_DATA_VERSION, key: record.key, locationId: record.locationId, source, body: record.body };
  if (record.contact !== undefined) data.contact = record.contact;
  if (extra.files !== undefined && extra.files.length > 0) data.files = extra.files;
  if (record.sourceKey !== undefined) data.sourceKey = record.sourceKey;
  if (extra.importId !== undefined) data.importId = extra.importId;
  if (extra.line !== undefined) data.line = extra.line;
  return data;
}

/** The import-record form of a job (what `dlq export` writes), so a fixed export can be imported again. */
export function toImportRecord(data: JobData): Record<string, unknown> {
  const out: Record<string, unknown> = { locationId: data.locationId, ...(data.sourceKey === undefined ? {} : { key: data.sourceKey }), ...data.body };
  if (data.contact !== undefined) out.contact = data.contact;
  // Local files are exported as the files they were read from, so a fixed export reads them again.
  if (data.files !== undefined) out.attachments = [...(data.body.attachments ?? []), ...data.files.map((f) => f.from)];
  return out;
}
