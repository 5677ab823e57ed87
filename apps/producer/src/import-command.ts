/** `ingest import <file|->`: the command around `runImport`, with its exit codes and `--wait`. */
import { setTimeout as sleep } from 'node:timers/promises';
import { budgetFor, ConfigError, loadConfig, readBudgetOverrides, readImportOutcomes, type Config } from '@ghl-ingest/queue';
import { MESSAGE_TYPES, type MessageType } from '@ghl-ingest/schema';
import { connectProducer } from './connect.ts';
import type { RedisClient } from '@ghl-ingest/queue';
import { FieldMapError, loadFieldMap, type FieldMap } from './field-map.ts';
import { formatOf, runImport, type Format, type ImportOptions, type ImportSummary } from './import.ts';
import { BadDelimiterError, parseDelimiter } from './readers/csv.ts';
import { DROPPED_NAMES_COUNTED } from './readers/dropped.ts';
import { progressView } from './progress.ts';

/** Times an import is read again because Redis restarted while it ran. */
const MAX_RERUNS = 3;

export interface ImportFlags {
  location?: string;
  format?: Format;
  rejects?: string;
  dryRun?: boolean;
  wait?: boolean;
  json?: boolean;
  /** `Column=field,...` or the path of a JSON file. */
  map?: string;
  dropUnknown?: boolean;
  delimiter?: string;
  type?: string;
}

/** The options that shape how rows are read, checked before anything is connected or read (exit 1). */
function readingOptions(file: string, flags: ImportFlags): Pick<ImportOptions, 'map' | 'dropUnknown' | 'delimiter' | 'defaultType'> {
  let map: FieldMap | undefined;
  if (flags.map !== undefined) {
    try {
      map = loadFieldMap(flags.map);
    } catch (error) {
      if (error instanceof FieldMapError) throw new ConfigError(`--map: ${error.message}`, { cause: error });
      throw error;
    }
  }
  let delimiter: string | undefined;
  if (flags.delimiter !== undefined) {
    const format = formatOf(file, flags.format);
    if (format !== 'csv') throw new ConfigError(`--delimiter is for CSV files; this import reads ${format} (use --format csv for a CSV file of another name)`);
    try {
      delimiter = parseDelimiter(flags.delimiter);
    } catch (error) {
      if (error instanceof BadDelimiterError) throw new ConfigError(`--delimiter: ${error.message}`, { cause: error });
      throw error;
    }
  }
  let defaultType: MessageType | undefined;
  if (flags.type !== undefined) {
    const wanted = flags.type.trim().toLowerCase();
    defaultType = MESSAGE_TYPES.find((t) => t.toLowerCase() === wanted);
    if (defaultType === undefined) throw new ConfigError(`--type "${flags.type}" is not a message type; expected one of ${MESSAGE_TYPES.join(', ')}`);
  }
  return {
    ...(map === undefined ? {} : { map }),
    ...(delimiter === undefined ? {} : { delimiter }),
    ...(defaultType === undefined ? {} : { defaultType }),
    dropUnknown: flags.dropUnknown === true,
  };
}

