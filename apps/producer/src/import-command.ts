/** `ingest import <file|->`: the command around `runImport`, with its exit codes and `--wait`. */
import { setTimeout as sleep } from 'node:timers/promises';
import { budgetFor, loadConfig, readBudgetOverrides, readImportOutcomes, type Config } from '@ghl-ingest/queue';
import { connectProducer } from './connect.ts';
import type { RedisClient } from '@ghl-ingest/queue';
import { runImport, type Format, type ImportSummary } from './import.ts';
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
}

/** Returns the exit code: 0 all accepted (and delivered, with --wait), 2 some rejected or dead-lettered. */
export async function importCommand(file: string, flags: ImportFlags, out: NodeJS.WritableStream): Promise<number> {
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
