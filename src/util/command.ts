// What every `ctl` command shares: `--workdir`, `--json`, exit codes, and turning errors into one clear line.
import { Command, InvalidArgumentError, type Option } from 'commander';
import { access, constants as fsConstants, lstat, readlink, stat } from 'node:fs/promises';
import { constants } from 'node:os';
import { dirname, resolve } from 'node:path';
import { InputError, exitCodeOf } from './errors.js';
import { log } from './log.js';
import { nearestExisting } from './fs.js';

export interface CommonOptions {
  /** Absolute workdir (flag, else CTL_WORKDIR, else ./workdir). */
  workdir: string;
  json: boolean;
}

/** Add `--workdir` (every command; `workdirHelp` says what it is where that differs) and, when the command reports, `--json`. */
export function withCommon(
  cmd: Command,
  { json = true, workdirHelp = 'workdir every stage reads and writes' }: { json?: boolean; workdirHelp?: string } = {},
): Command {
  cmd.option('--workdir <dir>', `${workdirHelp} (default: $CTL_WORKDIR, else ./workdir)`);
  if (json) cmd.option('--json', 'print one JSON document on stdout (human text stays on stderr)', false);
  return cmd;
}

/** The workdir as an absolute path; a current folder that is gone (removed from under the shell) said so. */
function absoluteWorkdir(workdir: string, flag: string): string {
  try {
    return resolve(workdir);
  } catch (err) {
    throw new InputError(`${flag} ${workdir}: the current folder is gone (${(err as Error).message}): cd to another`);
  }
}

/** A workdir is a folder, or nothing yet (the stage makes it); a file or a link to nothing is an InputError. */
async function checkWorkdir(workdir: string, flag: string): Promise<void> {
  const found = await stat(workdir).catch((err: NodeJS.ErrnoException) => err);
  if (!(found instanceof Error)) {
    if (!found.isDirectory()) throw new InputError(`${flag} ${workdir}: not a folder`);
    return;
  }
  if (found.code === 'ENOTDIR') {
    // The nearest part of the path that exists is not a folder (a file, a device).
    throw new InputError(`${flag} ${workdir}: ${await nearestExisting(dirname(workdir))} is not a folder`);
  }
  if (!(await lstat(workdir).catch(() => null))?.isSymbolicLink()) return; // not there yet: the stage makes it
  const target = resolve(dirname(workdir), await readlink(workdir));
  throw new InputError(
    found.code === 'ENOENT'
      ? `${flag} ${workdir}: a link to ${target}, which is not there`
      : `${flag} ${workdir}: a link that cannot be followed (${found.code}: ${found.message})`,
  );
}

/**
 * What a recursive mkdir's ENOENT meant when the folders above exist (Node reports a read-only file system or a
 * folder we may not write that way): `cannot create <path>: EROFS ...`, from the nearest existing folder.
 */
async function mkdirRefusal(err: unknown): Promise<string | undefined> {
  const { code, syscall, path } = err as NodeJS.ErrnoException;
  if (code !== 'ENOENT' || syscall !== 'mkdir' || !path) return undefined;
  const above = await nearestExisting(dirname(path));
  const refused = await access(above, fsConstants.W_OK).then(
    () => undefined,
    (e: NodeJS.ErrnoException) => e.code,
  );
  return refused && `cannot create ${path}: ${refused} (${above} cannot be written)`;
}

/**
 * Wrap a command's action: resolve the workdir, run, and map errors to exit codes
 * (2 bad usage or input, 1 a failed run) with one readable line on stderr.
 */
export function action<O extends object>(run: (options: O & CommonOptions, cmd: Command) => Promise<void>) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const raw = cmd.opts() as O & { workdir?: string; json?: boolean };
    const [flag, workdir] =
      raw.workdir !== undefined
        ? ['--workdir', raw.workdir]
        : process.env.CTL_WORKDIR !== undefined
          ? ['CTL_WORKDIR', process.env.CTL_WORKDIR]
          : ['the workdir', './workdir'];
    try {
      if (workdir === '') throw new InputError('--workdir (or CTL_WORKDIR) is empty: name a folder');
      const options = { ...raw, workdir: absoluteWorkdir(workdir, flag), json: Boolean(raw.json) };
      await checkWorkdir(options.workdir, flag);
      await run(options, cmd);
    } catch (err) {
      const code = exitCodeOf(err);
      const message = (await mkdirRefusal(err)) ?? (err instanceof Error ? err.message : String(err));
      log(`${commandPath(cmd)}: error: ${message}`);
      if (code === 1 && err instanceof Error && process.env.CTL_DEBUG) process.stderr.write(`${err.stack}\n`);
      process.exitCode = code;
    }
  };
}

