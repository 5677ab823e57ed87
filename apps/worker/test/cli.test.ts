import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const MAIN = resolve(import.meta.dirname, '../src/main.ts');

describe('pnpm worker', () => {
  it('stops with a message naming a bad setting', () => {
    const r = spawnSync(process.execPath, [MAIN], { env: { ...process.env, GHL_MAX_ATTEMPTS: 'many' }, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('GHL_MAX_ATTEMPTS');
  });

  it('stops with a message when the tokens file is unreadable', () => {
    const r = spawnSync(process.execPath, [MAIN], { env: { ...process.env, GHL_TOKENS_FILE: '/nonexistent/tokens.json' }, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('GHL_TOKENS_FILE /nonexistent/tokens.json');
  });
});
