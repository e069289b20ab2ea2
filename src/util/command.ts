// What every `ctl` command shares: `--workdir`, `--json`, exit codes, and turning errors into one clear line.
import { Command, InvalidArgumentError, Option } from 'commander';
import { InputError, exitCodeOf } from './errors.js';
import { resolve } from 'node:path';

export interface CommonOptions {
  /** Absolute workdir (flag, else CTL_WORKDIR, else ./workdir). */
  workdir: string;
  json: boolean;
}

/** Add `--workdir` (every command) and, when the command reports, `--json`. */
export function withCommon(cmd: Command, { json = true }: { json?: boolean } = {}): Command {
  cmd.addOption(
    new Option('--workdir <dir>', 'workdir every stage reads and writes (env CTL_WORKDIR)').default(
      undefined,
      '$CTL_WORKDIR or ./workdir',
    ),
  );
  if (json) cmd.option('--json', 'print one JSON document on stdout (human text stays on stderr)', false);
  return cmd;
}

/**
 * Wrap a command's action: resolve the workdir, run, and map errors to exit codes
 * (2 bad usage or input, 1 a failed run) with one readable line on stderr.
 */
export function action<O extends object>(run: (options: O & CommonOptions, cmd: Command) => Promise<void>) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const raw = cmd.opts() as O & { workdir?: string; json?: boolean };
    const options = {
      ...raw,
      workdir: resolve(raw.workdir ?? process.env.CTL_WORKDIR ?? './workdir'),
      json: Boolean(raw.json),
    };
    try {
      await run(options, cmd);
    } catch (err) {
      const code = exitCodeOf(err);
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`ctl ${cmd.name()}: error: ${message}\n`);
      if (code === 1 && err instanceof Error && process.env.CTL_DEBUG) process.stderr.write(`${err.stack}\n`);
      process.exitCode = code;
    }
  };
}

/** For commands a later stage builds: exit 2 with "not built yet". */
export function notBuiltYet(cmd: Command): Command {
  return cmd.action(
    action(async () => {
      throw new InputError(`'${cmd.name()}' is not built yet`);
    }),
  );
}

// Option parsers that fail as usage errors (exit 2) with the flag named.
export function parseIntOption(name: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} expects an integer >= ${min}`);
    return n;
  };
}

export function parseFloatOption(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} expects a number`);
    return n;
  };
}

/** `--shard I/N` → { index, count }, 0 <= I < N. */
export function parseShard(value: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count)
    throw new InvalidArgumentError('--shard expects I/N with 0 <= I < N, e.g. 0/4');
  return { index, count };
}
