// Errors that carry their exit code, so the CLI maps them without guessing.

/** Bad usage or bad input: exit 2. The message should name the file, line and field where there is one. */
export class InputError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** A run that failed (network gave up, NaN loss, ...): exit 1. */
export class RunError extends Error {
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = 'RunError';
  }
}

/** An input problem located in a file: `file:line: field: what was expected`. */
export function locatedError(file: string, line: number, field: string, expected: string): InputError {
  return new InputError(`${file}:${line}: ${field}: ${expected}`);
}

export function exitCodeOf(err: unknown): number {
  if (err && typeof err === 'object' && 'exitCode' in err && typeof err.exitCode === 'number') return err.exitCode;
  return 1;
}

/** A file the disk or its folder refused (EACCES, ENOSPC, EFBIG): the machine's fault, not the network's, so not retried. */
export function cannotWrite(path: string, err: unknown): RunError {
  return new RunError(`cannot write ${path}: ${firstLineOf(err)}`);
}

/** The first line of an error's message (native libraries append whole stack dumps), for one-line reports. */
export function firstLineOf(err: unknown): string {
  return String((err as Error | undefined)?.message ?? err).split('\n')[0];
}
