#!/bin/bash
# Pack what a benchmark run on a separate GPU machine needs into one folder (default .device/, git-ignored), for a
# machine with no Node and no package registry: Debian's node (stripped, xz), ctl's built dist/ and benches with a
# production node_modules pruned to linux-x64 (tar.xz), the Vulkan loader debs, and bench/gpu/run.sh. About 50 MiB;
# refuses to finish above 64 MiB.
#
#   bash bench/gpu/pack.sh [DIR]          then copy DIR to the GPU machine and run: bash DIR/run.sh
#
# Needs here: node_modules installed (npm ci), strip, xz, apt-get (for `apt-get download` of the loader debs).
set -euo pipefail
R=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEST=${1:-$R/.device}
LIMIT_MIB=64
# The Vulkan loader and GL dispatch libraries (unpacked on the GPU machine where it lacks them), and the X
# libraries an NVIDIA driver's Vulkan library links to (put on LD_LIBRARY_PATH there only if it misses them).
GL_DEBS=(libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libgles2 libopengl0)
X_DEBS=(libx11-6 libx11-data libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0)
say() { echo "pack: $*" >&2; }

cd "$R"
[ -d node_modules ] || { say "node_modules is missing: run npm ci first"; exit 2; }
for tool in strip xz apt-get; do command -v $tool >/dev/null || { say "$tool is missing here"; exit 2; }; done
NODE_BIN=$(command -v node)
case "$("$NODE_BIN" -p "process.platform+\"-\"+process.arch")" in
  linux-x64) ;;
  *) say "this packs a linux-x64 Node; here is $("$NODE_BIN" -p "process.platform+\"-\"+process.arch")"; exit 2 ;;
esac
npm run --silent build

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/ctl
mkdir -p "$STAGE/bench"
cp -a package.json dist configs "$STAGE/"
cp -a bench/common.mjs bench/embed bench/train "$STAGE/bench/"

# ---- node_modules: the production dependency tree, then pruned
npm ls --omit=dev --all --parseable | tail -n +2 | bench/gpu/copy-packages.sh "$R" "$STAGE"
NM=$STAGE/node_modules
scripts/prune-node-modules.sh "$NM"

# ---- the pack
rm -rf "$DEST"
mkdir -p "$DEST/gl" "$DEST/xlibs"
say "node $("$NODE_BIN" --version) from $NODE_BIN (stripped, xz)"
strip -o "$WORK/node" "$NODE_BIN"
xz -9e -T0 -c "$WORK/node" >"$DEST/node.xz"
say "ctl (dist, bench, node_modules $(du -sh "$NM" | cut -f1) unpacked) as tar.xz"
tar -C "$WORK" -cf - ctl | xz -9e -T0 >"$DEST/ctl.tar.xz"
say "debs: ${GL_DEBS[*]} ${X_DEBS[*]}"
(cd "$DEST/gl" && apt-get download "${GL_DEBS[@]}" >/dev/null && cd ../xlibs && apt-get download "${X_DEBS[@]}" >/dev/null) || {
  say "apt-get download failed (run apt-get update once?)"
  exit 1
}
cp bench/gpu/run.sh "$DEST/run.sh"
{
  echo "packed $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (uncommitted changes)')"
  echo "node $("$NODE_BIN" --version)"
  (cd "$DEST" && ls -l node.xz ctl.tar.xz gl/ xlibs/)
} >"$DEST/MANIFEST"
total=$(du -sm "$DEST" | cut -f1)
say "$DEST: ${total} MiB"
[ "$total" -lt "$LIMIT_MIB" ] || { say "over ${LIMIT_MIB} MiB: the device machine's limit"; exit 1; }
