/**
 * How the root package.json starts a process (`pnpm worker`, `pnpm ingest`): tests, the chaos
 * suite and the benchmarks start processes with exactly these Node flags, so that what they
 * measure is what a user runs.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../../..');

/** The arguments after `node` of a root script such as `worker`, with the script path absolute. */
export function nodeArgsOf(script: string): string[] {
  const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const command = pkg.scripts[script];
  if (command?.startsWith('node ') !== true) throw new Error(`package.json has no "node ..." script named ${script}`);
  return command
    .slice('node '.length)
    .split(/\s+/)
    .map((arg) => (arg.startsWith('-') ? arg : resolve(ROOT, arg)));
}
