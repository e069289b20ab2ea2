// Tests that need a mount point of their own (a Docker volume, a small disk): a tmpfs, which root with
// CAP_SYS_ADMIN (CI's container) may mount; elsewhere those tests skip.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Can this process mount a tmpfs (root with CAP_SYS_ADMIN)? */
export function canMount(): boolean {
  const probe = mkdtempSync(join(tmpdir(), 'ctl-mount-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', 'none', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe]);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Run `body` with a tmpfs mounted on `dir` (mount options, e.g. 'size=1m' or 'ro,size=1m'), unmounted after. */
export async function onTmpfs<T>(dir: string, options: string, body: () => Promise<T>): Promise<T> {
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'none', dir]);
  try {
    return await body();
  } finally {
    execFileSync('umount', [dir]);
  }
}
