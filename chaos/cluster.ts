/**
 * The whole product as users run it, for the chaos suite: a Redis of the scenario's own (AOF on
 * when asked), or a Redis Cluster of its own (3 masters, 3 replicas, AOF everysec), the HighLevel stand-in as its own process (driven through its admin API), `pnpm
 * worker` processes, `ingest import` and `ingest serve`. Every process logs into a file in the
 * scenario's directory, so the logs can be searched for secrets afterwards. `stop()` ends all of it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes, randomInt } from 'node:crypto';
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ConfigPatch, FakeStats, ReceivedMessage, StoredContact, UploadRecord } from '@ghl-ingest/fake-api';
import { createRedis, DeadLetters, LocationQueues, type DeadLetterRecord, type RedisClient } from '@ghl-ingest/queue';
import { nodeArgsOf, pendingJobs, RedisCluster, RedisServer, settled, type RedisServerOptions } from '@ghl-ingest/testing';
import type { Queue } from 'bullmq';

const ROOT = resolve(import.meta.dirname, '..');
const FAKE_MAIN = join(ROOT, 'packages/fake-api/src/main.ts');
/** What `pnpm ingest` runs with (package.json): the importer is held to its production heap. */

export const PREFIX = 'chaos';

/** The marketplace app HighLevel knows in OAuth scenarios. */
const OAUTH_APP = { clientId: 'chaos-app', clientSecret: 'chaos-app-secret-91c2' };

export interface ClusterOptions {
  locations: string[];
  /** Redis with an append-only file and this fsync policy (default: none, as in the unit tests). */
  appendfsync?: RedisServerOptions['appendfsync'];
  /** On a Redis Cluster of 3 masters and 3 replicas (AOF everysec), reached by REDIS_CLUSTER_NODES only. */
  redisCluster?: boolean;
  /**
   * As a marketplace app: no static tokens anywhere; each location's OAuth refresh token from the
   * stand-in, seeded with `ingest auth import` (`authorise()`), access tokens living `accessTtlMs`.
   */
  oauth?: { accessTtlMs: number };
  /** The stand-in's behaviour from the start (limits, latency, faults). */
  api?: ConfigPatch;
  /** Settings for every product process, over the defaults below. */
  env?: Record<string, string>;
}

/** A child process of the scenario, with its log file. */
export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly log: string;
  /** Resolves with the exit code (or signal name) once it has exited. */
  readonly exited: Promise<number | string>;
}

export class Cluster {
  readonly dir: string;
  readonly #redis: RedisServer | RedisCluster;
  readonly api: StandIn;
  readonly locations: string[];
  /** Location → its HighLevel token (the secrets that must not leak). */
  readonly tokens: Record<string, string>;
  /** Tokens replaced by `rotateToken` (still secrets). */
  readonly retiredTokens: string[] = [];
  readonly tokensFile: string;
  readonly env: Record<string, string>;
  /** The test's own connection (waits out Redis restarts, like a worker's). */
  readonly client: RedisClient;
  readonly procs: Proc[] = [];
  /** Redis restarts are part of the scenarios: the queues' errors are ignored (the default). */
  readonly #queues: LocationQueues;
  #dlq: DeadLetters;
  #seq = 0;
  #oauth = false;

  private constructor(dir: string, redis: RedisServer | RedisCluster, api: StandIn, options: ClusterOptions, tokens: Record<string, string>) {
    this.dir = dir;
    this.#redis = redis;
    this.api = api;
    this.locations = options.locations;
    this.tokens = tokens;
    this.tokensFile = join(dir, 'tokens.json');
    writeFileSync(this.tokensFile, JSON.stringify(tokens));
    this.env = {
      // On a cluster, REDIS_URL names a port where nothing listens: only REDIS_CLUSTER_NODES may work.
      ...(redis instanceof RedisCluster ? { REDIS_URL: 'redis://127.0.0.1:1', REDIS_CLUSTER_NODES: redis.nodesSetting } : { REDIS_URL: redis.url }),
      QUEUE_PREFIX: PREFIX,
      GHL_API_BASE_URL: api.url,
      GHL_TOKENS_FILE: this.tokensFile,
      GHL_RATE_LIMIT_MAX: '100',
      GHL_RATE_LIMIT_WINDOW_MS: '1000',
      HTTP_TIMEOUT_MS: '1000',
      WORKER_LOCK_MS: '2000',
      SHUTDOWN_TIMEOUT_MS: '5000',
      LOG_LEVEL: 'info',
      ADMIN_PORT: '0',
      DASHBOARD_USER: 'ops',
      DASHBOARD_PASSWORD: 'chaos-dashboard-password',
      INTAKE_TOKEN: 'chaos-intake-token-7f3e1d',
      ...(options.oauth === undefined
        ? {}
        : {
            GHL_TOKENS_FILE: '',
            GHL_CLIENT_ID: OAUTH_APP.clientId,
            GHL_CLIENT_SECRET: OAUTH_APP.clientSecret,
            GHL_TOKEN_KEY: randomBytes(32).toString('base64'),
          }),
      ...options.env,
    };
    this.#oauth = options.oauth !== undefined;
    this.client = createRedis(
      redis instanceof RedisCluster ? { redisUrl: '', redisClusterNodes: redis.nodesSetting.split(',') } : redis.url,
      'worker',
      `${PREFIX}:chaos-test`,
    );
    this.client.on('error', () => undefined);
    this.#dlq = new DeadLetters(this.client, PREFIX);
    this.#dlq.queue.on('error', () => undefined);
    this.#queues = new LocationQueues({ connection: this.client, prefix: PREFIX });
  }

