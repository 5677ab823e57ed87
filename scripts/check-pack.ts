/**
 * `pnpm check:pack`: the packages as someone outside this repository gets them.
 *
 * Builds and packs (`pnpm pack`) every published package, installs the tarballs with npm into an
 * empty project, and there: `npx ghl-ingest --help` (and `worker --help`), a plain JavaScript file
 * that imports `createProducer` and enqueues a message in Redis, a TypeScript file using the
 * library that must type-check (strict, nodenext), and the installed `ghl-ingest worker`
 * delivering that message to the stand-in. Fails on the first thing a user would meet.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FakeHighLevel } from '@ghl-ingest/fake-api';
import { until } from '@ghl-ingest/testing';
import { Redis } from 'ioredis';

const root = resolve(import.meta.dirname, '..');
const keep = process.argv.includes('--keep');
/** What a user installs: the contract, the library (and what it needs), the CLI. */
const PUBLISHED = ['packages/schema', 'packages/queue', 'apps/producer', 'apps/worker', 'apps/cli'];

class PackCheckError extends Error {}

function fail(message: string): never {
  throw new PackCheckError(message);
}

function step(message: string): void {
  process.stdout.write(`pack: ${message}\n`);
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) fail(`${command} ${args.join(' ')} (in ${cwd}) exited ${r.status ?? r.signal}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  return r.stdout;
}

const CONSUMER_JS = `import { createProducer } from '@ghl-ingest/producer';
import { normalizeRecord } from '@ghl-ingest/schema';

const record = { locationId: 'packloc', key: 'pack-1', type: 'SMS', contactId: 'c1', message: 'from an installed package', direction: 'inbound' };
if (!normalizeRecord(record).ok) throw new Error('the contract refused a valid record');
const producer = await createProducer();
const [result] = await producer.send([record, { locationId: 'packloc' }]);
await producer.close();
console.log(JSON.stringify(result));
`;

const CONSUMER_TS = `import { createProducer, type Producer, type SendResult } from '@ghl-ingest/producer';
import { normalizeRecord, type JobData } from '@ghl-ingest/schema';

export async function sendOne(record: unknown): Promise<SendResult | undefined> {
  const producer: Producer = await createProducer({ unknownFields: 'drop' });
  try {
    const [result] = await producer.send([record]);
    return result;
  } finally {
    await producer.close();
  }
}

export function keyOf(record: unknown): string | undefined {
  const r = normalizeRecord(record);
  return r.ok ? r.record.key : undefined;
}

export type Job = JobData;
// @ts-expect-error: send takes an array of records, and the declarations say so.
export const wrong = (p: Producer) => p.send('not an array');
`;

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'ghl-pack-'));
  const tarballs = join(work, 'tarballs');
  const project = join(work, 'consumer');
  mkdirSync(tarballs);
  mkdirSync(project);
  const prefix = `packcheck${randomBytes(4).toString('hex')}`;
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let fake: FakeHighLevel | undefined;
  try {
    for (const dir of PUBLISHED) {
      run('pnpm', ['run', 'build'], join(root, dir));
      run('pnpm', ['pack', '--pack-destination', tarballs], join(root, dir));
    }
    const files = readdirSync(tarballs).map((f) => join(tarballs, f));
    step(`packed ${readdirSync(tarballs).join(', ')}`);
    for (const file of files) {
      const listing = run('tar', ['-tzf', file], work);
      if (/\.test\.|\/src\//.test(listing)) fail(`${file} ships sources or tests:\n${listing}`);
      const manifest = JSON.parse(run('tar', ['-xzOf', file, 'package/package.json'], work)) as { dependencies?: Record<string, string> };
      const local = Object.entries(manifest.dependencies ?? {}).filter(([, v]) => v.startsWith('workspace:'));
      if (local.length > 0) fail(`${file} still names workspace: versions: ${local.map(([k]) => k).join(', ')}`);
    }

    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2));
    const typescript = (JSON.parse(readFileSync(join(root, 'node_modules/typescript/package.json'), 'utf8')) as { version: string }).version;
    const env: NodeJS.ProcessEnv = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
    delete env.npm_config_nodedir;
    run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...files, `typescript@${typescript}`, '@types/node@24'], project, env);
    step('npm install of the tarballs into an empty project: ok');

    const help = run('npx', ['--no-install', 'ghl-ingest', '--help'], project, env);
    for (const command of ['import', 'serve', 'status', 'dlq', 'resume', 'auth', 'worker']) {
      if (!new RegExp(`^\\s+${command}\\b`, 'm').test(help)) fail(`ghl-ingest --help lists no ${command}:\n${help}`);
    }
    if (!/REDIS_URL/.test(run('npx', ['--no-install', 'ghl-ingest', 'worker', '--help'], project, env))) fail('ghl-ingest worker --help names no settings');
    step('npx ghl-ingest --help and worker --help: ok');

    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true, types: ['node'] },
        files: ['use.ts'],
      }),
    );
    writeFileSync(join(project, 'use.ts'), CONSUMER_TS);
    run('npx', ['--no-install', 'tsc', '-p', '.'], project, env);
    step('a TypeScript file using the library type-checks (strict, nodenext)');

    await redis.connect();
    const appEnv = { ...env, REDIS_URL: redisUrl, QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn' };
    // The OAuth commands load their own modules (and their Lua) only when asked: they must be in the package.
    const auth = run('npx', ['--no-install', 'ghl-ingest', 'auth', 'status'], project, { ...appEnv, GHL_TOKEN_KEY: randomBytes(32).toString('base64') });
    if (!auth.includes('no OAuth tokens stored')) fail(`ghl-ingest auth status: ${auth}`);
    step('ghl-ingest auth status: ok');
    writeFileSync(join(project, 'use.mjs'), CONSUMER_JS);
    const sent = run('node', ['use.mjs'], project, appEnv);
    if (!/"ok":true/.test(sent)) fail(`createProducer from plain JavaScript did not accept the record: ${sent}`);
    step('createProducer from plain JavaScript enqueued a message');

    const api = (fake = await FakeHighLevel.start()).url;
    const stand = fake;
    // The bin itself, not through npx, so that SIGTERM reaches the worker.
    const worker = spawn(join(project, 'node_modules/.bin/ghl-ingest'), ['worker'], {
      cwd: project,
      env: { ...appEnv, GHL_API_BASE_URL: api, GHL_TOKEN: 'pack-token' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    worker.stdout.on('data', (d: Buffer) => (output += d.toString()));
    worker.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((done) => worker.once('exit', (code) => done(code)));
    try {
      await until(() => stand.stats().accepted >= 1 || worker.exitCode !== null, 60_000, 'the installed worker to deliver');
      if (stand.stats().accepted < 1) fail(`the installed worker exited ${worker.exitCode}:\n${output.slice(-3000)}`);
    } finally {
      worker.kill('SIGTERM');
    }
    const code = await exited;
    if (code !== 0) fail(`the installed worker exited ${code} on SIGTERM:\n${output.slice(-3000)}`);
    step('the installed ghl-ingest worker delivered it and stopped on SIGTERM');
    step('ok');
  } finally {
    await fake?.close();
    if (redis.status === 'ready') {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length > 0) await redis.unlink(...keys);
    }
    redis.disconnect();
    if (keep) step(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `pack: FAILED: ${error instanceof PackCheckError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
