/**
 * `pnpm check:image`: builds the image the way Docker would, without a Docker engine, and runs it.
 *
 * The Dockerfile is replayed by scripts/image-replay.ts (each stage a directory, this machine's
 * Node and Debian packages standing in for the base image's). Then the final stage is checked and
 * used as compose uses the image. Checked: no development package anywhere (TypeScript
 * included), the OCI labels against package.json and LICENSE, an init (tini) as the entry point of
 * the image and of every compose service, the application owned by root and not writable by the
 * runtime user, a non-root USER. Run (as the runtime user's uid and gid when the check runs as
 * root, with the image's Node at its /usr/local/bin): the runtime user's writes into the
 * application are refused; the worker's CMD and the `ingest` entry point answer `--help`; the
 * stand-in, the intake and two workers start from their compose commands as the init with Node
 * under it, a short import and an intake request are delivered, and each process stops cleanly on
 * SIGTERM sent to the init, which passes it on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, posix, resolve } from 'node:path';
import { freePort, until } from '@ghl-ingest/testing';
import { Redis } from 'ioredis';
import { parse as parseYaml } from 'yaml';
import { asRoot, buildArgs, fail, idsOf, ImageCheckError, replay, run, step, type Ids, type Stage } from './image-replay.ts';

const root = resolve(import.meta.dirname, '..');
const keep = process.argv.includes('--keep');

interface PackageJson {
  name: string;
  version?: string;
  description?: string;
  license?: string;
  repository?: { url?: string };
}

const readPackage = (path: string) => JSON.parse(readFileSync(join(root, path), 'utf8')) as PackageJson;

/** Packages only development needs; none may be anywhere in the image, at any depth. */
const DEVELOPMENT_PACKAGES = new Set([
  'typescript',
  'typescript-eslint',
  'vitest',
  'eslint',
  'prettier',
  'testcontainers',
  'publint',
  '@arethetypeswrong/cli',
  'fast-check',
]);

/** Every installed package directory or link named in DEVELOPMENT_PACKAGES under `dir`, links not followed. */
function developmentPackages(dir: string, rel = ''): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
    const parent = basename(rel);
    // node_modules/<name> (a package or pnpm's link to one), and pnpm's store entry .pnpm/<name>@<version>[_peers].
    const name = parent === 'node_modules' ? entry.name : parent === '.pnpm' ? /^(@?[^@]+)@/.exec(entry.name)?.[1]?.replace('+', '/') : undefined;
    if (name !== undefined && DEVELOPMENT_PACKAGES.has(name)) found.push(path);
    else if (entry.isDirectory()) found.push(...developmentPackages(dir, path));
  }
  return found;
}

/** Bytes and files under `dir`, each hard-linked file once. */
function sizeOf(dir: string): { bytes: number; files: number } {
  const seen = new Set<number>();
  let bytes = 0;
  for (const f of readdirSync(dir, { recursive: true }) as string[]) {
    const st = lstatSync(join(dir, f));
    if (!st.isFile() || seen.has(st.ino)) continue;
    seen.add(st.ino);
    bytes += st.size;
  }
  return { bytes, files: seen.size };
}

/** What the image must not carry: development packages, tests, benchmarks, the chaos suite. */
function checkProductionOnly(image: Stage): void {
  const app = join(image.dir, image.workdir);
  const found = developmentPackages(app).slice(0, 10);
  for (const dir of ['chaos', 'bench', '.git', 'packages/testing']) if (existsSync(join(app, dir))) found.push(dir);
  const tests = (readdirSync(app, { recursive: true }) as string[]).filter((f) => !f.includes('node_modules') && /\.test\.ts$/.test(f));
  found.push(...tests.slice(0, 5));
  if (found.length > 0) fail(`the image ships development files: ${found.join(', ')}`);
  const { bytes, files } = sizeOf(app);
  const deps = sizeOf(join(app, 'node_modules'));
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  step(
    `production files only (no ${[...DEVELOPMENT_PACKAGES].join(', ')}): ${image.workdir} is ${mb(bytes)} in ${files} files, node_modules ${mb(deps.bytes)}`,
  );
}

