/**
 * Local attachment files on their way to HighLevel. `ingest import` reads each file once and
 * stores its bytes in Redis under their SHA-256 (`file:<sha256>`, kept `ttlMs`, default 30 days,
 * renewed by every import that names it), so that a worker on any host can upload it right
 * before its message's post. The same file named by many messages is stored once.
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from './connection.ts';

export const FILE_TTL_MS = 30 * 24 * 3_600_000;

export function fileKey(prefix: string, sha256: string): string {
  return `${prefix}:file:${sha256}`;
}

export function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class FileStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #ttlMs: number;

  constructor(redis: RedisClient, prefix: string, ttlMs: number = FILE_TTL_MS) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#ttlMs = ttlMs;
  }

  /** Stores the bytes (once per content) and returns their SHA-256. */
  async put(bytes: Buffer): Promise<string> {
    const sha256 = sha256Of(bytes);
    const key = fileKey(this.#prefix, sha256);
    // Renewed without rewriting what is there: many messages may name one file.
    if ((await this.#redis.pexpire(key, this.#ttlMs)) === 0) await this.#redis.set(key, bytes, 'PX', this.#ttlMs);
    return sha256;
  }

  /** The bytes stored under `sha256`, or undefined when they are gone (expired, or Redis lost them). */
  async get(sha256: string): Promise<Buffer | undefined> {
    return (await this.#redis.getBuffer(fileKey(this.#prefix, sha256))) ?? undefined;
  }
}
