#!/usr/bin/env bash
# Checks the image and the Kubernetes Jobs' work with Docker on one Linux machine, without a cluster, a GPU or the
# internet: builds the image from the repo's Dockerfile, writes an STL-shaped synthetic dataset (metadata and images,
# in a container) and serves it on 127.0.0.1 the way GitHub and Pinterest lay it out, then runs
#   - the embed Job's N pods as N containers (JOB_COMPLETION_INDEX 0 … N-1, one shared folder as the volume, the
#     pod's command and environment as k8s/embed-job.yaml has them), with --base-url pointing at the local server
#     and the generated 'small' model instead of the hub's SigLIP;
#   - the merge Job's pod (the command k8s/merge-job.yaml has), twice: the second merge must add nothing;
#   - one unsharded container, whose stores are then merged into the merged workdir: `ctl data merge` refuses a row
#     that differs, so this passes only when the sharded run equals the unsharded one row for row, bytes equal.
# Needs docker (with the image's base, node:20-bookworm-slim, pullable or present), python3 (the local server) and curl.
#
#   deploy/docker-check.sh [N]        # N shards, default 4; Env: IMAGE (default ctl:check), KEEP=1 keeps the folder
set -euo pipefail
N=${1:-4}
IMAGE=${IMAGE:-ctl:check}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/ctl-docker-check.XXXXXX")
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
say() { echo "docker-check: $*" >&2; }
fail() {
  say "FAILED: $*"
  exit 1
}
# Containers run as this user, so everything they write in $DIR stays removable.
run() { docker run --rm --user "$(id -u):$(id -g)" --network host -v "$DIR:/check" "$@"; }

say "building $IMAGE from $ROOT/Dockerfile"
docker build -q -t "$IMAGE" "$ROOT" >/dev/null

say "an STL-shaped synthetic dataset, served on 127.0.0.1"
run "$IMAGE" data synth --scenes 60 --products 80 --images --workdir /check/source >"$DIR/synth.log" 2>&1 ||
  fail "the synthetic dataset (its log: $DIR/synth.log; KEEP=1 keeps it)"
mkdir -p "$DIR/site"
cp "$DIR"/source/stl/fashion.json "$DIR"/source/stl/fashion-cat.json "$DIR/site/"
for image in "$DIR"/source/images/*/*.jpg; do
  sig=$(basename "$image" .jpg)
  mkdir -p "$DIR/site/400x/${sig:0:2}/${sig:2:2}/${sig:4:2}"
  cp "$image" "$DIR/site/400x/${sig:0:2}/${sig:2:2}/${sig:4:2}/"
done
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$DIR/site" >"$DIR/server.log" 2>&1 &
SERVER=$!
url=http://127.0.0.1:$port
for _ in $(seq 50); do curl -fs "$url/fashion.json" -o /dev/null && break || sleep 0.1; done

# The pods' environment, as in k8s/embed-job.yaml, plus the local mirror and model.
pod_env=(-e SHARDS_DIR=/check/shards -e "FETCH_ARGS=--base-url $url" -e "DOWNLOAD_ARGS=--base-url $url"
  -e "EMBED_ARGS=--device auto --batch 32 --model small")
say "the embed Job: $N pods"
pids=()
for ((i = 0; i < N; i++)); do
  run "${pod_env[@]}" -e JOB_COMPLETION_INDEX="$i" --entrypoint /bin/sh "$IMAGE" \
    -c "exec deploy/shards.sh run \"\$JOB_COMPLETION_INDEX\" $N" >"$DIR/pod-$i.log" 2>&1 &
  pids+=($!)
done
for ((i = 0; i < N; i++)); do wait "${pids[$i]}" || fail "pod $i (its log: $DIR/pod-$i.log; KEEP=1 keeps it)"; done
sed -n '/^embed: /s/^/  pod 0: /p' "$DIR/pod-0.log" >&2 # sed, not grep: no line is no failure

say "the merge Job, twice"
merge=(-e SHARDS_DIR=/check/shards -e CTL_WORKDIR=/check/merged --entrypoint /bin/sh "$IMAGE" -c
  "exec deploy/shards.sh merge $N")
run "${merge[@]}" >&2
again=$(run "${merge[@]}" 2>&1) || fail "the second merge: $again"
echo "$again" | grep -q ' [1-9][0-9]* rows added' && fail "merging again added rows: $again"

say "one unsharded pod, merged into the merged workdir: every row must already be there, the same bytes"
run "${pod_env[@]}" -e SHARDS_DIR=/check/whole --entrypoint /bin/sh "$IMAGE" \
  -c 'exec deploy/shards.sh run 0 1' >"$DIR/whole.log" 2>&1 || fail "the unsharded run (its log: $DIR/whole.log)"
check=$(run "$IMAGE" data merge --workdir /check/merged --from /check/whole/shard-0 2>&1) || fail "$check"
echo "$check" | sed -n '/embeddings\//s/^/  /p' >&2
echo "$check" | grep -q ' [1-9][0-9]* rows added' && fail "the unsharded run has rows the sharded one lacks: $check"
say "passed: $N shards merged equal one unsharded run, row for row"