/** The OCI labels, each what package.json, LICENSE and the build argument say. */
function checkLabels(image: Stage, services: Record<string, ComposeService>): void {
  const rootPackage = readPackage('package.json');
  const cli = readPackage('apps/cli/package.json');
  const source = rootPackage.repository?.url?.replace(/^git\+/, '').replace(/\.git$/, '');
  const expected: Record<string, string | undefined> = {
    title: rootPackage.name,
    description: rootPackage.description,
    version: cli.version,
    source,
    licenses: rootPackage.license,
    revision: buildArgs().REVISION ?? image.labels['org.opencontainers.image.revision'],
  };
  const wrong = Object.entries(expected)
    .filter(([key, want]) => want === undefined || want === '' || image.labels[`org.opencontainers.image.${key}`] !== want)
    .map(
      ([key, want]) => `org.opencontainers.image.${key} is ${JSON.stringify(image.labels[`org.opencontainers.image.${key}`])}, want ${JSON.stringify(want)}`,
    );
  if (wrong.length > 0) fail(`the image's labels (package.json, the root's and apps/cli's, say what they must be):\n  ${wrong.join('\n  ')}`);
  const app = join(image.dir, image.workdir);
  if (!existsSync(join(app, 'LICENSE')) || readFileSync(join(app, 'LICENSE'), 'utf8') !== readFileSync(join(root, 'LICENSE'), 'utf8')) {
    fail(`the image does not ship the repository's LICENSE in ${image.workdir}`);
  }
  const tags = Object.entries(services)
    .filter(([, s]) => s.build !== undefined && s.image !== `${rootPackage.name}:${cli.version ?? ''}`)
    .map(([name, s]) => `${name}: ${s.image ?? '(none)'}`);
  if (tags.length > 0) fail(`compose tags the image other than ${rootPackage.name}:${cli.version ?? ''}: ${tags.join(', ')}`);
  step(
    `labels: ${Object.entries(expected)
      .map(([k, v]) => `${k}=${k === 'description' ? '...' : v}`)
      .join(', ')}`,
  );
}

/** tini (from a Debian package of the final stage) is the image's entry point, and no compose service steps around it. */
function checkInit(image: Stage, services: Record<string, ComposeService>): string {
  const [init, ...initArgs] = image.entrypoint ?? [];
  if (init === undefined || basename(init) !== 'tini' || initArgs.join(' ') !== '--')
    fail(`the image's ENTRYPOINT is ${JSON.stringify(image.entrypoint)}, not ["<tini>", "--"]`);
  if (!image.systemFiles.has(init)) fail(`ENTRYPOINT ${init} is no file of a Debian package the final stage installs`);
  const around = Object.entries(services)
    .filter(([, s]) => s.build !== undefined && s.entrypoint !== undefined && s.entrypoint.slice(0, 2).join(' ') !== `${init} --`)
    .map(([name]) => name);
  if (around.length > 0) fail(`compose services replace the image's entry point and so run without ${init}: ${around.join(', ')}`);
  step(`init: ${init} (Debian's tini) is the entry point of the image and of every compose service`);
  return init;
}

/** Docker's view of ownership: root's, unless a COPY --chown gave the path to another. */
function ownerOf(image: Stage, path: string): Ids {
  const owner = image.owned.filter((o) => path === o.path || path.startsWith(`${o.path}/`)).at(-1)?.owner;
  return owner ?? { uid: 0, gid: 0 };
}

