import { defineConfig } from 'vitest/config';

// One vitest run for the workspace. Workspace packages export their TypeScript sources
// (Node 24 strips types natively), so tests need no build step.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
  },
});
