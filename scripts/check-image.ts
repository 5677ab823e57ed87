/**
 * `pnpm check:image`: builds the image the way Docker would, without a Docker engine, and runs it.
 *
 * The Dockerfile is replayed instruction by instruction: each stage gets its own directory as its
 * file system, the build context is this directory filtered by `.dockerignore` (Docker's own
 * matching rules), COPY copies from the context or an earlier stage, RUN runs in a shell in the
 * stage's WORKDIR (global npm installs land in the stage's /usr/local), ENV and USER are kept.
 * The base image is stood in for by this machine's Node, which must be the same major version.
 *
 * Then the final stage is used as compose uses the image: the worker's CMD and the `ingest`
 * entry point answer `--help`; the stand-in, the intake and a worker start from their compose
 * commands; a short import and an intake request are delivered. It fails when the image would
 * not run, when it ships development files, or when it runs as root.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import dockerignoreModule from '@balena/dockerignore';
import { freePort, until } from '@ghl-ingest/testing';
import { Redis } from 'ioredis';
import { parse as parseYaml } from 'yaml';

const root = resolve(import.meta.dirname, '..');
const keep = process.argv.includes('--keep');

interface Instruction {
  line: number;
  op: string;
  args: string;
}

interface Stage {
  name: string;
  from: string;
  dir: string;
  workdir: string;
  env: Record<string, string>;
  user: string;
  cmd: string[] | undefined;
  entrypoint: string[] | undefined;
}

// A CommonJS module whose types declare an ES default export: at run time the default is the factory.
const dockerignore = dockerignoreModule as unknown as typeof dockerignoreModule.default;

class ImageCheckError extends Error {}

function fail(message: string): never {
  throw new ImageCheckError(message);
}

function step(message: string): void {
  process.stdout.write(`image: ${message}\n`);
}

/** Dockerfile lines joined at `\` continuations, comments and blank lines dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) return;
    if (pending === '') startLine = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const [, op, args] = /^(\w+)\s+(.*)$/s.exec(full) ?? fail(`Dockerfile line ${startLine}: cannot read "${full}"`);
    out.push({ line: startLine, op: (op ?? '').toUpperCase(), args: (args ?? '').trim() });
  });
  return out;
}

/** `["a", "b"]` (exec form) or `a b` (shell form, run with sh -c). */
function commandOf(args: string): string[] {
  if (args.startsWith('[')) return JSON.parse(args) as string[];
  return ['sh', '-c', args];
}

/** Every file and link of the build context, relative, after `.dockerignore`. */
function contextFiles(): string[] {
  const ignoreFile = join(root, '.dockerignore');
  const patterns = existsSync(ignoreFile) ? readFileSync(ignoreFile, 'utf8').split('\n') : [];
  const ig = dockerignore().add(patterns);
  const negations = patterns.some((p) => p.trim().startsWith('!'));
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!negations && ig.ignores(rel)) continue;
        walk(rel);
      } else if (!ig.ignores(rel)) {
        files.push(rel);
      }
    }
  };
  walk('');
  return files;
}

