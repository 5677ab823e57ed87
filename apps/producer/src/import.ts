/**
 * `ingest import`: read a file as a stream, validate and normalise each row, enqueue the valid
 * ones in batches, report the others. Idempotent (a message's job id is its key, and messages the
 * ledger knows were delivered are skipped) and resumable (a checkpoint after every batch).
 */
import { createReadStream, statSync } from 'node:fs';
import { extname } from 'node:path';
import type { Readable } from 'node:stream';
import {
  checkRedis,
  DeliveryLedger,
  Enqueuer,
  FileStore,
  readImportCheckpoint,
  redisRunId,
  writeImportCheckpoint,
  type Config,
  type ImportCheckpoint,
} from '@ghl-ingest/queue';
import { normalizeRecord, toJobData, type JobData, type MessageType, type RecordIssue } from '@ghl-ingest/schema';
import type { RedisClient } from '@ghl-ingest/queue';
import { importIdFor } from './checkpoint.ts';
import type { FieldMap } from './field-map.ts';
import { LocalFiles } from './local-files.ts';
import { DroppedFields, type DroppedSummary } from './readers/dropped.ts';
import { readRows } from './readers/read-rows.ts';
import { appendRejects, prepareRejectsFile } from './rejects-file.ts';
import type { Row } from './readers/row.ts';

export type Format = 'ndjson' | 'csv' | 'json';

/** A batch is enqueued once it holds this many bytes of rows, whatever its count. */
const BATCH_BYTES = 16 * 1024 * 1024;

export interface ImportOptions {
  /** A path, or `-` for standard input. */
  file: string;
  format?: Format;
  /** For rows without `locationId`. */
  location?: string;
  /** Default `<file>.rejects.ndjson` (`stdin.rejects.ndjson` for standard input). */
  rejectsFile?: string;
  dryRun?: boolean;
  /** The file's own column or field names to record fields (`--map`). */
  map?: FieldMap;
  /** Ignore fields that are no record field instead of rejecting the row (`--drop-unknown`). Default false. */
  dropUnknown?: boolean;
  /** CSV: the field delimiter, one character (`--delimiter`). Default `,`. */
  delimiter?: string;
  /** For rows without `type` (`--type`). */
  defaultType?: MessageType;
  /** Rows per enqueue batch. Default 1,000. */
  batchSize?: number;
  /** Aborting finishes the current batch, then stops (Ctrl-C). */
  signal?: AbortSignal;
  onProgress?: (p: ImportProgress) => void;
  /** Standard input, when `file` is `-`. */
  stdin?: Readable;
}

export interface ImportProgress {
  rows: number;
  accepted: number;
  rejected: number;
  bytes: number;
  totalBytes: number | undefined;
}

export interface ImportSummary extends ImportProgress {
  importId: string;
  file: string;
  format: Format;
  /** Valid rows whose message the ledger knows was delivered: not enqueued again. */
  alreadyDelivered: number;
  rejectsFile: string;
  /** Set when this run picked up an earlier, interrupted one. */
  resumedAfterLine: number | undefined;
  /** An earlier run was interrupted, but Redis restarted since: this one started from the top. */
  startedOver: boolean;
  /** Redis restarted while this ran: batches written just before may be lost; run it again. */
  redisRestarted: boolean;
  interrupted: boolean;
  dryRun: boolean;
  locations: string[];
  /** With `dropUnknown`: the distinct columns or fields ignored (of this run's rows). */
  dropped: DroppedSummary | undefined;
}

export function formatOf(file: string, format: Format | undefined): Format {
  if (format !== undefined) return format;
  const ext = extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.json') return 'json';
  return 'ndjson';
}

/** How an import reads its rows, as text: empty for the defaults, so a plain import's id is the file's alone. */
export function readingFingerprint(options: ImportOptions, format: Format): string {
  const reading = {
    ...(options.format === undefined ? {} : { format }),
    ...(options.location === undefined ? {} : { location: options.location }),
    ...(options.map === undefined ? {} : { map: [...options.map] }),
    ...(options.dropUnknown === true ? { dropUnknown: true } : {}),
    ...(options.delimiter === undefined ? {} : { delimiter: options.delimiter }),
    ...(options.defaultType === undefined ? {} : { type: options.defaultType }),
  };
  return Object.keys(reading).length === 0 ? '' : JSON.stringify(reading);
}

