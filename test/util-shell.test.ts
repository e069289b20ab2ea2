// Printed commands paste back into a shell as the same words: sh reads each quoted argument back unchanged.
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ctlCommand, shellCommand, shellQuote } from '../src/util/shell.js';

describe('shellCommand', () => {
  it('leaves plain words as they are', () => {
    expect(shellCommand(['ctl', 'eval', '--run', 'demo', '--workdir', '/tmp/ctl-x/work_dir-1.2'])).toBe(
      'ctl eval --run demo --workdir /tmp/ctl-x/work_dir-1.2',
    );
  });

  it('quotes what the shell would split or expand, and sh reads it back unchanged', () => {
    const words = ['my runs', "it's", 'a"b', '$HOME', '`x`', 'a\\b', 'new\nline', '*', '~', '-', 'é日本🎉', ''];
    const line = shellCommand(['printf', '%s\\0', ...words]);
    expect(shellQuote('my runs')).toBe("'my runs'");
    const echoed = execFileSync('sh', ['-c', line], { encoding: 'utf8' });
    expect(echoed.split('\0').slice(0, -1)).toEqual(words);
  });
});

describe('ctlCommand', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('is `npx ctl` under npx or npm exec (ctl is not on PATH then), else `ctl`', () => {
    vi.stubEnv('npm_command', 'exec');
    expect(ctlCommand(['data', 'stats', '--workdir', 'my work'])).toBe("npx ctl data stats --workdir 'my work'");
    vi.stubEnv('npm_command', undefined);
    expect(ctlCommand(['data', 'stats'])).toBe('ctl data stats');
    vi.stubEnv('npm_command', 'run');
    expect(ctlCommand(['data', 'stats'])).toBe('ctl data stats');
  });
});
