import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const DEMO = resolve(import.meta.dirname, '../../../scripts/demo.ts');

describe('pnpm demo (smoke test on the first 400 rows of the sample)', () => {
  it('runs end to end: imports, delivers, dead-letters, reports, and cleans up', () => {
    const r = spawnSync(process.execPath, [DEMO], {
      env: { ...process.env, DEMO_ROWS: '400', REDIS_URL: 'redis://127.0.0.1:1' }, // no Redis there: it starts its own
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.stderr).not.toMatch(/Error|ERR_/);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('(started for the demo)');
    expect(r.stdout).toMatch(/delivered\s+\d{3} messages; HighLevel saw 0 duplicates/);
    expect(r.stdout).toMatch(/rejected\s+4 rows/);
    expect(r.stdout).toMatch(/permanent \(400\): HighLevel refused the message \(400\): Invalid conversationProviderId/);
    expect(r.stdout).toContain('pnpm ingest status');
  }, 150_000);
});