/** No file or directory of the application that the runtime user may change, from Docker's ownership and the modes on disk. */
function checkNotWritable(image: Stage): Ids {
  const user = idsOf(image.user);
  if (user.uid === 0) fail('the image runs as root: add a USER');
  const app = join(image.dir, image.workdir);
  const writable: string[] = [];
  for (const rel of ['', ...(readdirSync(app, { recursive: true }) as string[])]) {
    const st = lstatSync(join(app, rel));
    if (st.isSymbolicLink()) continue;
    const owner = ownerOf(image, posix.join(image.workdir, rel));
    const mode = st.mode;
    if ((owner.uid === user.uid && mode & 0o200) || (owner.gid === user.gid && mode & 0o020) || mode & 0o002) writable.push(rel === '' ? '.' : rel);
  }
  if (writable.length > 0)
    fail(`the runtime user ${image.user} can change the application: ${writable.slice(0, 5).join(', ')}${writable.length > 5 ? ', ...' : ''}`);
  step(`${image.workdir} is root's and read-only to ${image.user} (${user.uid}:${user.gid})`);
  return user;
}

/** The process ids whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      const stat = (() => {
        try {
          return readFileSync(`/proc/${p}/stat`, 'utf8');
        } catch {
          return ''; // gone meanwhile
        }
      })();
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
    })
    .map(Number);
}

/** The real uid of a process, from /proc. */
function uidOf(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
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

  start(command: string[], cwd: string, env: NodeJS.ProcessEnv, name: string, as?: Ids): { child: ChildProcess; output: () => string } {
    const [program = 'false', ...args] = command;
    const child = spawn(program, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], ...as });
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

/** Writes the runtime user tries in the application; each must be refused. */
const WRITE_PROBES = ['package.json', 'apps/worker/src/main.ts', '.probe', 'node_modules/.probe', 'apps/worker/src/.probe', 'node_modules/.pnpm/.probe'];
const PROBE_SCRIPT = `const fs = require('node:fs'); const done = [];
for (const p of JSON.parse(process.argv[1])) { try { fs.appendFileSync(p, ''); done.push(p); } catch (e) { if (e.code !== 'EACCES' && e.code !== 'EPERM') throw e; } }
process.stdout.write(JSON.stringify(done));`;

