#!/usr/bin/env bash
# A sharded embedding run for any batch scheduler: task I of N fetches the metadata, downloads and embeds shard I/N
# into its own workdir; the last step merges them. Every step resumes, so a killed task is simply run again.
#
#   deploy/shards.sh run   I N    # one task: download and embed shard I of N into $SHARDS_DIR/shard-I
#   deploy/shards.sh merge N      # after all N: merge them into $CTL_WORKDIR
#   deploy/shards.sh local N      # all N tasks on this machine one after another, then the merge
#
# Slurm:  sbatch --array=0-3 --wrap 'deploy/shards.sh run $SLURM_ARRAY_TASK_ID 4'
# Env: SHARDS_DIR (default ./shards), CTL_WORKDIR (merge target, default ./workdir), CTL (default: node dist/cli.js),
#      EMBED_ARGS (extra `ctl embed` flags, e.g. "--device webgpu --batch 32").
set -euo pipefail
SHARDS_DIR=${SHARDS_DIR:-./shards}
CTL=${CTL:-node dist/cli.js}
EMBED_ARGS=${EMBED_ARGS:-}

run_shard() {
  local i=$1 n=$2 dir="$SHARDS_DIR/shard-$1"
  mkdir -p "$dir"
  $CTL data fetch --workdir "$dir"
  $CTL download --workdir "$dir" --shard "$i/$n"
  # shellcheck disable=SC2086 # EMBED_ARGS is a list of flags
  $CTL embed --workdir "$dir" --shard "$i/$n" $EMBED_ARGS
}

merge() {
  local n=$1 from=()
  for ((i = 0; i < n; i++)); do from+=("$SHARDS_DIR/shard-$i"); done
  $CTL data merge --workdir "${CTL_WORKDIR:-./workdir}" --from "${from[@]}"
}

case "${1:-}" in
  run) run_shard "$2" "$3" ;;
  merge) merge "$2" ;;
  local)
    for ((i = 0; i < $2; i++)); do run_shard "$i" "$2"; done
    merge "$2"
    ;;
  *)
    sed -n '2,11p' "$0"
    exit 2
    ;;
esac
