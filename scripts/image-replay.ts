/**
 * The Dockerfile replayed without a Docker engine, for `pnpm check:image` (scripts/check-image.ts).
 *
 * Instruction by instruction: each stage gets its own directory as its file system, the build
 * context is the repository filtered by `.dockerignore` (Docker's own matching rules), COPY
 * copies from the context or an earlier stage (`--chown` is kept, and applied when this runs as
 * root), RUN runs in a shell in the stage's WORKDIR (global npm installs land in the stage's
 * /usr/local), ENV, ARG, LABEL, USER, ENTRYPOINT and CMD are kept. The base image is stood in for
 * by this machine's Node, which must be the very version the FROM lines pin, and its Debian
 * packages (`apt-get install` in a RUN) by this machine's, installed when missing if this runs as
 * root. ARG REVISION is the repository's HEAD, as the Dockerfile's build command passes it.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lchownSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import dockerignoreModule from '@balena/dockerignore';

const root = resolve(import.meta.dirname, '..');
export const asRoot = process.getuid?.() === 0;

interface Instruction {
  line: number;
  op: string;
  args: string;
}

export interface Ids {
  uid: number;
  gid: number;
}

export interface Stage {
  name: string;
  from: string;
  dir: string;
  workdir: string;
  env: Record<string, string>;
  /** ARG values in scope: the build argument given, else the default. */
  args: Record<string, string>;
  labels: Record<string, string>;
  user: string;
  cmd: string[] | undefined;
  entrypoint: string[] | undefined;
  /** Paths (in the image) that the stage's Debian packages installed. */
  systemFiles: Set<string>;
  /** COPY destinations (in the image) given to a user by `--chown`; everything else is root's. */
  owned: { path: string; owner: Ids }[];
}

// A CommonJS module whose types declare an ES default export: at run time the default is the factory.
const dockerignore = dockerignoreModule as unknown as typeof dockerignoreModule.default;

export class ImageCheckError extends Error {
  override name = 'ImageCheckError';
}

export function fail(message: string): never {
  throw new ImageCheckError(message);
}

export function step(message: string): void {
  process.stdout.write(`image: ${message}\n`);
}

/** As the Dockerfile's own build command passes them (`--build-arg REVISION="$(git rev-parse HEAD)"`). */
export function buildArgs(): Record<string, string> {
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' });
  return head.status === 0 ? { REVISION: head.stdout.trim() } : {};
}

/**
 * The users a stage can name: the node images' own. Their `node` user is uid and gid 1000, which
 * compose's default APP_UID:APP_GID repeats.
 */
export function idsOf(user: string): Ids {
  const [name = '', group] = user.split(':');
  const known: Record<string, number> = { root: 0, node: 1000 };
  const id = (s: string) => (/^\d+$/.test(s) ? Number(s) : (known[s] ?? fail(`USER or --chown ${user}: only root, node or numeric ids are replayed`)));
  const uid = id(name);
  return { uid, gid: group === undefined ? uid : id(group) };
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

/** `$NAME` and `${NAME}` replaced by the stage's ARG or ENV value, as Docker does in LABEL. */
function expand(value: string, stage: Stage): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a?: string, b?: string) => {
    const name = a ?? b ?? '';
    return stage.args[name] ?? stage.env[name] ?? '';
  });
}

/** `key=value` pairs of ENV and LABEL, values bare or double-quoted. */
function pairsOf(args: string): [string, string][] {
  return [...args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)].map(([, key = '', value = '']) => [
    key,
    value.startsWith('"') ? (JSON.parse(value) as string) : value,
  ]);
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

export function run(command: string[], options: { cwd: string; env: NodeJS.ProcessEnv; what: string; timeoutMs?: number; as?: Ids | undefined }): string {
  const timeout = options.timeoutMs ?? 60_000;
  const [program = 'false', ...args] = command;
  const r = spawnSync(program, args, {
    cwd: options.cwd,
    env: options.env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout,
    killSignal: 'SIGKILL',
    ...options.as,
  });
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

function chownTree(path: string, ids: Ids): void {
  lchownSync(path, ids.uid, ids.gid);
  if (lstatSync(path).isDirectory()) for (const entry of readdirSync(path)) chownTree(join(path, entry), ids);
}

/** `RUN apt-get update && apt-get install ... && rm -rf /var/lib/apt/lists/*`, the one form of system install replayed. */
const APT_RUN = /^apt-get update && apt-get install --yes --no-install-recommends ((?:[a-z0-9][a-z0-9+.-]* ?)+) && rm -rf \/var\/lib\/apt\/lists\/\*$/;

function debianInstalled(pkg: string): boolean {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  if (r.error !== undefined) fail(`the image installs Debian packages, and this machine has no dpkg to stand in for them (${r.error.message})`);
  return r.status === 0 && r.stdout === 'install ok installed';
}

/** The stage's Debian packages, stood in for by this machine's: installed here when missing (as root), their files noted. */
function standInForDebian(packages: string[], stage: Stage, where: string): void {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const pkg of packages) {
    if (!debianInstalled(pkg)) {
      if (!asRoot) fail(`${where}: this machine's Debian packages stand in for the image's, and ${pkg} is not installed: apt-get install ${pkg}`);
      step(`apt-get install ${pkg} on this machine, standing in for the image's`);
      const install = ['apt-get', 'install', '--yes', '--no-install-recommends', pkg];
      if (spawnSync(install[0] ?? '', install.slice(1), { env, stdio: 'ignore' }).status !== 0) {
        run(['apt-get', 'update'], { cwd: root, env, what: 'apt-get update', timeoutMs: 300_000 });
        run(install, { cwd: root, env, what: `apt-get install ${pkg}`, timeoutMs: 300_000 });
      }
    }
    const files = run(['dpkg-query', '-L', pkg], { cwd: root, env, what: `dpkg-query -L ${pkg}` });
    for (const file of files.split('\n')) if (file.startsWith('/')) stage.systemFiles.add(file);
  }
  step(`RUN apt-get install ${packages.join(' ')}: stood in for by this machine's`);
}