async function runImage(image: Stage, work: string, services: Record<string, ComposeService>, init: string, user: Ids): Promise<void> {
  const app = join(image.dir, image.workdir);
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

  // The image's Node where the node images keep it, so the runtime user can run it (this machine's may be under /root).
  const bin = join(image.dir, 'usr/local/bin');
  mkdirSync(bin, { recursive: true });
  copyFileSync(process.execPath, join(bin, 'node'));
  chmodSync(join(bin, 'node'), 0o755);
  // As root, every process runs as the image's user: the directories it needs are opened to it as the image and compose do.
  const as = asRoot ? user : undefined;
  const home = join(image.dir, 'home/node');
  const data = join(work, 'data'); // compose's ./data volume: where imports and their rejects reports are
  mkdirSync(home, { recursive: true });
  mkdirSync(data);
  chmodSync(work, 0o755);
  if (as !== undefined) for (const dir of [home, data]) lchownSync(dir, as.uid, as.gid);
  step(asRoot ? `processes run as ${user.uid}:${user.gid} (${image.user})` : `processes run as this user (not root: the check cannot switch to ${image.user})`);

  const prefix = `imgcheck${randomBytes(4).toString('hex')}`;
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const env: NodeJS.ProcessEnv = {
    PATH: `${bin}:/usr/bin:/bin`,
    ...image.env,
    HOME: home,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    // In a container tini is PID 1; here it registers as a child subreaper instead, which reaps as PID 1 does.
    TINI_SUBREAPER: '1',
  };

  const version = run(['node', '--version'], { cwd: app, env, what: 'node --version', as }).trim();
  if (version !== `v${image.from.split(':')[1]?.split('-')[0] ?? ''}`) fail(`the image's node --version is ${version}, its FROM ${image.from}`);
  if (as !== undefined) {
    // "Written" is what the user could open for writing: appending nothing changes no file.
    const written = JSON.parse(run(['node', '-e', PROBE_SCRIPT, JSON.stringify(WRITE_PROBES)], { cwd: app, env, what: 'the write probe', as })) as string[];
    for (const p of written) if (p.endsWith('.probe')) rmSync(join(app, p), { force: true });
    if (written.length > 0) fail(`the runtime user could write ${written.join(', ')} in ${image.workdir}`);
    step(`node ${version}; ${image.user}'s writes into ${image.workdir} refused (${WRITE_PROBES.length} tried)`);
  } else {
    step(`node ${version}; writes into ${image.workdir} not tried (the files are this user's: only a check run as root can be ${image.user})`);
  }

  for (const [what, command] of [
    ['the image CMD', [...(image.entrypoint ?? []), ...(image.cmd ?? [])]],
    ['the worker service', commandOfService('worker')],
    ['the ingest service', commandOfService('ingest')],
  ] as const) {
    const out = run([...command, '--help'], { cwd: app, env, what: `${what} --help (${command.join(' ')})`, as });
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
    const fake = procs.start(fakeCommand, app, env, 'fake-api', as);
    await until(() => /listening on (\S+)/.test(fake.output()), 20_000, 'the stand-in to listen');
    const fakeUrl = /listening on (\S+)/.exec(fake.output())?.[1] ?? fail('the stand-in printed no URL');
    const appEnv = { ...env, GHL_API_BASE_URL: fakeUrl, GHL_TOKEN: 'image-check-token' };

    const input = join(data, 'history.ndjson');
    const records = Array.from({ length: 20 }, (_, i) => ({
      locationId: `imgloc${i % 3}`,
      key: `img-${i}`,
      type: 'SMS',
      contactId: `c${i}`,
      message: `image check ${i}`,
      direction: 'inbound',
    }));
    writeFileSync(input, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
    run([...commandOfService('ingest'), 'import', input], { cwd: app, env: appEnv, what: 'ingest import', as });
    step('ingest import: 20 records accepted');

    const intakePort = await freePort();
    const intake = procs.start(
      commandOfService('intake'),
      app,
      { ...appEnv, INTAKE_PORT: String(intakePort), INTAKE_HOST: '127.0.0.1', INTAKE_TOKEN: 'image-check' },
      'intake',
      as,
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
    const workers = [
      procs.start(commandOfService('worker'), app, workerEnv, 'worker 1', as),
      procs.start(commandOfService('worker'), app, workerEnv, 'worker 2', as),
    ];
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

    // Each process is the init with Node under it, and Node runs as the image's user.
    const running: [string, ChildProcess][] = [
      ['fake-api', fake.child],
      ['intake', intake.child],
      ...workers.map((w, i) => [`worker ${i + 1}`, w.child] as [string, ChildProcess]),
    ];
    for (const [name, child] of running) {
      const pid = child.pid ?? fail(`${name} has no pid`);
      const exe = readlinkSync(`/proc/${pid}/exe`);
      if (exe !== realpathSync(init)) fail(`${name} runs ${exe}, not the init ${init}`);
      const kids = childrenOf(pid);
      const node = kids.length === 1 ? kids[0] : fail(`${name}: ${init} has ${kids.length} children, not Node alone`);
      if (node === undefined || basename(readlinkSync(`/proc/${node}/exe`)) !== 'node') fail(`${name}: the init's child is not node`);
      const uid = uidOf(node);
      if (uid === 0 || (as !== undefined && uid !== as.uid)) fail(`${name}: node runs as uid ${uid}, not ${image.user}`);
    }
    step(`fake-api, intake and both workers run as ${init} -> node, node as uid ${user.uid}${asRoot ? '' : ' (this user)'}`);

    for (const [i, w] of workers.entries()) await procs.stop(w.child, `worker ${i + 1}`);
    await procs.stop(intake.child, 'intake');
    await procs.stop(fake.child, 'fake-api');
    step('worker, intake and stand-in stopped cleanly on SIGTERM sent to the init');
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
    const image = replay(work);
    const services = composeServices();
    checkProductionOnly(image);
    checkLabels(image, services);
    const init = checkInit(image, services);
    const user = checkNotWritable(image);
    await runImage(image, work, services, init, user);
    step('ok: the image builds, ships production files only, is labelled, runs under tini as a non-root user who cannot change it, and delivers');
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
