import { defineConfig } from 'vitest/config';
import SlowestFirst from './vitest.sequencer.ts';

// One vitest run for the workspace. Workspace packages export their TypeScript sources
// (Node 24 strips types natively), so tests need no build step.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
    sequence: { sequencer: SlowestFirst },
    // Both stages run three files at a time (`--maxWorkers=3` in package.json's scripts: a
    // project found by a glob does not inherit this file's maxWorkers). On 2 cores the files
    // mostly wait on timers, child processes and Redis.
    reporters: ['default', 'json'],
    // Read by .ci/run to print one plain "N passed, N failed" line.
    outputFile: { json: 'node_modules/.cache/vitest-report.json' },
  },
});
