/**
 * `pnpm ingest <command>`: the producer's command line. Exit codes (contract.md): 0 success,
 * 1 the command failed, 2 it finished but some rows were rejected or dead-lettered.
 */
import { Command, CommanderError } from 'commander';
import { coerceError, ConfigError, createRedis, loadConfig } from '@ghl-ingest/queue';
import { locationIdSchema } from '@ghl-ingest/schema';
import { resumeLocation } from './resume.ts';

class NotBuiltYet extends Error {}

export async function run(argv: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const program = new Command('ingest')
    .description('ghl-ingest: move conversation history into HighLevel')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => out.write(s) });

  for (const [name, issue, summary] of [
    ['import', 5, 'bulk import: validate, normalise, enqueue'],
    ['serve', 5, 'HTTP intake for live sync processes'],
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
      const redis = createRedis(config.redisUrl, 'producer', `${config.queuePrefix}:ingest-resume`);
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

  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 1;
    const e = coerceError(error);
    process.stderr.write(`ingest: ${e.message}\n`);
    return 1;
  }
}
