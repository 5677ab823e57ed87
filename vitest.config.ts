import { defineConfig } from 'vitest/config';
import SlowestFirst from './vitest.sequencer.ts';

// One vitest run for the workspace. Workspace packages export their TypeScript sources
// (Node 24 strips types natively), so tests need no build step.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
    sequence: { sequencer: SlowestFirst },
    // The cluster stage runs three files at a time (`--maxWorkers=3` in package.json: a project
    // found by a glob does not inherit this file's maxWorkers). This stage runs one at a time:
    // three at once made timing-bound rate-limit tests fail about one run in three.
    reporters: ['default', 'json'],
    // Read by .ci/run to print one plain "N passed, N failed" line.
    outputFile: { json: 'node_modules/.cache/vitest-report.json' },
  },
});
