#!/usr/bin/env bash
# A sharded embedding run for any batch scheduler: task I of N fetches the metadata, downloads and embeds shard I/N
# into its own workdir; the last step merges them. Every step resumes, so a killed task is simply run again.
# A task whose download left failed images still embeds the rest, then exits 1: run it again to retry them.
#
#   deploy/shards.sh run   I N    # one task: download and embed shard I of N into $SHARDS_DIR/shard-I
#   deploy/shards.sh merge N      # after all N: merge them into $CTL_WORKDIR
#   deploy/shards.sh local N      # all N tasks on this machine one after another, then the merge
#
# Slurm:  sbatch --array=0-3 --wrap 'deploy/shards.sh run $SLURM_ARRAY_TASK_ID 4'
# Kubernetes: the pods of k8s/embed-job.yaml and k8s/merge-job.yaml run this script (in the image, /app/deploy).
# Env: SHARDS_DIR (default ./shards), CTL_WORKDIR (merge target, default ./workdir), CTL (the command that runs ctl,
#      default: node dist/cli.js of the repo this script is in, from any folder),
#      extra flags for each command: FETCH_ARGS (`ctl data fetch`, e.g. "--base-url URL" of a metadata mirror),
#      DOWNLOAD_ARGS (`ctl download`, e.g. "--base-url URL" of an image mirror), EMBED_ARGS (`ctl embed`,
#      e.g. "--device webgpu --batch 32").
set -euo pipefail
SHARDS_DIR=${SHARDS_DIR:-./shards}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${CTL:-}" ]; then read -ra ctl <<<"$CTL"; else ctl=(node "$ROOT/dist/cli.js"); fi
FETCH_ARGS=${FETCH_ARGS:-}
DOWNLOAD_ARGS=${DOWNLOAD_ARGS:-}
EMBED_ARGS=${EMBED_ARGS:-}
download_failed=0

run_shard() {
  local i=$1 n=$2 dir="$SHARDS_DIR/shard-$1"
  mkdir -p "$dir"
  # shellcheck disable=SC2086 # the *_ARGS are lists of flags
  "${ctl[@]}" data fetch --workdir "$dir" $FETCH_ARGS
  # `ctl download` exits 1 when some images failed after their retries: what did download is embedded all the same,
  # and the script exits 1 at the end (download_failed), so the scheduler shows the failure and a re-run retries them.
  local status=0
  # shellcheck disable=SC2086
  "${ctl[@]}" download --workdir "$dir" --shard "$i/$n" $DOWNLOAD_ARGS || status=$?
  case $status in
    0) ;;
    1)
      download_failed=1
      echo "shards.sh: shard $i/$n: some images failed to download; embedding the rest, then exit 1 (run again to retry)" >&2
      ;;
    *) exit "$status" ;;
  esac
  # shellcheck disable=SC2086
  "${ctl[@]}" embed --workdir "$dir" --shard "$i/$n" $EMBED_ARGS
}

merge() {
  local n=$1 from=()
  for ((i = 0; i < n; i++)); do from+=("$SHARDS_DIR/shard-$i"); done
  "${ctl[@]}" data merge --workdir "${CTL_WORKDIR:-./workdir}" --from "${from[@]}"
}

usage() {
  [ $# -eq 0 ] || echo "shards.sh: $*" >&2
  sed -n '2,/^[^#]/{/^#/p}' "$0" >&2 # the comment at the top
  exit 2
}

# N a whole number >= 1 and, for run, I one of 0..N-1: checked before anything is fetched.
# Decimal, as ctl reads them: no leading zero (bash would read 010 as octal 8).
decimal='^(0|[1-9][0-9]*)$'
count() { [[ ${1:-} =~ $decimal ]] && (($1 >= 1)) || usage "N: expected a number of shards >= 1, got '${1:-}'"; }

if [ -z "${CTL:-}" ] && [ ! -f "$ROOT/dist/cli.js" ]; then
  echo "shards.sh: $ROOT/dist/cli.js is missing: run npm run build first (or set CTL)" >&2
  exit 2
fi

case "${1:-}" in
  run)
    count "${3:-}"
    [[ ${2:-} =~ $decimal ]] && (($2 < $3)) || usage "I: expected a shard index 0..$(($3 - 1)), got '${2:-}'"
    run_shard "$2" "$3"
    exit "$download_failed"
    ;;
  merge) count "${2:-}" && merge "$2" ;;
  local)
    count "${2:-}"
    for ((i = 0; i < $2; i++)); do run_shard "$i" "$2"; done
    merge "$2"
    exit "$download_failed"
    ;;
  *) usage ;;
esac
