import { defineConfig } from 'vitest/config';
import SlowestFirst from './vitest.sequencer.ts';

// One vitest run for the workspace. Workspace packages export their TypeScript sources
// (Node 24 strips types natively), so tests need no build step.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
    sequence: { sequencer: SlowestFirst },
    // Three files at a time: `--maxWorkers=3` in package.json's test scripts (a project found by
    // a glob does not inherit this file's maxWorkers). Most files wait on timers, child processes
    // and Redis, not on the CPU: vitest's default on two cores, one file at a time, left the
    // machine nine-tenths idle.
    reporters: ['default', 'json'],
    // Read by .ci/run to print one plain "N passed, N failed" line.
    outputFile: { json: 'node_modules/.cache/vitest-report.json' },
  },
});
