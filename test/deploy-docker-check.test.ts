// deploy/docker-check.sh with a stand-in docker (no daemon, no image): each failing step ends the check with a line
// that says which step failed and why, and a run where every step succeeds passes.
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

// `docker run` as the check calls it: the synth writes one product's metadata and image under the mounted folder,
// every other command succeeds and prints nothing; FAKE_FAIL=synth fails the synth, FAKE_FAIL=merge the second merge.
const fakeDocker = `#!/bin/bash
[ "$1" = build ] && exit 0
prev= host=
for a in "$@"; do [ "$prev" = -v ] && host=\${a%%:/check}; prev=$a; done
case "$*" in
  *"data synth"*)
    [ "\${FAKE_FAIL:-}" = synth ] && { echo "synth: no space left on device" >&2; exit 1; }
    mkdir -p "$host/source/stl" "$host/source/images/product"
    echo '[]' >"$host/source/stl/fashion.json"; echo '[]' >"$host/source/stl/fashion-cat.json"
    touch "$host/source/images/product/abcdef0123.jpg" ;;
  *"shards.sh merge"*)
    merges=$(cat "$host/merges" 2>/dev/null || echo 0); echo $((merges + 1)) >"$host/merges"
    [ "\${FAKE_FAIL:-}" = merge ] && [ "$merges" = 1 ] && { echo "merge: the lock is held" >&2; exit 1; } ;;
esac
exit 0
`;

it.each([
  ['synth', /FAILED: the synthetic dataset \(its log: .*\/synth\.log; KEEP=1 keeps it\)/],
  ['merge', /FAILED: the second merge: merge: the lock is held/],
  ['', /passed: 2 shards merged equal one unsharded run/],
])(
  'deploy/docker-check.sh with FAKE_FAIL=%j says how it ended',
  async (fakeFail, message) => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-docker-check-'));
    try {
      await mkdir(join(dir, 'bin'));
      await writeFile(join(dir, 'bin', 'docker'), fakeDocker);
      await chmod(join(dir, 'bin', 'docker'), 0o755);
      const run = spawnSync('bash', ['deploy/docker-check.sh', '2'], {
        encoding: 'utf8',
        env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, TMPDIR: dir, FAKE_FAIL: fakeFail },
      });
      expect(run.stderr).toMatch(message);
      expect(run.status).toBe(fakeFail ? 1 : 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
  30_000,
);
