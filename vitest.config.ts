import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Integration tests start real peers (qemu, nbdkit, FUSE); two cores cannot run many at once.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