function run(command: string[], options: { cwd: string; env: NodeJS.ProcessEnv; what: string; timeoutMs?: number }): string {
  const timeout = options.timeoutMs ?? 60_000;
  const [program = 'false', ...args] = command;
  const r = spawnSync(program, args, { cwd: options.cwd, env: options.env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout, killSignal: 'SIGKILL' });
  if (r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') fail(`${options.what} did not finish within ${timeout / 1000} s`);
  if (r.status !== 0) {
    fail(`${options.what} exited ${r.status ?? r.signal}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  }
  return r.stdout;
}

/** Copies `sources` (paths inside `from`) to `dest` with Docker's COPY rules for files and directories. */
function copy(from: string, sources: string[], dest: string, destIsDir: boolean): void {
  for (const source of sources) {
    if (/[*?[]/.test(source)) fail(`COPY ${source}: wildcards are not replayed; name the files`);
    const path = join(from, source);
    if (!existsSync(path)) fail(`COPY ${source}: not in the build context (is it in .dockerignore?)`);
    if (statSync(path).isDirectory()) {
      mkdirSync(dest, { recursive: true });
      cpSync(path, dest, { recursive: true, verbatimSymlinks: true });
    } else {
      const target = destIsDir ? join(dest, posix.basename(source)) : dest;
      mkdirSync(dirname(target), { recursive: true });
      cpSync(path, target, { verbatimSymlinks: true });
    }
  }
}

function build(work: string): Stage {
  const context = join(work, 'context');
  const files = contextFiles();
  for (const f of files) {
    mkdirSync(dirname(join(context, f)), { recursive: true });
    cpSync(join(root, f), join(context, f), { verbatimSymlinks: true });
  }
  step(`build context: ${files.length} files after .dockerignore`);

  const hostNode = Number(process.versions.node.split('.')[0]);
  const stages: Stage[] = [];
  let stage: Stage | undefined;
  for (const ins of parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'))) {
    const where = `Dockerfile line ${ins.line} (${ins.op} ${ins.args.slice(0, 60)})`;
    if (ins.op === 'FROM') {
      const [image = '', as, name] = ins.args.split(/\s+/);
      const major = /^node:(\d+)/.exec(image)?.[1];
      if (major === undefined) fail(`${where}: only node images are replayed`);
      if (Number(major) !== hostNode) fail(`${where}: the image's Node is ${major}, this machine's ${hostNode}: run the check on Node ${major}`);
      const dir = join(work, `stage-${stages.length}`);
      mkdirSync(join(dir, 'root'), { recursive: true });
      stage = {
        name: as?.toUpperCase() === 'AS' ? (name ?? '') : '',
        from: image,
        dir,
        workdir: '/',
        env: {},
        user: 'root',
        cmd: undefined,
        entrypoint: undefined,
      };
      stages.push(stage);
      continue;
    }
    if (stage === undefined) fail(`${where}: before any FROM`);
    const inStage = (s: Stage, p: string) => join(s.dir, posix.resolve(s.workdir, p));
    switch (ins.op) {
      case 'WORKDIR':
        stage.workdir = posix.resolve(stage.workdir, ins.args);
        mkdirSync(inStage(stage, '.'), { recursive: true });
        break;
      case 'ENV': {
        for (const [, name = '', value = ''] of ins.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) stage.env[name] = value.replace(/^"|"$/g, '');
        break;
      }
      case 'USER':
        stage.user = ins.args;
        break;
      case 'CMD':
        stage.cmd = commandOf(ins.args);
        break;
      case 'ENTRYPOINT':
        stage.entrypoint = commandOf(ins.args);
        break;
      case 'EXPOSE':
      case 'LABEL':
        break;
      case 'COPY': {
        const words = ins.args.split(/\s+/);
        const flags = words.filter((w) => w.startsWith('--'));
        const paths = words.filter((w) => !w.startsWith('--'));
        const fromFlag = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
        const dest = paths.pop();
        if (dest === undefined || paths.length === 0) fail(`${where}: COPY needs a source and a destination`);
        let from = context;
        if (fromFlag !== undefined) {
          const source = stages.find((s) => s.name === fromFlag);
          if (source === undefined) fail(`${where}: no stage named ${fromFlag}`);
          from = source.dir;
          paths.forEach((p, i) => (paths[i] = posix.resolve(source.workdir, p)));
        }
        copy(from, paths, inStage(stage, dest), dest.endsWith('/') || dest === '.' || paths.length > 1);
        break;
      }
      case 'RUN': {
        const local = join(stage.dir, 'usr/local');
        const env: NodeJS.ProcessEnv = {
          ...process.env,
          ...stage.env,
          HOME: join(stage.dir, 'root'),
          npm_config_prefix: local,
          npm_config_update_notifier: 'false',
          PATH: `${join(local, 'bin')}:${process.env.PATH ?? ''}`,
        };
        // Commands run on this machine's file system, not a container's: an absolute path would escape the stage.
        if (/(^|[\s=])\/(?!dev\/null)/.test(ins.args))
          fail(`${where}: RUN uses an absolute path, which this check cannot replay; use paths relative to WORKDIR`);
        delete env.npm_config_nodedir;
        delete env.PNPM_HOME;
        step(`RUN ${ins.args}`);
        run(commandOf(ins.args), { cwd: inStage(stage, '.'), env, what: where, timeoutMs: 600_000 });
        break;
      }
      default:
        fail(`${where}: ${ins.op} is not replayed by this check; extend scripts/check-image.ts`);
    }
  }
  if (stage === undefined) fail('the Dockerfile has no FROM');
  return stage;
}

/** What the image must not carry: development tools, tests, benchmarks, the chaos suite. */
function checkProductionOnly(image: Stage): void {
  const app = join(image.dir, image.workdir);
  const found: string[] = [];
  // (typescript is there: valibot, under bull-board, names it as an optional peer and pnpm links it.)
  for (const dev of ['vitest', 'eslint', 'testcontainers', 'prettier']) {
    if (existsSync(join(app, 'node_modules', dev)) || existsSync(join(app, 'node_modules/.pnpm/node_modules', dev))) found.push(`node_modules/${dev}`);
  }
  for (const dir of ['chaos', 'bench', '.git', 'packages/testing']) if (existsSync(join(app, dir))) found.push(dir);
  const tests = (readdirSync(app, { recursive: true }) as string[]).filter((f) => !f.includes('node_modules') && /\.test\.ts$/.test(f));
  found.push(...tests.slice(0, 5));
  if (found.length > 0) fail(`the image ships development files: ${found.join(', ')}`);
  if (['root', '0', ''].includes(image.user.split(':')[0] ?? '')) fail('the image runs as root: add a USER');
  step(`production files only; runs as ${image.user}`);
}

interface ComposeService {
  build?: unknown;
  image?: string;
  command?: string[];
  entrypoint?: string[];
}

function composeServices(): Record<string, ComposeService> {
  const doc = parseYaml(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService> };
  return doc.services;
}

class Processes {
  #children: ChildProcess[] = [];

  start(command: string[], cwd: string, env: NodeJS.ProcessEnv, name: string): { child: ChildProcess; output: () => string } {
    const [program = 'false', ...args] = command;
    const child = spawn(program, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text = (text + d.toString()).slice(-20_000)));
    child.stderr.on('data', (d: Buffer) => (text = (text + d.toString()).slice(-20_000)));
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal === null) process.stdout.write(`image: ${name} exited ${code}:\n${text.slice(-3000)}\n`);
    });
    this.#children.push(child);
    return { child, output: () => text };
  }

  async stop(child: ChildProcess, name: string): Promise<void> {
    if (child.exitCode !== null) fail(`${name} had already exited ${child.exitCode}`);
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    child.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) fail(`${name} exited ${code} on SIGTERM`);
  }

  killAll(): void {
    for (const c of this.#children) if (c.exitCode === null) c.kill('SIGKILL');
  }
}

async function runImage(image: Stage, work: string): Promise<void> {
  const app = join(image.dir, image.workdir);
  const services = composeServices();
  const ours = Object.entries(services).filter(([, s]) => s.build !== undefined || s.image?.startsWith('ghl-ingest') === true);
  const commandOfService = (name: string, args: string[] = []) => {
    const s = services[name] ?? fail(`docker-compose.yml has no service ${name}`);
    const entry = s.entrypoint ?? image.entrypoint ?? [];
    const cmd = s.command ?? (s.entrypoint === undefined ? (image.cmd ?? []) : []);
    const full = [...entry, ...cmd, ...args];
    if (full.length === 0) fail(`service ${name} has no command`);
    return full;
  };
  step(`compose services on the image: ${ours.map(([n]) => n).join(', ')}`);
  const prefix = `imgcheck${randomBytes(4).toString('hex')}`;
  const home = join(image.dir, 'home/node');
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    ...image.env,
    HOME: home,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    LOG_LEVEL: 'warn',
  };
  mkdirSync(home, { recursive: true });

  for (const [what, command] of [
    ['the image CMD', [...(image.entrypoint ?? []), ...(image.cmd ?? [])]],
    ['the worker service', commandOfService('worker')],
    ['the ingest service', commandOfService('ingest')],
  ] as const) {
    const out = run([...command, '--help'], { cwd: app, env, what: `${what} --help (${command.join(' ')})` });
    if (!/usage/i.test(out)) fail(`${what} --help printed no usage:\n${out}`);
    step(`${what} --help: ok`);
  }

  const procs = new Processes();
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    // The stand-in, on a free port instead of the published one.
    const overrides: Record<string, string> = { '--port': '0', '--host': '127.0.0.1', '--latency': '0-5' };
    const fakeCommand = commandOfService('fake-api').map((a, i, all) => overrides[all[i - 1] ?? ''] ?? a);
    const fake = procs.start(fakeCommand, app, env, 'fake-api');
    await until(() => /listening on (\S+)/.test(fake.output()), 20_000, 'the stand-in to listen');
    const fakeUrl = /listening on (\S+)/.exec(fake.output())?.[1] ?? fail('the stand-in printed no URL');
    const appEnv = { ...env, GHL_API_BASE_URL: fakeUrl, GHL_TOKEN: 'image-check-token' };

    const input = join(work, 'history.ndjson');
    const records = Array.from({ length: 20 }, (_, i) => ({
      locationId: `imgloc${i % 3}`,
      key: `img-${i}`,
      type: 'SMS',
      contactId: `c${i}`,
      message: `image check ${i}`,
      direction: 'inbound',
    }));
    writeFileSync(input, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
    run([...commandOfService('ingest'), 'import', input], { cwd: app, env: appEnv, what: 'ingest import' });
    step('ingest import: 20 records accepted');

    const intakePort = await freePort();
    const intake = procs.start(
      commandOfService('intake'),
      app,
      { ...appEnv, INTAKE_PORT: String(intakePort), INTAKE_HOST: '127.0.0.1', INTAKE_TOKEN: 'image-check' },
      'intake',
    );
    const intakeUrl = `http://127.0.0.1:${intakePort}`;
    await until(async () => (await fetch(`${intakeUrl}/readyz`).catch(() => undefined))?.ok === true, 20_000, 'the intake to be ready');
    const posted = await fetch(`${intakeUrl}/v1/messages`, {
      method: 'POST',
      headers: { authorization: 'Bearer image-check', 'content-type': 'application/json' },
      body: JSON.stringify({ locationId: 'imgloc0', key: 'img-intake', type: 'SMS', contactId: 'c-intake', message: 'via the intake', direction: 'inbound' }),
    });
    if (posted.status !== 202) fail(`the intake answered ${posted.status}: ${await posted.text()}`);
    step('intake: 1 record accepted');

    const workerEnv = { ...appEnv, LOG_LEVEL: 'info' }; // for the line each logs once started
    const workers = [procs.start(commandOfService('worker'), app, workerEnv, 'worker 1'), procs.start(commandOfService('worker'), app, workerEnv, 'worker 2')];
    const started = workers.map(({ child }) => {
      const state = { started: false, tail: '' };
      // The line may arrive split across chunks: each is read with the end of the one before.
      const look = (d: Buffer) => {
        const text = state.tail + d.toString();
        state.started ||= text.includes('"msg":"worker started"');
        state.tail = text.slice(-64);
      };
      child.stdout?.on('data', look);
      child.stderr?.on('data', look);
      return state;
    });
    const delivered = async () => ((await (await fetch(`${fakeUrl}/__admin/stats`)).json()) as { accepted: number }).accepted;
    await until(async () => (await delivered()) >= 21, 60_000, 'the worker to deliver 21 messages');
    // Both up, not only the one that delivered them all: the stop below is of running workers.
    await until(() => started.every((w) => w.started), 60_000, 'both workers to start');
    step(`two workers delivered ${await delivered()} messages`);

    for (const [i, w] of workers.entries()) await procs.stop(w.child, `worker ${i + 1}`);
    await procs.stop(intake.child, 'intake');
    await procs.stop(fake.child, 'fake-api');
    step('worker, intake and stand-in stopped cleanly on SIGTERM');
  } finally {
    procs.killAll();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
    redis.disconnect();
  }
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'ghl-image-'));
  try {
    const image = build(work);
    await runImage(image, work);
    checkProductionOnly(image);
    step('ok: the image builds, ships production files only and delivers');
  } finally {
    if (keep) process.stdout.write(`image: kept ${work}\n`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `image: FAILED: ${error instanceof ImageCheckError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