/**
 * Refuse the flags among `names` (attribute names, e.g. 'apiSend') typed on the command line with a value other
 * than their default: the caller calls this where they would do nothing, and a flag that silently does nothing is a
 * mistake unnoticed. (One typed with its default asks for nothing: a script may pass it to every call.)
 */
export function refuseFlags(cmd: Command, names: string[], useWith: string): void {
  const changes = (o: Option) =>
    cmd.getOptionValueSource(o.attributeName()) === 'cli' &&
    JSON.stringify(cmd.getOptionValue(o.attributeName())) !== JSON.stringify(o.defaultValue);
  const given = cmd.options.filter((o) => names.includes(o.attributeName()) && changes(o)).map((o) => o.long);
  if (given.length > 0) throw new InputError(`${given.join(', ')}: only with ${useWith}`);
}

/** The command as typed: `ctl data fetch`. */
const commandPath = (cmd: Command): string => (cmd.parent ? `${commandPath(cmd.parent)} ${cmd.name()}` : cmd.name());

/** The conventional exit code of a process stopped by `signal`: 128 + its number (SIGINT 130, SIGTERM 143). */
export const stoppedExitCode = (signal: NodeJS.Signals) => 128 + constants.signals[signal];

/** Set by `ctl demo` for its stages: their stdin is a pipe the demo holds open for as long as it lives. */
export const STOP_WITH_PARENT = 'CTL_STOP_WITH_PARENT';

/**
 * In a stage `ctl demo` started (STOP_WITH_PARENT set): once the demo is gone however it went (SIGKILL, a crash),
 * its end of the stdin pipe closes, and the stage stops as on SIGTERM rather than run on holding its lock.
 */
export function stopWithParent(): void {
  if (process.env[STOP_WITH_PARENT] !== '1') return;
  delete process.env[STOP_WITH_PARENT]; // not for the stage's own children
  const stdin = process.stdin as NodeJS.ReadStream & { unref?: () => void };
  stdin.on('end', () => process.kill(process.pid, 'SIGTERM')).resume();
  stdin.unref?.(); // waiting for the end must not keep a finished stage alive
}

/**
 * For a stage whose every write is atomic, so that stopping at any moment loses nothing: on SIGINT or SIGTERM, say
 * how to go on (`<command>: stopped by <signal>; <howToGoOn>`) and exit at once.
 */
export function exitOnStop(command: string, howToGoOn: string): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      log(`${command}: stopped by ${signal}; ${howToGoOn}`);
      process.exit(stoppedExitCode(signal));
    });
}

/**
 * A graceful stop for a long stage: the first SIGINT or SIGTERM logs what happens now and aborts `signal` (the
 * stage finishes what is in flight and commits it); a second one quits at once. `release` removes the handlers.
 */
export function gracefulStop(whatHappens: string) {
  const controller = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stoppedBy) process.exit(stoppedExitCode(signal));
    stoppedBy = signal;
    log(`${signal}: ${whatHappens}; send again to quit now`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    /** The exit code of a stage that stopped early. */
    exitCode: () => stoppedExitCode(stoppedBy ?? 'SIGINT'),
    release() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export type GracefulStop = ReturnType<typeof gracefulStop>;

/**
 * A stage's exit code at its end: the signal's when `stop` stopped it; else 1 when a re-run would get what it could
 * not (`retryable` images, `retryHint` saying so), as `ctl download` and `ctl embed` do.
 */
export function setStageExitCode(
  stop: GracefulStop,
  stopped: boolean,
  retryable: number,
  retryHint: (retryable: number) => string,
): void {
  if (stopped) process.exitCode = stop.exitCode();
  else if (retryable > 0) {
    log(retryHint(retryable));
    process.exitCode = 1;
  }
}

// Option parsers that fail as usage errors (exit 2) with the flag named.
/** A whole number written in digits (not `1e3` or `0x10`), from `min` to `max`. */
export function parseIntOption(name: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max)
      throw new InvalidArgumentError(
        `${name} expects an integer >= ${min}${max < Number.MAX_SAFE_INTEGER ? ` and <= ${max}` : ''}`,
      );
    return n;
  };
}

/** A number above 0, and at most `max`. */
export function parsePositive(name: string, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0 || n > max)
      throw new InvalidArgumentError(`${name} expects a number > 0${max < Infinity ? ` and <= ${max}` : ''}`);
    return n;
  };
}

/** An http(s) URL, kept as given. */
export function parseHttpUrl(name: string) {
  return (value: string): string => {
    let protocol = '';
    try {
      protocol = new URL(value).protocol;
    } catch {
      // not a URL at all: the same message
    }
    if (protocol !== 'http:' && protocol !== 'https:') throw new InvalidArgumentError(`${name} expects an http(s) URL`);
    return value;
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
