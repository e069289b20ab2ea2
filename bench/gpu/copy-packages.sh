#!/bin/bash
# Copy the package folders `npm ls --parseable` names on stdin (absolute paths under ROOT) to the same places under
# STAGE, each once: a package nested in another's node_modules comes with its parent's copy, so it is skipped (a
# second `cp -a` into the existing folder would put another copy inside it).
#
#   npm ls --omit=dev --all --parseable | tail -n +2 | bench/gpu/copy-packages.sh ROOT STAGE
set -euo pipefail
root=$1 stage=$2
# Sorted bytewise, a parent comes before what is nested in it.
sed "s|^$root/||" | LC_ALL=C sort -u | while read -r rel; do
  [ -e "$stage/$rel" ] && continue
  mkdir -p "$stage/$(dirname "$rel")"
  cp -a "$root/$rel" "$stage/$rel"
done
