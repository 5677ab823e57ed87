/**
 * A `redis-server` of a test's own: on a free port, in a temp dir, killed with the test. Used when
 * no REDIS_URL is given, and by tests that must kill or restart Redis (with AOF on, say).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

export interface RedisServerOptions {
  /** Default: a free port. Kept across restarts. */
  port?: number;
  /** Append-only file on, with this fsync policy. Default: off (nothing kept on disk). */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** More `redis-server` arguments, e.g. `['--maxmemory', '64mb']`. */
  args?: string[];
  /** The binary. Default `redis-server` from PATH. */
  binary?: string;
}

export class RedisServer {
  readonly port: number;
  readonly dir: string;
  #options: RedisServerOptions;
  #child: ChildProcess | undefined;
  #log = '';

  private constructor(port: number, dir: string, options: RedisServerOptions) {
    this.port = port;
    this.dir = dir;
    this.#options = options;
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = await mkdtemp(join(tmpdir(), 'ghl-redis-'));
    for (let attempt = 1; ; attempt += 1) {
      const server = new RedisServer(options.port ?? (await freePort()), dir, options);
      try {
        await server.#spawn();
        return server;
      } catch (error) {
        // A free port is only free until someone binds it: test files run side by side, and a
        // cluster's bus port (its port + 10,000) is not one freePort() knows of. Another port, then.
        if (options.port !== undefined || attempt === 5 || !isPortTaken(error)) {
          await rm(dir, { recursive: true, force: true });
          throw error;
        }
      }
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The last lines redis-server wrote (its log). */
  get output(): string {
    return this.#log;
  }

  /** Whether the process is running. */
  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Kills it the hard way (SIGKILL): what a crash looks like; the AOF keeps what it had synced. */
  async kill(): Promise<void> {
    await this.#stop('SIGKILL');
  }

  /**
   * The append-only file Redis is writing now (Redis 7 keeps a base file and increments, named in
   * a manifest): what a crash can cut short. Undefined without AOF.
   */
  appendOnlyFile(): string | undefined {
    const dir = join(this.dir, 'appendonlydir');
    let manifest: string;
    try {
      manifest = readFileSync(join(dir, 'appendonly.aof.manifest'), 'utf8');
    } catch {
      return undefined;
    }
    const incr = manifest
      .split('\n')
      .filter((l) => / type i\b/.test(l))
      .at(-1);
    const name = /^file (\S+)/.exec(incr ?? '')?.[1];
    return name === undefined ? undefined : join(dir, name);
  }

  /** Starts it again on the same port and dir (so it reloads its AOF if it has one). */
  async restart(): Promise<void> {
    if (this.running) await this.#stop('SIGTERM');
    await this.#spawn();
  }

  /** Stops it and removes its dir. */
  async stop(): Promise<void> {
    await this.#stop('SIGKILL');
    await rm(this.dir, { recursive: true, force: true });
  }

  async #spawn(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--save',
      '',
      '--daemonize',
      'no',
      '--protected-mode',
      'no',
      ...(this.#options.appendfsync === undefined ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', this.#options.appendfsync]),
      ...(this.#options.args ?? []),
    ];
    const child = spawn(this.#options.binary ?? 'redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#log = '';
    const keep = (chunk: Buffer) => {
      this.#log = (this.#log + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const spawnError = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => {
        reject(new Error(`redis-server exited with ${String(code)} on start:\n${this.#log}`));
      });
    });
    await Promise.race([waitForPing(this.url), spawnError]);
  }

  async #stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.running) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }
}

/** Resolves once Redis at `url` answers PING; rejects after `timeoutMs`. */
export async function waitForPing(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`no Redis answered at ${url}`, { cause: error });
    } finally {
      client.disconnect();
    }
    await sleep(25);
  }
}

/** A TCP port that was free a moment ago. */
/** Whether a start failed because its port was taken (redis-server's own words). */
export function isPortTaken(error: unknown): boolean {
  return error instanceof Error && error.message.includes('Address already in use');
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}
