// Node-side tests (local tooling such as the Upstash-compatible endpoint); the worker tests use vitest.config.ts.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/node/**/*.test.ts'],
    environment: 'node',
    globalSetup: ['test/node/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
