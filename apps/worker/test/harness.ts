/**
 * What every worker integration test needs: a stand-in HighLevel, a tokens file, settings on the
 * test's own Redis prefix, captured logs, an enqueuer, and workers (in-process or child processes)
 * that are all closed before useRedis() checks for leaked connections.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { FakeHighLevel, type FakeHighLevelOptions } from '@ghl-ingest/fake-api';
import {
  createLogger,
  createRedis,
  DeadLetters,
  type RedisClient,
  Enqueuer,
  loadConfig,
  LocationQueues,
  LocationReader,
  ProducerLocations,
  type Config,
  type DeadLetterRecord,
  type Logger,
} from '@ghl-ingest/queue';
import { normalizeRecord, toJobData, type JobData, type JobSource } from '@ghl-ingest/schema';
import { nodeArgsOf, pendingJobs, settled, type RedisTestContext } from '@ghl-ingest/testing';
import type { Queue } from 'bullmq';
import { afterEach } from 'vitest';
import { startWorker, type RunningWorker, type WorkerParts } from '../src/worker.ts';

/** Secrets that must never show up in Redis or logs. */
export const TOKENS = { locA: 'secret-token-A-5b1f0c', locB: 'secret-token-B-93ad27', locC: 'secret-token-C-e0417a' };
const FAKE_TOKENS = Object.fromEntries(Object.entries(TOKENS).map(([loc, token]) => [token, loc]));

/** The Redis a harness runs on: one Redis or a cluster (useRedis gives both). */
export type HarnessRedis = Pick<RedisTestContext, 'prefix' | 'env' | 'target'>;

export interface HarnessOptions {
  fake?: FakeHighLevelOptions;
  env?: Record<string, string>;
}

export class Harness {
  readonly fake: FakeHighLevel;
  readonly config: Config;
  readonly env: Record<string, string>;
  readonly logs: string[] = [];
  readonly tokensFile: string;
  readonly redis: RedisClient;
  readonly enqueuer: Enqueuer;
  readonly deadLetters: DeadLetters;
  /** The locations' state, as `status` reads it. */
  readonly state: LocationReader;
  /** What a person does to locations (`ingest resume`). */
  readonly locations: ProducerLocations;
  #workers: RunningWorker[] = [];
  #children: ChildProcess[] = [];
  #queues: LocationQueues;
  #dir: string;