export async function runImport(redis: RedisClient | undefined, config: Config, options: ImportOptions): Promise<ImportSummary> {
  const format = formatOf(options.file, options.format);
  const dryRun = options.dryRun === true;
  if (!dryRun && redis === undefined) throw new Error('an import needs Redis unless it is a dry run');
  if (!dryRun) await checkRedisOnce(redis as RedisClient);
  const importId = await importIdFor(options.file, readingFingerprint(options, format));
  const rejectsFile = options.rejectsFile ?? `${options.file === '-' ? 'stdin' : options.file}.rejects.ndjson`;
  const totalBytes = options.file === '-' ? undefined : statSync(options.file).size;
  const batchSize = options.batchSize ?? 1000;

  const previous = dryRun ? undefined : await readImportCheckpoint(redis as RedisClient, config.queuePrefix, importId);
  const runId = dryRun ? '' : await redisRunId(redis as RedisClient);
  // An interrupted import resumes from its checkpoint, unless Redis restarted since: then the last
  // batches before the checkpoint may be gone with it, and the import starts over (idempotent).
  const unfinished = previous !== undefined && previous.state !== 'done' ? previous : undefined;
  const resume = unfinished?.redisRunId === runId ? unfinished : undefined;
  // Start the rejects report anew, or cut it back to what the resumed run had committed.
  prepareRejectsFile(rejectsFile, resume?.rejectsBytes ?? 0);

  // A finished import of the same file runs again from the start: idempotent, so nothing doubles.
  const cp: ImportCheckpoint = resume ?? {
    file: options.file,
    format,
    line: 0,
    bytes: 0,
    rejectsBytes: 0,
    rows: 0,
    accepted: 0,
    rejected: 0,
    alreadyDelivered: 0,
    state: 'running',
    startedAt: Date.now(),
    updatedAt: Date.now(),
    locations: '',
    redisRunId: runId,
  };
  cp.state = 'running';
  const locations = new Set(cp.locations === '' ? [] : cp.locations.split(','));
  const enqueuer = dryRun ? undefined : new Enqueuer(redis as RedisClient, config.queuePrefix, config.maxAttempts);
  const ledger = dryRun ? undefined : new DeliveryLedger(redis as RedisClient, config.queuePrefix, config.ledgerTtlMs);
  const localFiles = new LocalFiles(options.file, dryRun ? undefined : new FileStore(redis as RedisClient, config.queuePrefix));

  const input = options.file === '-' ? (options.stdin ?? process.stdin) : createReadStream(options.file, { start: format === 'ndjson' ? cp.bytes : 0 });
  const dropped = options.dropUnknown === true ? new DroppedFields() : undefined;
  const rows: AsyncIterable<Row> = readRows(input, {
    format,
    startLine: cp.line + 1,
    startBytes: cp.bytes,
    ...(options.map === undefined ? {} : { map: options.map }),
    ...(options.delimiter === undefined ? {} : { delimiter: options.delimiter }),
    ...(options.defaultType === undefined ? {} : { defaultType: options.defaultType }),
    ...(dropped === undefined ? {} : { dropped }),
  });

  let batch: { data: JobData; line: number }[] = [];
  let batchBytes = 0;
  let rejects: string[] = [];
  let lastRow: Row | undefined;
  let interrupted = false;
  let bytesRead = cp.bytes;
  const report = () => options.onProgress?.({ rows: cp.rows, accepted: cp.accepted, rejected: cp.rejected, bytes: bytesRead, totalBytes });

  const flush = async () => {
    if (rejects.length > 0) {
      const text = rejects.join('');
      await appendRejects(rejectsFile, text);
      cp.rejectsBytes += Buffer.byteLength(text);
      rejects = [];
    }
    if (batch.length > 0 && enqueuer !== undefined && ledger !== undefined) {
      const fresh = await skipDelivered(
        ledger,
        batch.map((b) => b.data),
      );
      cp.alreadyDelivered += batch.length - fresh.length;
      await enqueuer.enqueue(fresh);
      for (const b of batch) locations.add(b.data.locationId);
    }
    batch = [];
    if (lastRow !== undefined) {
      cp.line = lastRow.line;
      if (format === 'ndjson') cp.bytes = lastRow.bytes;
    }
    cp.updatedAt = Date.now();
    cp.locations = [...locations].join(',');
    if (!dryRun) await writeImportCheckpoint(redis as RedisClient, config.queuePrefix, importId, cp);
    report();
  };

  const normalizeOptions = {
    defaultRegion: config.defaultPhoneRegion,
    unknownFields: options.dropUnknown === true ? ('drop' as const) : ('reject' as const),
    ...(config.conversationProviderId === undefined ? {} : { defaultConversationProviderId: config.conversationProviderId }),
    ...(options.location === undefined ? {} : { defaultLocationId: options.location }),
  };
  try {
    for await (const row of rows) {
      if (format !== 'ndjson' && row.line <= cp.line && resume !== undefined) continue;
      lastRow = row;
      bytesRead = Math.max(bytesRead, row.bytes);
      cp.rows += 1;
      if (row.error !== undefined) {
        cp.rejected += 1;
        rejects.push(rejectLine(row, undefined, [{ path: '', message: row.error }]));
      } else {
        const r = normalizeRecord(row.value, { ...normalizeOptions, localFiles: 'allow' });
        // Local attachments are read and stored now: a worker on another host reads them from Redis.
        const files = r.ok && r.record.files !== undefined ? await localFiles.read(r.record.files, r.record.body.attachments?.length ?? 0) : undefined;
        if (files?.ok === false) {
          cp.rejected += 1;
          rejects.push(rejectLine(row, r.ok ? (r.record.sourceKey ?? r.record.key) : undefined, files.issues));
        } else if (r.ok) {
          cp.accepted += 1;
          batch.push({
            data: toJobData(r.record, 'backfill', { importId, line: row.line, ...(files === undefined ? {} : { files: files.files }) }),
            line: row.line,
          });
          batchBytes += row.raw.length;
        } else {
          cp.rejected += 1;
          rejects.push(rejectLine(row, r.key, r.issues));
        }
      }
      // Rows of up to 1 MiB each: a batch is bounded by bytes too, so memory stays flat.
      if (batch.length >= batchSize || rejects.length >= batchSize || batchBytes >= BATCH_BYTES) {
        await flush();
        batchBytes = 0;
      }
      if (options.signal?.aborted === true) {
        interrupted = true;
        break;
      }
    }
  } catch (error) {
    // An unreadable file (a broken JSON array, a read error): keep what was read before the fault.
    cp.state = 'interrupted';
    await flush();
    await enqueuer?.close();
    throw error;
  }
  cp.state = interrupted ? 'interrupted' : 'done';
  await flush();
  await enqueuer?.close();
  const redisRestarted = !dryRun && (await redisRunId(redis as RedisClient)) !== runId;
  return {
    redisRestarted,
    startedOver: unfinished !== undefined && resume === undefined,
    importId,
    file: options.file,
    format,
    rows: cp.rows,
    accepted: cp.accepted,
    rejected: cp.rejected,
    alreadyDelivered: cp.alreadyDelivered,
    bytes: bytesRead,
    totalBytes,
    rejectsFile,
    resumedAfterLine: resume?.line,
    interrupted,
    dryRun,
    locations: [...locations],
    dropped: dropped?.summary(),
  };
}

