import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    // Integration tests run real workers against Redis and the stand-in; give them room.
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
