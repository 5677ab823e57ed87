/**
 * `pnpm ingest <command>`: the producer's command line. Exit codes (contract.md): 0 success,
 * 1 the command failed, 2 it finished but some rows were rejected or dead-lettered.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { coerceError, ConfigError, createLogger, loadConfig, onShutdown, startTracing } from '@ghl-ingest/queue';
import { connectProducer, withRedis } from './connect.ts';
import { locationIdSchema } from '@ghl-ingest/schema';
import type * as DlqModuleNamespace from './dlq.ts';
import type { DeadLetterTool } from './dlq.ts';
import type { ImportFlags } from './import-command.ts';

type DlqModule = typeof DlqModuleNamespace;
import { resumeLocation } from './resume.ts';

interface FilterFlags {
  location?: string;
  class?: string;
  status?: string;
  since?: string;
  until?: string;
}

export interface CliOptions {
  /** The program's name in help and errors: `ingest` (`pnpm ingest`) or `ghl-ingest` (the installed bin). */
  name?: string;
  /** Adds commands from outside the producer (the installed CLI adds `worker`). */
  extend?: (program: Command) => void;
  /** What `--version` prints. Default: this package's own (`@ghl-ingest/producer`), from its package.json. */
  version?: string;
}

/**
 * The version in the package.json of the package `moduleUrl` belongs to: one folder up, from
 * `src/` in the repository as from `dist/` once installed (npm always ships package.json).
 */
export function packageVersion(moduleUrl: string): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', moduleUrl), 'utf8')) as { version?: unknown };
  if (typeof manifest.version !== 'string' || manifest.version === '') throw new Error(`the package.json beside ${moduleUrl} names no version`);
  return manifest.version;
}