/** Connections already checked: a rerun after a Redis restart does not warn twice. */
const checked = new WeakSet<RedisClient>();

/** Refuses (EvictingRedis, exit 1) a Redis that may evict; a Redis that keeps nothing on disk gets a warning. */
async function checkRedisOnce(redis: RedisClient): Promise<void> {
  if (checked.has(redis)) return;
  await checkRedis(redis, (_fields, message) => process.stderr.write(`warning: ${message}\n`));
  checked.add(redis);
}

async function skipDelivered(ledger: DeliveryLedger, jobs: JobData[]): Promise<JobData[]> {
  const byLocation = new Map<string, JobData[]>();
  for (const j of jobs) {
    const list = byLocation.get(j.locationId);
    if (list === undefined) byLocation.set(j.locationId, [j]);
    else list.push(j);
  }
  const fresh: JobData[] = [];
  for (const [locationId, list] of byLocation) {
    const delivered = await ledger.delivered(
      locationId,
      list.map((j) => j.key),
    );
    for (const j of list) if (!delivered.has(j.key)) fresh.push(j);
  }
  return fresh;
}

function rejectLine(row: Row, key: string | undefined, errors: RecordIssue[]): string {
  return `${JSON.stringify({ line: row.line, key: key ?? null, errors, raw: row.raw })}\n`;
}
