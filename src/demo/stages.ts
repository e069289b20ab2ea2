// The demo's stages as child `ctl ... --json` processes, and stopping them. Each child runs in its own process
// group, so a Ctrl-C (SIGINT to the terminal's whole group) reaches the demo alone; the demo passes every SIGINT,
// SIGTERM or SIGHUP it gets on to the running stage, once, waits for it to exit, says how to continue, and exits
// as the signal would (130, 143, 129). Ctrl-Z (SIGTSTP) stops the stage and the demo, `fg` (SIGCONT) resumes both.
// A demo killed outright (SIGKILL) cannot pass anything on: the stage then sees its stdin, a pipe from the demo,
// close, and stops itself (stopWithParent). So no stage outlives the demo to hold its store's lock.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { STOP_WITH_PARENT, stoppedExitCode } from '../util/command.js';
import { RunError } from '../util/errors.js';
import { log } from '../util/log.js';
import { ctlCommand } from '../util/shell.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Run stages until `release`; `resume` is the `ctl demo` command line that continues the demo. A stop signal
 * between stages stops the demo at once (every stage commits atomically); during one, when that stage exits.
 */
export function stageRunner(resume: string[]) {
  let running: ChildProcess | undefined;
  let stoppedBy: NodeJS.Signals | undefined;
  const stopNow = (signal: NodeJS.Signals): never => {
    log(`stopped; run \`${ctlCommand(resume)}\` again to continue`);
    process.exit(stoppedExitCode(signal));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    stoppedBy ??= signal;
    if (running) running.kill(signal);
    else stopNow(stoppedBy);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  // The stage is not in the terminal's foreground group, so job control reaches it through the demo.
  const onSuspend = () => {
    running?.kill('SIGSTOP');
    process.kill(process.pid, 'SIGSTOP');
  };
  const onContinue = () => running?.kill('SIGCONT');
  // Not as PID 1 (a container's entry point), which cannot stop itself: Ctrl-Z would leave the stage stopped for good.
  const jobControl = process.pid !== 1;
  if (jobControl) {
    process.on('SIGTSTP', onSuspend);
    process.on('SIGCONT', onContinue);
  }

  return {
    /**
     * Run one `ctl` stage with --json: its human output (stderr) streams through, its JSON report (stdout) is
     * returned; a failure stops the demo.
     */
    run<T>(title: string, args: string[]): Promise<T> {
      log(`\n== ${title}: ${ctlCommand(args)}`);
      return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [CLI, ...args, '--json'], {
          stdio: ['pipe', 'pipe', 'inherit'], // stdin: open while the demo lives (see the top of the file)
          detached: true, // its own process group: see the top of the file
          env: { ...process.env, [STOP_WITH_PARENT]: '1' },
        });
        running = child;
        const chunks: Buffer[] = [];
        child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
        child.on('error', (err) => {
          running = undefined;
          reject(err);
        });
        child.on('close', (code, signal) => {
          running = undefined;
          if (stoppedBy) stopNow(stoppedBy);
          if (code !== 0) {
            reject(
              new RunError(
                `${title} failed (${signal ?? `exit ${code}`}); fix what it says and run \`${ctlCommand(resume)}\` again to continue`,
              ),
            );
            return;
          }
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as T);
          } catch {
            reject(new RunError(`${title}: \`ctl ${args[0]} --json\` printed no JSON report`));
          }
        });
      });
    },
    release() {
      for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
      process.off('SIGTSTP', onSuspend);
      process.off('SIGCONT', onContinue);
    },
  };
}
