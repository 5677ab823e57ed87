/**
 * A Redis that may evict keys is refused at start by every process that writes jobs or takes
 * them (import, serve, worker): exit 1, naming the setting and the fix. One that keeps nothing on
 * disk (like the test Redis) only gets a warning.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeArgsOf, RedisServer, useTempDirs } from '@ghl-ingest/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const tempDir = useTempDirs();
const dir = tempDir('ghl-evicting-test-');
const input = join(dir, 'one.ndjson');
writeFileSync(input, `${JSON.stringify({ locationId: 'locA', type: 'SMS', contactId: 'c1', message: 'm1', altId: 'a1' })}\n`);

/** Runs a root script (`ingest`, `worker`) to its end; its exit code and what it wrote. */
async function run(script: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [...nodeArgsOf(script), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

describe('a Redis that may evict keys', () => {
  let server: RedisServer;
  let env: Record<string, string>;
  beforeAll(async () => {
    server = await RedisServer.start({ args: ['--maxmemory-policy', 'volatile-lru'] });
    env = { REDIS_URL: server.url, QUEUE_PREFIX: `evict${process.pid}`, GHL_TOKEN: 't', ADMIN_PORT: '0', INTAKE_PORT: '0' };
  });
  afterAll(async () => {
    await server.stop();
  });

  it.each([
    ['ingest import', 'ingest', ['import', input]],
    ['ingest serve', 'ingest', ['serve']],
    ['worker', 'worker', []],
  ] as const)('%s stops with exit 1 and says how to fix it', async (_name, script, args) => {
    const { code, output } = await run(script, [...args], env);
    expect(output).toMatch(/maxmemory-policy volatile-lru/);
    expect(output).toMatch(/maxmemory-policy noeviction/);
    expect(code).toBe(1);
  });
});

describe('a Redis that keeps nothing on disk', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('is used, with a warning', async () => {
    const { code, output } = await run('ingest', ['import', input], { REDIS_URL: server.url, QUEUE_PREFIX: `disk${process.pid}` });
    expect(output).toMatch(/warning: Redis keeps nothing on disk/);
    expect(code).toBe(0);
  });
});
