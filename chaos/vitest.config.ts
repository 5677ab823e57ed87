import { defineConfig } from 'vitest/config';

// `pnpm test:chaos`: whole-product scenarios, one at a time (each runs a Redis, the stand-in and
// several product processes on this machine's two cores), after the unit and integration tests.
export default defineConfig({
  test: {
    name: 'chaos',
    root: import.meta.dirname,
    include: ['*.test.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 60_000,
    globalSetup: ['./summary.ts'],
    reporters: ['default', 'json'],
    outputFile: { json: '../node_modules/.cache/vitest-chaos-report.json' },
  },
});
