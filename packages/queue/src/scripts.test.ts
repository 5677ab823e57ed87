import { describe, expect, it } from 'vitest';
import { SCRIPTS, scriptSource } from './scripts.ts';

describe('Lua scripts', () => {
  it.each(Object.entries(SCRIPTS))('%s: the header names exactly its KEYS, and includes resolve', (_name, { file, keys }) => {
    const source = scriptSource(file);
    const header = /--\[\[([\s\S]*?)\]\]/.exec(source)?.[1] ?? '';
    const named = new Set([...header.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1])));
    // A batch script names its fixed KEYS and then the per-message ones (`KEYS[n..]`).
    const fixed = keys ?? Math.max(...named);
    expect(Math.max(...named)).toBe(fixed);
    if (keys === undefined) expect(header).toMatch(new RegExp(`KEYS\\[${fixed + 1}\\.\\.\\]`));
    expect(header).toMatch(/ARGV\[1\]/);
    expect(header).toMatch(/Returns/);
    expect(source).not.toMatch(/@include/);
    // Every KEYS[n] the body uses is one the header names.
    if (keys !== undefined) for (const m of source.matchAll(/KEYS\[(\d+)\]/g)) expect(Number(m[1])).toBeLessThanOrEqual(keys);
  });

  it('includes each helper once', () => {
    // budget-load includes `now` and `day`; `day` uses `now`'s DAY_MS without including it again.
    const source = scriptSource('budget-load');
    expect(source.match(/local t = redis.call\('TIME'\)/g)).toHaveLength(1);
    expect(source.match(/local function dayOf/g)).toHaveLength(1);
  });
});
