import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { locationQueueName, ProducerLocations, readySetKeys } from '@ghl-ingest/queue';
import { useRedis } from '@ghl-ingest/testing';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';

const MAIN = resolve(import.meta.dirname, '../src/main.ts');

describe('ingest resume', () => {
  const redis = useRedis();

  function ingest(...args: string[]) {
    return spawnSync(process.execPath, [MAIN, ...args], {
      env: { ...process.env, ...redis.env },
      encoding: 'utf8',
    });
  }

  it('resumes a paused location and clears its reason', async () => {
    const queue = new Queue(locationQueueName('locA'), { connection: redis.client(), prefix: redis.prefix });
    const state = new ProducerLocations(redis.client(), { prefix: redis.prefix });
    await state.pause('locA', 'token rejected (401)');
    const r = ingest('resume', 'locA');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('location locA resumed (it was paused: token rejected (401))');
    expect(await queue.isPaused()).toBe(false);
    expect(await state.hold('locA')).toBeUndefined();
    // Due again in the ready set, so a worker takes it.
    expect(await redis.admin.zscore(readySetKeys(redis.prefix).ready, 'locA')).not.toBeNull();
    await queue.close();
  });

  it('refuses a malformed location id', () => {
    const r = ingest('resume', 'loc:A');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('is not a location id');
  });

  it('an unknown command fails with exit 1', () => {
    const r = ingest('frobnicate');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
  });
});
