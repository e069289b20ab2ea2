import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores here: run test files two at a time so CPU-heavy suites do not starve each other.
    maxWorkers: 2,
    minWorkers: 1,
    // As src/cli.ts sets it for ctl: no onnxruntime telemetry, no /tmp/mat-debug-<pid>.log per test process.
    // Printed commands read `ctl ...` however the tests were started (`npx vitest` sets npm_command=exec, which
    // makes them `npx ctl ...`: src/util/shell.ts).
    env: { ORT_DISABLE_TELEMETRY: '1', npm_command: '' },
  },
});
