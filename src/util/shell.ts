// Commands the CLI prints for a user to paste into a POSIX shell: each argument quoted where the shell would split
// or expand it (a workdir with a space, a quote or a $ in its path).

const PLAIN = /^[\w@%+=:,./-]+$/;

/** One argument as the shell reads it back unchanged. */
export function shellQuote(arg: string): string {
  return PLAIN.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A command line from its words. */
export function shellCommand(words: string[]): string {
  return words.map(shellQuote).join(' ');
}

/**
 * A `ctl` command line as the user can run it: `npx ctl ...` when this process was started through npx or
 * `npm exec` (the README's way; nothing puts `ctl` on PATH then), else `ctl ...`.
 */
export function ctlCommand(args: string[]): string {
  const ctl = process.env.npm_command === 'exec' ? ['npx', 'ctl'] : ['ctl'];
  return shellCommand([...ctl, ...args]);
}
