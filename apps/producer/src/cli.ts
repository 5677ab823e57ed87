/**
 * `pnpm ingest <command>`: the producer's command line. Exit codes (contract.md): 0 success,
 * 1 the command failed, 2 it finished but some rows were rejected or dead-lettered.
 */
import { Command, CommanderError } from 'commander';
import { coerceError, ConfigError, createLogger, flushLogs, loadConfig } from '@ghl-ingest/queue';
import { connectProducer } from './connect.ts';
import { locationIdSchema } from '@ghl-ingest/schema';
import type { ImportFlags } from './import-command.ts';
import { resumeLocation } from './resume.ts';

class NotBuiltYet extends Error {}

export async function run(argv: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const program = new Command('ingest')
    .description('ghl-ingest: move conversation history into HighLevel')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => out.write(s) });

  program
    .command('import')
    .description('bulk import: validate, normalise, enqueue (resumable: run it again after an interruption)')
    .argument('<file>', 'an NDJSON, CSV or JSON file, or - for standard input')
    .option('--location <id>', 'locationId for rows without one')
    .option('--format <format>', 'ndjson, csv or json (default: from the file name, else ndjson)')
    .option('--rejects <file>', 'where rejected rows go (default: <file>.rejects.ndjson)')
    .option('--dry-run', 'validate and report only; enqueue nothing')
    .option('--wait', 'follow delivery of this import until every message is delivered or dead-lettered')
    .option('--json', 'a machine-readable summary on stdout (progress stays on stderr)')
    .action(async (file: string, flags: ImportFlags & { format?: string }) => {
      if (flags.format !== undefined && !['ndjson', 'csv', 'json'].includes(flags.format)) {
        throw new ConfigError(`--format must be ndjson, csv or json, not "${flags.format}"`);
      }
      if (flags.location !== undefined && !locationIdSchema.safeParse(flags.location).success) {
        throw new ConfigError(`--location "${flags.location}" is not a location id (letters, digits, _ and - only)`);
      }
      // Each command loads its own modules: an import need not carry the intake's web server.
      const { importCommand } = await import('./import-command.ts');
      exitCode = await importCommand(file, flags, out);
    });

  program
    .command('serve')
    .description('HTTP intake for live sync processes: POST /v1/messages (INTAKE_PORT, INTAKE_TOKEN)')
    .option('--port <n>', 'port (default INTAKE_PORT, 8080)')
    .action(async (flags: { port?: string }) => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, 'intake');
      const redis = await connectProducer(config, 'intake');
      const port = flags.port === undefined ? config.intake.port : Number(flags.port);
      if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ConfigError(`--port must be a port number, not "${flags.port ?? ''}"`);
      const { startIntake } = await import('./intake.ts');
      const intake = await startIntake(redis, config, logger, port);
      process.stderr.write(`intake listening on ${intake.url} (POST /v1/messages)\n`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await intake.close();
      await redis.quit().catch(() => redis.disconnect());
      flushLogs(logger);
    });

  for (const [name, issue, summary] of [
    ['status', 6, 'per-location progress'],
    ['dlq', 6, 'the dead-letter queue'],
  ] as const) {
    program
      .command(name)
      .description(`${summary} (not built yet)`)
      .allowUnknownOption()
      .allowExcessArguments()
      .action(() => {
        throw new NotBuiltYet(`\`ingest ${name}\` is not built yet (open issue #${issue})`);
      });
  }

  program
    .command('resume')
    .description('start a location again that was paused (its token was rejected), once its token is fixed')
    .argument('<locationId>', 'the location to resume')
    .action(async (locationId: string) => {
      const id = locationIdSchema.safeParse(locationId);
      if (!id.success) throw new ConfigError(`"${locationId}" is not a location id: ${id.error.issues[0]?.message ?? ''}`);
      const config = loadConfig();
      const redis = await connectProducer(config, 'ingest-resume');
      try {
        const hold = await resumeLocation(redis, config.queuePrefix, id.data);
        out.write(
          hold === undefined
            ? `location ${id.data} was not paused; its queue is running\n`
            : `location ${id.data} resumed (it was ${hold.state}: ${hold.reason})\n`,
        );
      } finally {
        await redis.quit().catch(() => redis.disconnect());
      }
    });

  let exitCode = 0;
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 1;
    const e = coerceError(error);
    const code = (e as { code?: unknown }).code;
    const detail = code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' ? '' : e.name === 'Error' || e.name === 'ConfigError' ? '' : ` (${e.name})`;
    process.stderr.write(`ingest: ${e.message}${detail}\n`);
    return 1;
  }
}