  private constructor(fake: FakeHighLevel, redisCtx: HarnessRedis, options: HarnessOptions) {
    this.fake = fake;
    this.#dir = mkdtempSync(join(tmpdir(), 'ghl-worker-test-'));
    this.tokensFile = join(this.#dir, 'tokens.json');
    writeFileSync(this.tokensFile, JSON.stringify(TOKENS));
    this.env = {
      ...redisCtx.env,
      GHL_API_BASE_URL: fake.url,
      GHL_TOKENS_FILE: this.tokensFile,
      GHL_MAX_ATTEMPTS: '5',
      HTTP_TIMEOUT_MS: '2000',
      LOG_LEVEL: 'info',
      WORKER_LOCK_MS: '2000',
      ADMIN_PORT: '0',
      ...options.env,
    };
    this.config = loadConfig(this.env);
    this.redis = createRedis(redisCtx.target, 'worker', `${redisCtx.prefix}:harness`);
    this.enqueuer = new Enqueuer(this.redis, this.config.queuePrefix, this.config.maxAttempts);
    this.deadLetters = new DeadLetters(this.redis, this.config.queuePrefix);
    this.state = new LocationReader(this.redis, { prefix: this.config.queuePrefix });
    this.locations = new ProducerLocations(this.redis, { prefix: this.config.queuePrefix });
    // Kept for the test's length; a queue's errors reach the test through the command that failed.
    this.#queues = new LocationQueues({ connection: this.redis, prefix: this.config.queuePrefix });
  }

  static async create(redisCtx: HarnessRedis, options: HarnessOptions = {}): Promise<Harness> {
    const fake = await FakeHighLevel.start({ tokens: FAKE_TOKENS, ...options.fake });
    return new Harness(fake, redisCtx, options);
  }

  /** A logger writing into `logs` (a test that prints them on failure may want `debug`). */
  logger(level = 'info'): Logger {
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        this.logs.push(chunk.toString());
        done();
      },
    });
    return createLogger(level, 'worker', sink);
  }

  /** A worker in this process, logging into `logs`, with fast backoff unless told otherwise. */
  async worker(parts: Partial<WorkerParts> = {}): Promise<RunningWorker> {
    const worker = await startWorker(this.config, {
      logger: this.logger(),
      backoff: { baseMs: 20, capMs: 200 },
      ...parts,
    });
    this.#workers.push(worker);
    return worker;
  }

  /** `pnpm worker` as a child process on these settings (less those named in `unset`); its stdout goes into `logs`. */
  spawnWorker(env: Record<string, string> = {}, unset: string[] = []): ChildProcess {
    const all = Object.fromEntries(Object.entries({ ...process.env, ...this.env, ...env }).filter(([name]) => !unset.includes(name)));
    const child = spawn(process.execPath, nodeArgsOf('worker'), {
      env: all,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (chunk: Buffer) => this.logs.push(chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => this.logs.push(chunk.toString()));
    this.#children.push(child);
    return child;
  }

  /**
   * Gives each of these locations a token of its own, equal to its id, in the tokens file (read
   * when a worker starts); run the stand-in with `tokens: null`, which takes a token as its location.
   */
  tokenPerLocation(locationIds: string[]): void {
    writeFileSync(this.tokensFile, JSON.stringify(Object.fromEntries(locationIds.map((id) => [id, id]))));
  }

  /** Normalises and enqueues records (all must be valid). */
  async send(records: Record<string, unknown>[], source: JobSource = 'backfill'): Promise<JobData[]> {
    const jobs = records.map((record, i) => {
      const r = normalizeRecord(record);
      if (!r.ok) throw new Error(`record ${i} is invalid: ${JSON.stringify(r.issues)}`);
      return toJobData(r.record, source);
    });
    await this.enqueuer.enqueue(jobs);
    return jobs;
  }

  queue(locationId: string): Queue {
    return this.#queues.get(locationId);
  }

  /** Jobs of the location not finished yet (waiting, active, delayed, prioritized). */
  async pending(locationId: string): Promise<number> {
    return pendingJobs(this.queue(locationId));
  }

  /** Waits until the given locations have nothing pending. */
  async settled(locationIds: string[], timeoutMs = 20_000): Promise<void> {
    await settled(locationIds, (id) => this.pending(id), timeoutMs);
  }

  async deadLettered(): Promise<DeadLetterRecord[]> {
    return this.deadLetters.all();
  }

  async close(): Promise<void> {
    for (const child of this.#children) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
    }
    await Promise.all(this.#workers.map((w) => w.close(1_000)));
    await this.#queues.close();
    await this.enqueuer.close();
    await this.deadLetters.close();
    await this.redis.quit();
    await this.fake.close();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** A Harness per test, closed before useRedis() checks for leaks (hooks run in reverse order). */
export function useHarness(redisCtx: RedisTestContext): (options?: HarnessOptions) => Promise<Harness> {
  let current: Harness[] = [];
  afterEach(async () => {
    await Promise.all(current.map((h) => h.close()));
    current = [];
  });
  return async (options) => {
    const h = await Harness.create(redisCtx, options);
    current.push(h);
    return h;
  };
}

export function sms(i: number, locationId = 'locA', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { locationId, type: 'SMS', contactId: `contact-${i}`, message: `message ${i}`, altId: `${locationId}-m${i}`, ...extra };
}

export { until } from '@ghl-ingest/testing';
