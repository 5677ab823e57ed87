import { defineConfig } from 'vitest/config';

// One vitest run for the workspace. Workspace packages export their TypeScript sources
// (Node 24 strips types natively), so tests need no build step.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
    reporters: ['default', 'json'],
    // Read by .ci/run to print one plain "N passed, N failed" line.
    outputFile: { json: 'node_modules/.cache/vitest-report.json' },
  },
});