export async function run(argv: string[], out: NodeJS.WritableStream = process.stdout, options: CliOptions = {}): Promise<number> {
  const name = options.name ?? 'ingest';
  const program = new Command(name)
    .description('ghl-ingest: move conversation history into HighLevel')
    .version(options.version ?? packageVersion(import.meta.url), '-V, --version', 'print the version')
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
    .option(
      '--map <map>',
      "the file's own column (CSV) or top-level field (NDJSON, JSON) names to record fields: Column=field pairs separated by commas " +
        '(e.g. From=contact.phone,Body=message,DateSent=date), or the path of a JSON file {"Column": "field"}; unmapped names are read as they are',
    )
    .option('--drop-unknown', 'ignore columns and fields that are no record field (the summary names them) instead of rejecting the row')
    .option('--delimiter <char>', 'CSV: the field delimiter, one character; \\t or tab for tab-separated (default: ,)')
    .option('--type <type>', 'message type for rows without one (e.g. SMS, for a provider log that has no type column)')
    .addHelpText(
      'after',
      "\nExample, an SMS provider's message log (columns Sid,From,To,Body,Status,DateSent,Direction):\n" +
        `  ${name === 'ingest' ? 'pnpm ingest' : name} import messages.csv --location LOC --type SMS --map 'Sid=key,From=contact.phone,Body=message,DateSent=date,Direction=direction' --drop-unknown\n` +
        "Names in --map match the file's exactly, after trimming (From is not from); a CSV whose header lacks a column the map names fails the import.\n" +
        'A mapped column may not sit beside a column already named its field (both are named in the error).\n' +
        'Exit codes: 0 all accepted (with --wait, all delivered); 1 the command failed; 2 some rows were rejected or dead-lettered.\n',
    )
    .action(async (file: string, flags: ImportFlags & { format?: string }) => {
      if (flags.format !== undefined && !['ndjson', 'csv', 'json'].includes(flags.format)) {
        throw new ConfigError(`--format must be ndjson, csv or json, not "${flags.format}"`);
      }
      if (flags.location !== undefined && !locationIdSchema.safeParse(flags.location).success) {
        throw new ConfigError(`--location "${flags.location}" is not a location id (letters, digits, _ and - only)`);
      }
      // Each command loads its own modules: an import need not carry the intake's web server.
      const { importCommand } = await import('./import-command.ts');
      const tracing = flags.dryRun === true ? undefined : await startTracing('ghl-ingest-import');
      try {
        exitCode = await importCommand(file, flags, out);
      } finally {
        await tracing?.shutdown().catch(() => undefined);
      }
    });

  program
    .command('serve')
    .description('HTTP intake for live sync processes: POST /v1/messages (INTAKE_PORT, INTAKE_TOKEN)')
    .option('--port <n>', 'port (default INTAKE_PORT, 8080)')
    .action(async (flags: { port?: string }) => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, 'intake');
      const port = flags.port === undefined ? config.intake.port : Number(flags.port);
      if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ConfigError(`--port must be a port number, not "${flags.port ?? ''}"`);
      const starting = (async () => {
        const tracing = await startTracing('ghl-ingest-intake');
        const redis = await connectProducer(config, 'intake', 'service');
        const { startIntake } = await import('./intake.ts');
        // Refused at start (a bad setting, an evicting Redis): the connection must not keep the process alive.
        const intake = await startIntake(redis, config, logger, port).catch(async (error: unknown) => {
          await redis.quit().catch(() => redis.disconnect());
          throw error;
        });
        return { tracing, redis, intake };
      })();
      // As the worker stops (handled from the start, so a signal during start-up stops it once
      // started): requests in progress are answered (up to SHUTDOWN_TIMEOUT_MS), new connections
      // are refused; a second signal exits at once.
      onShutdown(async () => {
        const { tracing, redis, intake } = await starting;
        const closed = intake.close().then(() => true);
        const inTime = await Promise.race([closed, sleep(config.shutdownTimeoutMs, false, { ref: false })]);
        if (!inTime) logger.warn({ deadlineMs: config.shutdownTimeoutMs }, 'shutdown deadline passed: requests still in progress were cut off');
        await redis.quit().catch(() => redis.disconnect());
        await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: coerceError(error) }, 'could not flush traces'));
      }, logger);
      const { intake } = await starting;
      process.stderr.write(`intake listening on ${intake.url} (POST /v1/messages)\n`);
      logger.info({ url: intake.url }, 'intake started');
      await new Promise<never>(() => undefined);
    });

  program
    .command('status')
    .description('per-location and per-import progress')
    .option('--location <id>', 'one location only')
    .option('--all', 'every location, not only the busiest and those needing attention')
    .option('--json', 'JSON on stdout (totals, every location, imports)')
    .action(async (flags: { location?: string; all?: boolean; json?: boolean }) => {
      await withRedis('ingest-status', async (redis, config) => {
        const { readStatus, renderStatus } = await import('./status.ts');
        const status = await readStatus(redis, config, flags.location);
        out.write(flags.json === true ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status, { all: flags.all === true }));
      });
    });

  const dlq = program.command('dlq').description('the dead-letter queue: list, show, export, redrive, purge');
  const filterOptions = (c: Command) =>
    c
      .option('--location <id>', 'only this location')
      .option('--class <class>', 'only this failure class (permanent, suspect, transient, invalid-job, stalled)')
      .option('--status <code>', 'only this HTTP status')
      .option('--since <iso>', 'last attempt at or after')
      .option('--until <iso>', 'last attempt before');
  const withTool = (fn: (tool: DeadLetterTool, m: DlqModule) => Promise<void>) =>
    withRedis('ingest-dlq', async (redis, config) => {
      const m = await import('./dlq.ts');
      const tool = new m.DeadLetterTool(redis, config);
      try {
        await fn(tool, m);
      } finally {
        await tool.close();
      }
    });
  filterOptions(dlq.command('list').description('list dead-lettered messages').option('--json', 'JSON lines on stdout')).action(
    async (flags: FilterFlags & { json?: boolean }) =>
      withTool(async (tool, m) => {
        const records = await tool.list(m.parseFilter(flags));
        out.write(flags.json === true ? records.map((r) => `${JSON.stringify(r)}\n`).join('') : m.renderList(records));
      }),
  );
  dlq
    .command('show')
    .description('one record in full')
    .argument('<id>', '<locationId>.<key>, as list shows')
    .action(async (id: string) =>
      withTool(async (tool) => {
        const record = await tool.show(id);
        if (record === undefined) throw new Error(`no dead-letter record ${id}`);
        out.write(`${JSON.stringify(record, null, 2)}\n`);
      }),
    );
  filterOptions(dlq.command('export').description('write records as import records (NDJSON on stdout), to fix and import again')).action(
    async (flags: FilterFlags) =>
      withTool(async (tool, m) => {
        const { exported, unexportable } = await tool.export(m.parseFilter(flags), out);
        process.stderr.write(`exported ${exported}${unexportable > 0 ? `; ${unexportable} had no readable job data (see dlq show)` : ''}\n`);
      }),
  );
  filterOptions(
    dlq
      .command('redrive')
      .description('put messages back on their queues, attempts reset, same key')
      .argument('[ids...]', 'record ids; or use filters')
      .option('--dry-run', 'count only'),
  ).action(async (ids: string[], flags: FilterFlags & { dryRun?: boolean }) =>
    withTool(async (tool, m) => {
      const r = await tool.redrive(m.parseFilter(flags, ids), flags.dryRun === true);
      process.stderr.write(
        flags.dryRun === true
          ? `${r.matched} would be redriven${r.skipped > 0 ? ` (${r.skipped} could not be: no readable job data)` : ''}\n`
          : `matched ${r.matched}, redriven ${r.redriven}${r.delivered > 0 ? `, ${r.delivered} delivered already (record dropped)` : ''}${r.skipped > 0 ? `, left ${r.skipped} (no readable job data, or already queued)` : ''}\n`,
      );
    }),
  );
  filterOptions(
    dlq.command('purge').description('delete records for good').argument('[ids...]', 'record ids; or use filters').option('--yes', 'do not ask'),
  ).action(async (ids: string[], flags: FilterFlags & { yes?: boolean }) =>
    withTool(async (tool, m) => {
      const filter = m.parseFilter(flags, ids);
      const count = (await tool.list(filter)).length;
      if (count === 0) {
        process.stderr.write('no dead-lettered messages match\n');
        return;
      }
      if (flags.yes !== true && !(await m.confirm(`delete ${count} dead-letter record${count === 1 ? '' : 's'} for good?`))) {
        throw new Error(`not purged: ${count} records match; confirm on a terminal or pass --yes`);
      }
      process.stderr.write(`purged ${await tool.purge(filter)}\n`);
    }),
  );

  program
    .command('resume')
    .description('start a location again that was paused (its token was rejected), once its token is fixed')
    .argument('<locationId>', 'the location to resume')
    .action(async (locationId: string) => {
      const id = idArgument(locationId, 'a location id');
      await withRedis('ingest-resume', async (redis, config) => {
        const hold = await resumeLocation(redis, config.queuePrefix, id);
        out.write(
          hold === undefined ? `location ${id} was not paused; its queue is running\n` : `location ${id} resumed (it was ${hold.state}: ${hold.reason})\n`,
        );
      });
    });

  const auth = program.command('auth').description("a marketplace app's OAuth tokens (encrypted in Redis with GHL_TOKEN_KEY): import, status, remove");
  auth
    .command('import')
    .description('store refresh tokens: JSON lines {"locationId","refreshToken","accessToken"?,"expiresAt"?} or {"companyId","refreshToken"}')
    .argument('<file>', 'a JSON-lines file, or - for standard input')
    .action(async (file: string) => {
      await withRedis('ingest-auth', async (redis, config) => {
        const { authStore, importAuth } = await import('./auth.ts');
        const summary = await importAuth(authStore(redis, config), file, (text) => process.stderr.write(`${text}\n`));
        out.write(`stored tokens for ${summary.locations} location(s) and ${summary.companies} agency(ies); ${summary.rejected} line(s) rejected\n`);
        exitCode = summary.rejected > 0 ? 2 : 0;
      });
    });
  auth
    .command('status')
    .description('per location and agency: where its token comes from, expiry, last refresh, failures, why it is paused; never a secret')
    .option('--json', 'JSON on stdout')
    .action(async (flags: { json?: boolean }) => {
      await withRedis('ingest-auth', async (redis, config) => {
        const { authStore, renderAuthStatus } = await import('./auth.ts');
        const records = await authStore(redis, config).list();
        out.write(flags.json === true ? `${JSON.stringify(records, null, 2)}\n` : renderAuthStatus(records));
      });
    });
  auth
    .command('remove')
    .description("delete a location's or an agency's OAuth record and tokens")
    .argument('<id>', 'a location id or a company (agency) id')
    .action(async (owner: string) => {
      const id = idArgument(owner, 'a location or company id');
      await withRedis('ingest-auth', async (redis, config) => {
        const { authStore, removeAuth } = await import('./auth.ts');
        const removed = await removeAuth(authStore(redis, config), id);
        if (removed === undefined) throw new ConfigError(`no OAuth record for ${id}`);
        out.write(`removed the OAuth tokens of ${removed.kind === 'company' ? 'agency' : 'location'} ${removed.id}\n`);
      });
    });

  program
    .command('doctor')
    .description(
      'checks a deployment: Redis (version, noeviction, persistence, Lua, pub/sub, cluster), clocks, a token per known location, OAuth scopes; says how to fix each finding',
    )
    .option('--json', 'JSON on stdout: { findings: [{ check, status, detail, fix? }], summary }')
    .option('--api', "also check that HighLevel (GHL_API_BASE_URL) answers: one request without a token, which spends no location's budget")
    .addHelpText('after', '\nStatus of a finding: ok, warning, or blocker. Exit codes: 0 nothing blocks; 1 something does (or the command failed).\n')
    .action(async (flags: { json?: boolean; api?: boolean }) => {
      const { doctorCommand } = await import('./doctor.ts');
      exitCode = await doctorCommand(flags, out);
    });

  options.extend?.(program);

  let exitCode = 0;
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 1;
    const e = coerceError(error);
    const code = (e as { code?: unknown }).code;
    const detail = code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' ? '' : e.name === 'Error' || e.name === 'ConfigError' ? '' : ` (${e.name})`;
    process.stderr.write(`${name}: ${e.message}${detail}\n`);
    return 1;
  }
}

/** A command's id argument (a location's or an agency's), or a ConfigError saying why it is not one. */
function idArgument(value: string, what: string): string {
  const id = locationIdSchema.safeParse(value);
  if (!id.success) throw new ConfigError(`"${value}" is not ${what}: ${id.error.issues[0]?.message ?? ''}`);
  return id.data;
}