  static async start(options: ClusterOptions): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), 'ghl-chaos-'));
    const tokens = Object.fromEntries(options.locations.map((l, i) => [l, `ghl-secret-${l}-${(0x5eed00 + i * 7919).toString(16)}`]));
    const redis =
      options.redisCluster === true
        ? await RedisCluster.start()
        : await RedisServer.start({
            // No AOF rewrites during a scenario: the file that a crash cuts short stays the one file.
            ...(options.appendfsync === undefined ? {} : { appendfsync: options.appendfsync, args: ['--auto-aof-rewrite-percentage', '0'] }),
          });
    // HighLevel's budget as the workers are told it (GHL_RATE_LIMIT_* below), unless a scenario says otherwise.
    const apiConfig: ConfigPatch = {
      ...options.api,
      limits: { max: 100, windowMs: 1000, ...options.api?.limits },
      ...(options.oauth === undefined ? {} : { oauth: { ...OAUTH_APP, accessTtlMs: options.oauth.accessTtlMs } }),
    };
    // As a marketplace app, HighLevel knows no static token: only the OAuth access tokens it grants.
    const staticTokens = options.oauth === undefined ? Object.fromEntries(Object.entries(tokens).map(([l, t]) => [t, l])) : {};
    const api = await StandIn.start(dir, staticTokens, apiConfig);
    return new Cluster(dir, redis, api, options, tokens);
  }

  /** As a marketplace app: HighLevel authorises every location, and `ingest auth import` seeds the refresh tokens. */
  async authorise(): Promise<void> {
    const lines = await Promise.all(
      this.locations.map(async (locationId) =>
        JSON.stringify({ locationId, refreshToken: (await this.api.authorise({ kind: 'location', id: locationId })).refreshToken }),
      ),
    );
    const file = join(this.dir, 'oauth-seed.jsonl');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const { code, output } = await this.ingestToEnd(['auth', 'import', file]);
    if (code !== 0) throw new Error(`ingest auth import exited ${String(code)}: ${output}`);
  }

  /** Every secret that must not leak: HighLevel tokens (static, retired, and every OAuth token issued), the intake's and the dashboard's. */
  async secrets(): Promise<string[]> {
    return [
      ...(this.#oauth ? [] : Object.values(this.tokens)),
      ...this.retiredTokens,
      ...(this.#oauth ? await this.api.issued() : []),
      this.env.INTAKE_TOKEN ?? '',
      this.env.DASHBOARD_PASSWORD ?? '',
      this.env.GHL_TOKEN_KEY ?? '',
    ].filter((s) => s !== '');
  }

  /** The scenario's one Redis (not on a cluster). */
  get redis(): RedisServer {
    if (this.#redis instanceof RedisCluster) throw new Error('this scenario runs on a Redis Cluster: use redisCluster');
    return this.#redis;
  }

  /** The scenario's Redis Cluster (when started with `redisCluster`). */
  get redisCluster(): RedisCluster {
    if (!(this.#redis instanceof RedisCluster)) throw new Error('this scenario runs on one Redis: use redis');
    return this.#redis;
  }

  /**
   * A new token for a location, as an operator would roll it out: HighLevel knows it (and no
   * longer the old one), the tokens file holds it, and every worker is sent SIGHUP to reload.
   */
  async rotateToken(locationId: string, token: string): Promise<void> {
    const old = this.tokens[locationId];
    if (old !== undefined) this.retiredTokens.push(old);
    this.tokens[locationId] = token;
    await this.api.configure({ tokens: { ...(old === undefined ? {} : { [old]: null }), [token]: locationId } });
    writeFileSync(this.tokensFile, JSON.stringify(this.tokens));
    for (const w of this.workers()) w.child.kill('SIGHUP');
  }

  /** `pnpm worker`. */
  spawnWorker(env: Record<string, string> = {}): Proc {
    return this.#spawn('worker', nodeArgsOf('worker'), env);
  }

  /** `pnpm ingest <args>`, running. */
  ingest(args: string[], env: Record<string, string> = {}): Proc {
    return this.#spawn(`ingest-${args[0] ?? ''}`, [...nodeArgsOf('ingest'), ...args], env);
  }

  /** `pnpm ingest <args>` to its end: exit code and output. */
  async ingestToEnd(args: string[], env: Record<string, string> = {}): Promise<{ code: number | string; output: string }> {
    const p = this.ingest(args, env);
    const code = await p.exited;
    return { code, output: readFileSync(p.log, 'utf8') };
  }

  /** `ingest serve` on a free port; resolves with its URL once it listens. */
  async startIntake(): Promise<{ proc: Proc; url: string }> {
    const proc = this.ingest(['serve', '--port', '0']);
    const url = await firstMatch(proc, /intake listening on (\S+)/);
    return { proc, url };
  }

  /** SIGKILL (or another signal), and waits for the exit. */
  async kill(proc: Proc, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | string> {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
    return proc.exited;
  }

  /** SIGKILLs a running worker picked at random and starts another in its place (with `env`). */
  async replaceRandomWorker(env: Record<string, string> = {}): Promise<void> {
    const running = this.workers();
    const victim = running[randomInt(Math.max(1, running.length))];
    if (victim === undefined) throw new Error('no worker to kill');
    const ended = await this.kill(victim);
    if (ended !== 'SIGKILL') throw new Error(`${victim.name} ended by ${String(ended)} before it was killed`);
    this.spawnWorker(env);
  }

  /** Running workers. */
  workers(): Proc[] {
    return this.procs.filter((p) => p.name.startsWith('worker') && p.child.exitCode === null && p.child.signalCode === null);
  }

  /** A worker's admin URL (it logs it when started). */
  async adminUrl(proc: Proc): Promise<string> {
    const pattern = /"admin":"([^"]+)"/;
    const logged = pattern.exec(readFileSync(proc.log, 'utf8'))?.[1];
    return logged ?? firstMatch(proc, pattern);
  }

  queue(locationId: string): Queue {
    return this.#queues.get(locationId);
  }

  /** Jobs of the location not finished: waiting (while paused too), active, delayed, prioritized. */
  async pending(locationId: string): Promise<number> {
    return pendingJobs(this.queue(locationId));
  }

  /** Waits until the locations have nothing pending. */
  async settled(locationIds: string[] = this.locations, timeoutMs = 90_000): Promise<void> {
    await settled(locationIds, (id) => this.pending(id), timeoutMs, 100);
  }

  async deadLetters(): Promise<DeadLetterRecord[]> {
    return this.#dlq.all();
  }

  /** Stops the workers with SIGTERM (they must exit 0), then everything else. */
  async stopWorkers(): Promise<(number | string)[]> {
    return Promise.all(this.workers().map((w) => this.kill(w, 'SIGTERM')));
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => this.kill(p)));
    await this.#queues.close();
    await this.#dlq.close().catch(() => undefined);
    this.client.disconnect();
    await this.api.stop();
    await this.#redis.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  #spawn(name: string, args: string[], env: Record<string, string>): Proc {
    this.#seq += 1;
    const log = join(this.dir, `${String(this.#seq).padStart(2, '0')}-${name}.log`);
    const child = spawn(process.execPath, args, { env: { ...process.env, ...this.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    const file = createWriteStream(log);
    child.stdout.pipe(file, { end: false });
    child.stderr.pipe(file, { end: false });
    const exited = once(child, 'exit').then(async (args) => {
      const [code, signal] = args as [number | null, NodeJS.Signals | null];
      await new Promise((r) => file.end(r));
      return code ?? signal ?? 'unknown';
    });
    const proc: Proc = { name, child, log, exited };
    this.procs.push(proc);
    return proc;
  }

  /** The workers' log records whose message contains `text` (pino JSON lines). */
  workerLogs(text: string): ({ time: string } & Record<string, unknown>)[] {
    return this.logFiles()
      .filter((f) => f.includes('-worker'))
      .flatMap((f) => readFileSync(f, 'utf8').split('\n'))
      .filter((line) => line.includes(text))
      .map((line) => JSON.parse(line) as { time: string } & Record<string, unknown>);
  }

  /** Every log file the scenario's processes wrote. */
  logFiles(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.log'))
      .map((f) => join(this.dir, f));
  }
}

/** The stand-in, as a process of its own (`pnpm fake-api`), driven over its admin API. */
export class StandIn {
  readonly url: string;
  readonly #proc: ChildProcess;

  private constructor(url: string, proc: ChildProcess) {
    this.url = url;
    this.#proc = proc;
  }

  static async start(dir: string, tokens: Record<string, string>, config: ConfigPatch): Promise<StandIn> {
    const tokensFile = join(dir, 'api-tokens.json');
    writeFileSync(tokensFile, JSON.stringify(tokens));
    const child = spawn(process.execPath, [FAKE_MAIN, '--port', '0', '--tokens', tokensFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    const proc: Proc = { name: 'fake-api', child, log: '', exited: once(child, 'exit').then(([c]) => c as number) };
    const url = await firstMatch(proc, /fake-api listening on (\S+)/);
    const api = new StandIn(url, child);
    await api.configure(config);
    return api;
  }

  async configure(patch: ConfigPatch): Promise<void> {
    await this.#call('PATCH', 'config', patch);
  }

  /** HighLevel answers `status` to everything for `ms`. */
  async outage(ms: number, status = 503): Promise<void> {
    await this.#call('POST', 'outage', { ms, status });
  }

  /** Another app spends `count` of the location's window. */
  async spend(locationId: string, count: number): Promise<number> {
    return ((await this.#call('POST', 'spend', { locationId, count })) as { spent: number }).spent;
  }

  /** An authorisation at HighLevel (an install): a live refresh token for the owner. */
  async authorise(owner: { kind: 'location' | 'company'; id: string }): Promise<{ refreshToken: string }> {
    return (await this.#call('POST', 'oauth/authorise', owner)) as { refreshToken: string };
  }

  /** Uninstall or revoke at HighLevel: the owner's tokens stop working. */
  async revoke(owner: { kind: 'location' | 'company'; id: string }): Promise<void> {
    await this.#call('POST', 'oauth/revoke', owner);
  }

  /** Every OAuth token HighLevel issued. */
  async issued(): Promise<string[]> {
    return (await this.#call('GET', 'oauth/issued')) as string[];
  }

  async stats(): Promise<FakeStats> {
    return (await this.#call('GET', 'stats')) as FakeStats;
  }

  async messages(): Promise<ReceivedMessage[]> {
    return (await this.#call('GET', 'messages?limit=10000000')) as ReceivedMessage[];
  }

  /** The contacts upserts made, every location's. */
  async contacts(): Promise<StoredContact[]> {
    return (await this.#call('GET', 'contacts')) as StoredContact[];
  }

  /** Every file uploaded, with its URL and times. */
  async uploads(): Promise<UploadRecord[]> {
    return (await this.#call('GET', 'uploads')) as UploadRecord[];
  }

  async stop(): Promise<void> {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) return;
    const exited = once(this.#proc, 'exit');
    this.#proc.kill('SIGTERM');
    await exited;
  }

  async #call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(`${this.url}/__admin/${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(`stand-in ${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  }
}

/** The first capture of `pattern` in a process's output (stdout and stderr). */
async function firstMatch(proc: Proc, pattern: RegExp, timeoutMs = 20_000): Promise<string> {
  const { child } = proc;
  const streams = [child.stdout, child.stderr].filter((s) => s !== null);
  return new Promise<string>((resolvePromise, reject) => {
    let seen = '';
    const done = () => {
      clearTimeout(timer);
      child.off('exit', onExit);
      for (const stream of streams) stream.off('data', onData);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${proc.name}: no line matching ${String(pattern)} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onExit = (code: number | null) => {
      done();
      reject(new Error(`${proc.name} exited (${String(code)}) before printing ${String(pattern)}:\n${seen.slice(-2000)}`));
    };
    // A listener beside the pipe into the log file (readline would pause the stream when closed).
    const onData = (chunk: Buffer) => {
      seen = (seen + chunk.toString()).slice(-64_000);
      const m = pattern.exec(seen);
      if (m?.[1] !== undefined) {
        done();
        resolvePromise(m[1]);
      }
    };
    child.once('exit', onExit);
    for (const stream of streams) stream.on('data', onData);
  });
}