/** Returns the exit code: 0 all accepted (and delivered, with --wait), 2 some rejected or dead-lettered. */
export async function importCommand(file: string, flags: ImportFlags, out: NodeJS.WritableStream): Promise<number> {
  const reading = readingOptions(file, flags);
  const config = loadConfig();
  const redis = flags.dryRun === true ? undefined : await connectProducer(config, 'ingest-import');
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\ninterrupted: finishing the current batch (Ctrl-C again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const view = progressView();
  try {
    const run = () =>
      runImport(redis, config, {
        file,
        ...(flags.format === undefined ? {} : { format: flags.format }),
        ...(flags.location === undefined ? {} : { location: flags.location }),
        ...(flags.rejects === undefined ? {} : { rejectsFile: flags.rejects }),
        ...reading,
        dryRun: flags.dryRun === true,
        signal: controller.signal,
        onProgress: (p) => view.update(p),
      });
    let summary = await run();
    if (summary.startedOver) {
      process.stderr.write('\nRedis restarted since the interrupted run, so its checkpoint may be ahead of what Redis kept: started from the top\n');
    }
    // Redis restarted while we wrote: with appendfsync everysec it may have lost our last second of
    // batches, though it had acknowledged them. Reading the file again enqueues only what is missing.
    for (let again = 0; summary.redisRestarted && !summary.interrupted && again < MAX_RERUNS; again += 1) {
      process.stderr.write('\nRedis restarted during the import and may have lost its last writes: reading the file again (nothing doubles)\n');
      summary = await run();
    }
    view.stop();
    let dead = 0;
    let delivered: number | undefined;
    if (flags.wait === true && redis !== undefined && !summary.interrupted) {
      ({ dead, delivered } = await follow(redis, config, summary));
    }
    report(summary, out, flags.json === true, delivered, dead);
    if (summary.interrupted) {
      process.stderr.write('stopped after the last full batch: run the same command again to resume from there\n');
      return 130;
    }
    return summary.rejected > 0 || dead > 0 ? 2 : 0;
  } finally {
    view.stop();
    process.off('SIGINT', onSigint);
    await redis?.quit().catch(() => redis.disconnect());
  }
}

/** `--wait`: follows delivery of this import until every message is delivered or dead-lettered. */
async function follow(redis: RedisClient, config: Config, s: ImportSummary): Promise<{ delivered: number; dead: number }> {
  const target = s.accepted - s.alreadyDelivered;
  const overrides = readBudgetOverrides(config.rateLimitsFile);
  const perSecond = s.locations.reduce((sum, l) => {
    const b = budgetFor(l, config.rateLimit, overrides);
    return sum + (b.max * 1000) / b.windowMs;
  }, 0);
  let last = 0;
  for (;;) {
    const { delivered, dead } = await readImportOutcomes(redis, config.queuePrefix, s.importId);
    const pending = Math.max(0, target - delivered - dead);
    if (Date.now() - last > 2000 || pending === 0) {
      last = Date.now();
      const eta = perSecond > 0 ? Math.ceil(pending / perSecond) : undefined;
      process.stderr.write(
        `delivery: ${delivered} delivered, ${dead} dead-lettered, ${pending} pending` +
          (eta === undefined || pending === 0 ? '' : `, about ${formatDuration(eta)} left at the locations' budgets`) +
          '\n',
      );
    }
    if (pending === 0) return { delivered, dead };
    await sleep(500);
  }
}

function report(s: ImportSummary, out: NodeJS.WritableStream, json: boolean, delivered: number | undefined, dead: number): void {
  const summary = {
    importId: s.importId,
    file: s.file,
    format: s.format,
    dryRun: s.dryRun,
    rows: s.rows,
    accepted: s.accepted,
    rejected: s.rejected,
    alreadyDelivered: s.alreadyDelivered,
    rejectsFile: s.rejected > 0 ? s.rejectsFile : null,
    resumedAfterLine: s.resumedAfterLine ?? null,
    interrupted: s.interrupted,
    ...(s.dropped === undefined ? {} : { droppedFields: s.dropped }),
    ...(delivered === undefined ? {} : { delivered, deadLettered: dead }),
  };
  if (json) {
    out.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const lines = [
    `${s.dryRun ? 'checked (dry run, nothing enqueued)' : 'imported'} ${s.file}: ${s.rows} rows, ${s.accepted} accepted, ${s.rejected} rejected` +
      (s.alreadyDelivered > 0 ? `, ${s.alreadyDelivered} already delivered earlier (skipped)` : ''),
  ];
  if (s.resumedAfterLine !== undefined) lines.push(`resumed an interrupted import after line ${s.resumedAfterLine}`);
  if (s.dropped !== undefined && s.dropped.count > 0) {
    const more = s.dropped.count - s.dropped.names.length;
    lines.push(
      `ignored (--drop-unknown) ${s.dropped.count >= DROPPED_NAMES_COUNTED ? `${s.dropped.count} or more` : s.dropped.count} ` +
        `${s.format === 'csv' ? 'column' : 'field'}${s.dropped.count === 1 ? '' : 's'} that no record field takes: ` +
        `${s.dropped.names.map((n) => JSON.stringify(n)).join(', ')}${more > 0 ? ` and ${more} more` : ''}`,
    );
  }
  if (s.rejected > 0) lines.push(`rejected rows are in ${s.rejectsFile}`);
  if (delivered !== undefined) lines.push(`delivered ${delivered}, dead-lettered ${dead}${dead > 0 ? ' (see: pnpm ingest dlq list)' : ''}`);
  else if (!s.dryRun) lines.push(`import ${s.importId} continues in the workers; follow it with: pnpm ingest status`);
  process.stderr.write(`${lines.join('\n')}\n`);
}

function formatDuration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}