/** Replays the Dockerfile in `work` (its build context in work/context, each stage in work/stage-N); returns the final stage. */
export function replay(work: string): Stage {
  const context = join(work, 'context');
  const files = contextFiles();
  for (const f of files) {
    mkdirSync(dirname(join(context, f)), { recursive: true });
    cpSync(join(root, f), join(context, f), { verbatimSymlinks: true });
  }
  step(`build context: ${files.length} files after .dockerignore`);

  const given = buildArgs();
  const stages: Stage[] = [];
  let stage: Stage | undefined;
  for (const ins of parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'))) {
    const where = `Dockerfile line ${ins.line} (${ins.op} ${ins.args.slice(0, 60)})`;
    if (ins.op === 'FROM') {
      const [image = '', as, name] = ins.args.split(/\s+/);
      if (!image.startsWith('node:')) fail(`${where}: only node images are replayed`);
      const version = /^node:(\d+\.\d+\.\d+)-[\w.-]+$/.exec(image)?.[1];
      if (version === undefined) fail(`${where}: pin the base by Node's full version and a variant (node:24.x.y-bookworm-slim), not ${image}`);
      if (version !== process.versions.node) {
        fail(
          `${where}: the image's Node is ${version}, this machine's ${process.versions.node}, which stands in for it: ` +
            `pin the current patch (node:${process.versions.node}-...) or run the check on Node ${version}`,
        );
      }
      const dir = join(work, `stage-${stages.length}`);
      mkdirSync(join(dir, 'root'), { recursive: true });
      stage = {
        name: as?.toUpperCase() === 'AS' ? (name ?? '') : '',
        from: image,
        dir,
        workdir: '/',
        env: {},
        args: {},
        labels: {},
        user: 'root',
        cmd: undefined,
        entrypoint: undefined,
        systemFiles: new Set(),
        owned: [],
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
      case 'ENV':
        for (const [name, value] of pairsOf(ins.args)) stage.env[name] = value;
        break;
      case 'ARG': {
        const [, name = '', value] = /^(\w+)(?:=(.*))?$/.exec(ins.args) ?? fail(`${where}: cannot read the ARG`);
        stage.args[name] = given[name] ?? (value ?? '').replace(/^"|"$/g, '');
        break;
      }
      case 'LABEL':
        for (const [key, value] of pairsOf(ins.args)) stage.labels[key] = expand(value, stage);
        break;
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
        break;
      case 'COPY': {
        const words = ins.args.split(/\s+/);
        const flags = words.filter((w) => w.startsWith('--'));
        const paths = words.filter((w) => !w.startsWith('--'));
        const flag = (name: string) => flags.find((f) => f.startsWith(`--${name}=`))?.slice(name.length + 3);
        const unknown = flags.filter((f) => !/^--(from|chown)=/.test(f));
        if (unknown.length > 0) fail(`${where}: COPY ${unknown.join(' ')} is not replayed; extend scripts/image-replay.ts`);
        const fromFlag = flag('from');
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
        const chown = flag('chown');
        if (chown !== undefined) {
          const owner = idsOf(chown);
          stage.owned.push({ path: posix.resolve(stage.workdir, dest), owner });
          // As root the replay can hand the files over for real, so the runtime user's writes below meet them as Docker would.
          if (asRoot) chownTree(inStage(stage, dest), owner);
        }
        break;
      }
      case 'RUN': {
        const apt = APT_RUN.exec(ins.args.replace(/\s+/g, ' '));
        if (apt !== null) {
          standInForDebian((apt[1] ?? '').trim().split(' '), stage, where);
          break;
        }
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
        step(`RUN ${ins.args.replace(/\s+/g, ' ')}`);
        run(commandOf(ins.args), { cwd: inStage(stage, '.'), env, what: where, timeoutMs: 600_000 });
        break;
      }
      default:
        fail(`${where}: ${ins.op} is not replayed by this check; extend scripts/image-replay.ts`);
    }
  }
  if (stage === undefined) fail('the Dockerfile has no FROM');
  return stage;
}
