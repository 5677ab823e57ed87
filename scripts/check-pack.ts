/**
 * `pnpm check:pack`: the packages as someone outside this repository gets them.
 *
 * Builds and packs (`pnpm pack`) every published package, lints each tarball (its LICENSE, README
 * and package.json fields; publint; arethetypeswrong), installs the tarballs with npm into an
 * empty project, and there: `npx ghl-ingest --help` (and `worker --help`, and `--version`), a
 * plain JavaScript file that imports `createProducer` and enqueues a message in Redis, a
 * TypeScript file using the library that must type-check (strict, nodenext), and the installed
 * `ghl-ingest worker` delivering that message to the stand-in. Fails on the first thing a user
 * would meet.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FakeHighLevel } from '@ghl-ingest/fake-api';
import { until } from '@ghl-ingest/testing';
import { Redis } from 'ioredis';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';

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

interface Manifest {
  name: string;
  version: string;
  license?: string;
  repository?: { type?: string; url?: string; directory?: string };
  engines?: { node?: string };
  exports?: unknown;
}

const readManifest = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Manifest;

/**
 * Each tarball as a registry would take it: the repository's LICENSE and a README beside
 * package.json, whose license, repository (with the package's directory) and engines are the
 * root's; publint finds no error and no warning (none is suppressed; its suggestions are
 * printed); arethetypeswrong finds no problem for ES module consumers (profile esm-only: these
 * packages are ES modules only by design, so CommonJS resolution is out of scope), offline
 * (no DefinitelyTyped look-up). Returns each package's manifest by name.
 */
async function checkPackaging(files: string[], work: string): Promise<Map<string, Manifest>> {
  const rootManifest = readManifest(join(root, 'package.json'));
  const license = readFileSync(join(root, 'LICENSE'), 'utf8');
  const dirOf = new Map(PUBLISHED.map((dir) => [readManifest(join(root, dir, 'package.json')).name, dir]));
  const manifests = new Map<string, Manifest>();
  for (const file of files) {
    const manifest = JSON.parse(run('tar', ['-xzOf', file, 'package/package.json'], work)) as Manifest;
    const dir = dirOf.get(manifest.name) ?? fail(`${file} is no package of ${PUBLISHED.join(', ')}`);
    manifests.set(manifest.name, manifest);
    const listing = run('tar', ['-tzf', file], work).split('\n');
    const wrong = [
      listing.includes('package/LICENSE') && run('tar', ['-xzOf', file, 'package/LICENSE'], work) === license
        ? undefined
        : "no LICENSE, or not the repository's",
      listing.includes('package/README.md') ? undefined : 'no README.md',
      manifest.license === rootManifest.license ? undefined : `license ${manifest.license ?? '(none)'}, not ${rootManifest.license ?? ''}`,
      manifest.repository?.type === 'git' && manifest.repository.url === rootManifest.repository?.url && manifest.repository.directory === dir
        ? undefined
        : `repository ${JSON.stringify(manifest.repository)}, not git ${rootManifest.repository?.url ?? ''} directory ${dir}`,
      manifest.engines?.node === rootManifest.engines?.node
        ? undefined
        : `engines.node ${manifest.engines?.node ?? '(none)'}, not ${rootManifest.engines?.node ?? ''}`,
    ].filter((w) => w !== undefined);
    if (wrong.length > 0) fail(`${manifest.name} (${dir}): ${wrong.join('; ')}`);

    const bytes = readFileSync(file);
    const { messages, pkg } = await publint({
      pack: { tarball: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) },
      level: 'suggestion',
    });
    const said = (type: string) => messages.filter((m) => m.type === type).map((m) => `${m.code}: ${formatMessage(m, pkg, { color: false }) ?? ''}`);
    for (const suggestion of said('suggestion')) step(`publint suggests for ${manifest.name}: ${suggestion}`);
    const problems = [...said('error'), ...said('warning')];
    if (problems.length > 0) fail(`publint on ${manifest.name}:\n  ${problems.join('\n  ')}`);

    // What `import` resolves to; the bin-only ghl-ingest exports nothing (its bin is run below).
    if (manifest.exports !== undefined)
      run(join(root, 'node_modules/.bin/attw'), ['--profile', 'esm-only', '--no-definitely-typed', '--format', 'ascii', file], work);
  }
  step(`${[...manifests.keys()].join(', ')}: LICENSE, README, license, repository, engines; publint and arethetypeswrong (esm-only) clean`);
  return manifests;
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

const CONSUMER_TS = `import { createProducer, type InboundRecord, type MessageStatus, type Producer, type SendResult } from '@ghl-ingest/producer';
import { normalizeRecord, type JobData } from '@ghl-ingest/schema';

export const record: InboundRecord = { locationId: 'loc1', key: 'msg-1', type: 'SMS', contact: { phone: '+14155550100' }, message: 'hi' };

export async function sendOne(r: InboundRecord): Promise<{ sent: SendResult | undefined; status: MessageStatus | undefined }> {
  const producer: Producer = await createProducer({ unknownFields: 'drop' });
  try {
    const [sent] = await producer.send([r]);
    // A SendResult names its message for status().
    return { sent, status: sent?.ok === true ? await producer.status(sent) : undefined };
  } finally {
    await producer.close();
  }
}

export function describe(s: MessageStatus): string {
  switch (s.state) {
    case 'delivered':
      return s.messageId + ' at ' + new Date(s.deliveredAt).toISOString();
    case 'pending':
      return s.stage + ' after ' + String(s.attempts) + ' of ' + String(s.maxAttempts) + (s.nextAttemptAt === undefined ? '' : ' until ' + String(s.nextAttemptAt));
    case 'dead-lettered':
      return s.reason;
    case 'unknown':
      return 'unknown';
  }
}

export const bySourceKey = (p: Producer): Promise<MessageStatus> => p.status({ locationId: 'loc1', sourceKey: 'msg-1' });

export function keyOf(input: unknown): string | undefined {
  const r = normalizeRecord(input);
  return r.ok ? r.record.key : undefined;
}

export type Job = JobData;
// @ts-expect-error: send takes an array of records, and the declarations say so.
export const wrong = (p: Producer) => p.send('not an array');
// @ts-expect-error: a record's type is one of HighLevel's message types.
export const pigeon: InboundRecord = { locationId: 'loc1', type: 'Pigeon', contactId: 'c1', message: 'hi' };
// @ts-expect-error: a record names its location.
export const nowhere: InboundRecord = { type: 'SMS', contactId: 'c1', message: 'hi' };
// @ts-expect-error: status takes the message key or the record's own id, not both.
export const both = (p: Producer) => p.status({ locationId: 'loc1', key: 'k-msg-1', sourceKey: 'msg-1' });
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
      // Its prepack builds dist/ and adds LICENSE and README (scripts/build-package.ts --pack).
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
    const manifests = await checkPackaging(files, work);

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
    const version = manifests.get('ghl-ingest')?.version ?? fail('no ghl-ingest package was packed');
    const printed = run('npx', ['--no-install', 'ghl-ingest', '--version'], project, env).trim();
    if (printed !== version) fail(`ghl-ingest --version printed "${printed}", the package is ${version}`);
    step(`npx ghl-ingest --version: ${printed}, the installed package's`);

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
