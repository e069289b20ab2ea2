#!/bin/bash
# The GPU benchmarks, run from a pack made by bench/gpu/pack.sh, on a machine with no Node and no registry:
#   bash .device/run.sh
# Unpacks Node and ctl into $WORK (/tmp/ctl-gpu), finds the GPU's Vulkan driver (unpacking the packed loader where
# the machine has none), then runs, each under a time limit and never stopping the script:
#   gpu        nvidia-smi, vulkaninfo --summary (where present)
#   embed      bench/embed/run.mjs --device webgpu (ViT-B/16 at 224 px, decode included), beside PyTorch on CUDA
#              when python3 has torch with CUDA (else on its CPU, else without PyTorch)
#   train      bench/train/run.mjs --webgpu at batch 256 (every training engine, webgpu on the GPU's adapter
#              included, beside PyTorch: on CUDA when python3 has torch with CUDA, else on its CPU)
#   train-4096 the same at batch 4096, the webgpu engine beside PyTorch on CUDA only (the CPU engines take
#              seconds a step there)
#   profile    bench/train/profile.mjs at batch 256 and 4096: the webgpu step's kernels and onnxruntime's own
#              times (is the step host-bound?)
#   prepare    bench/embed/prepare.mjs: decode + preprocessing alone, on worker threads (images/s, CPU ms/image);
#              again as prepare-uv with UV_THREADPOOL_SIZE=nproc (sharp's work from every worker shares libuv's
#              pool, 4 threads by default: does that cap the feed on a many-core machine?)
# Each step's lines that matter start with RESULT; they are repeated at the end, with the step's name. With $OUT
# set, the log, the summary and the benches' result files are copied there.
# Knobs (env): QUICK=1 small sizes, the small model, PyTorch in the train step only (a smoke test off the GPU);
#   EMBED_IMAGES (512), EMBED_BATCH (32), PREPARE_IMAGES (1000), TRAIN_ARGS (--rounds 1 --steps 20),
#   TRAIN_BIG_ARGS (--batch 4096 --rounds 1 --steps 10 --warmup 3),
#   BUDGET (480 s for the whole script), GL_ROOT (where the loader debs go when the machine lacks libvulkan.so.1:
#   / as root, so the machine's own library paths find them; any other folder is put on LD_LIBRARY_PATH).
set -u
export PATH=$PATH:/usr/sbin:/sbin
T0=$(date +%s)
BUDGET=${BUDGET:-480}
QUICK=${QUICK:-0}
P=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Both absolute: the steps run from $W/ctl, and $W goes on PATH (a relative folder there would find another node).
export W=${WORK:-/tmp/ctl-gpu}
mkdir -p "$W" && W=$(cd "$W" && pwd)
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
  exec > >(tee -a "$OUT/log.txt") 2>&1
fi
say() { echo "[$(($(date +%s) - T0))s] $*"; }
RES=$W/results.txt
: >"$RES"

# step NAME CAP cmd...: at most CAP seconds and never past the budget; its RESULT lines go to the summary.
step() {
  local name=$1 cap=$2 left rc
  shift 2
  left=$((T0 + BUDGET - $(date +%s)))
  [ "$cap" -lt "$left" ] || cap=$left
  if [ "$cap" -lt 5 ]; then echo "RESULT [$name] SKIPPED (time budget)" | tee -a "$RES"; return; fi
  say "=== $name (at most ${cap}s): $*"
  timeout -k 5 "$cap" bash -c '"$@"' _ "$@" 2>&1 | tee "$W/step.log"
  rc=${PIPESTATUS[0]}
  grep -a '^RESULT' "$W/step.log" | sed "s/^RESULT /RESULT [$name] /" >>"$RES"
  case $rc in
    0) ;;
    124 | 137) echo "RESULT [$name] TIMEOUT after ${cap}s" | tee -a "$RES" ;;
    *) echo "RESULT [$name] FAILED rc=$rc" | tee -a "$RES" ;;
  esac
}

# ---- unpack (xz and dpkg where the machine has them, else Python's lzma and an ar reader)
unxz() { if command -v xz >/dev/null; then xz -dc "$1"; else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi; }
debx() {
  if command -v dpkg >/dev/null; then dpkg -x "$1" "$2"; return; fi
  python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
f = open(sys.argv[1], 'rb')
assert f.read(8) == b'!<arch>\n', 'not a deb'
while len(header := f.read(60)) == 60:
    name, size = header[:16].decode().strip().rstrip('/'), int(header[48:58])
    data = f.read(size + size % 2)[:size]
    if name.startswith('data.tar'):
        tarfile.open(fileobj=io.BytesIO(data)).extractall(sys.argv[2])
PY
}
s=$(date +%s)
unxz "$P/node.xz" >"$W/node" && chmod +x "$W/node"
rm -rf "$W/ctl"
unxz "$P/ctl.tar.xz" | tar -xf - -C "$W"
export PATH=$W:$PATH
say "unpacked in $(($(date +%s) - s))s into $W: node $(node --version), $(head -1 "$P/MANIFEST" 2>/dev/null)"

# ---- the GPU and its Vulkan driver
. /etc/os-release 2>/dev/null && say "os: ${PRETTY_NAME:-?}, $(nproc) cores, python3: $(command -v python3 || echo none)"
has_vulkan() {
  ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 ' ||
    ls /usr/lib/x86_64-linux-gnu/libvulkan.so.1 /lib/x86_64-linux-gnu/libvulkan.so.1 /usr/lib64/libvulkan.so.1 >/dev/null 2>&1
}
if ! has_vulkan; then
  can_ldconfig=$([ "$(id -u)" = 0 ] && command -v ldconfig >/dev/null && echo yes)
  GL_ROOT=${GL_ROOT:-$([ -n "$can_ldconfig" ] && echo / || echo "$W/gl")}
  for f in "$P"/gl/*.deb; do debx "$f" "$GL_ROOT"; done
  if [ "$GL_ROOT" = / ]; then ldconfig; else export LD_LIBRARY_PATH=$GL_ROOT/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
  say "no Vulkan loader here: unpacked the packed one into $GL_ROOT"
fi
# Containers given an NVIDIA GPU often carry its Vulkan driver description outside the loader's search path.
NV_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f "$NV_ICD" ] &&
  ! ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
  export VK_DRIVER_FILES=$NV_ICD VK_ICD_FILENAMES=$NV_ICD
fi
ICD=${VK_DRIVER_FILES:-$NV_ICD}
ICD=${ICD%%:*}
if [ -f "$ICD" ]; then
  lib=$(sed -n 's/.*"library_path"[^"]*"\([^"]*\)".*/\1/p' "$ICD" | head -1)
  case "$lib" in /*) path=$lib ;; *) path=$(ldconfig -p | awk -v n="$lib" '$1 == n {print $NF; exit}') ;; esac
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do # the driver's own folder, outside the ld.so cache
    if [ -z "$path" ] && [ -f "$d/$lib" ]; then path=$d/$lib; export LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
  done
  say "Vulkan driver: $ICD -> ${path:-$lib (not found)}"
  if [ -n "$path" ] && ldd "$path" 2>/dev/null | grep -q 'not found'; then
    for f in "$P"/xlibs/*.deb; do debx "$f" "$W/xlibs"; done
    export LD_LIBRARY_PATH=$W/xlibs/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    say "its missing libraries come from the pack's xlibs: $(ldd "$path" | grep -c 'not found') still missing"
  fi
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$W/xdg}
mkdir -p "$XDG_RUNTIME_DIR"
for f in "$W/node" "$W"/ctl/node_modules/webgpu/dist/linux-x64/dawn.node \
  "$W"/ctl/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node; do
  m=$(ldd "$f" 2>&1 | grep 'not found') && say "MISSING libraries of $f: $m"
done

gpu_info() {
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/RESULT /'
  else echo "RESULT no nvidia-smi"; fi
  if command -v vulkaninfo >/dev/null; then vulkaninfo --summary 2>&1 | grep -E 'deviceName|driverName|apiVersion' | sed 's/^ */RESULT vulkan: /'; fi
  return 0
}
export -f gpu_info
step gpu 30 gpu_info

# ---- PyTorch: the python3 first on PATH (on the GPU machines a venv's; the benches' default, /usr/bin/python3, is
# not it), where it has what a bench imports; else the benches run ctl alone.
PY=$(command -v python3 || echo /usr/bin/python3)
torch_on() { "$PY" -c "import $1; import torch; print('cuda' if torch.cuda.is_available() else 'cpu')" 2>/dev/null; }
TORCH_TRAIN=$(torch_on numpy)
TORCH_EMBED=$(torch_on 'numpy, PIL')
say "PyTorch: $PY, for training: ${TORCH_TRAIN:-none}, for embedding: ${TORCH_EMBED:-none}"

# ---- sizes
if [ "$QUICK" = 1 ]; then
  # The small model beside PyTorch's ViT-B/16 would mean nothing; the train step runs PyTorch (a few steps on its
  # CPU here) so a smoke test goes through the same interpreter as a GPU run.
  EMBED=(--model small --images 16 --batch 8 --rounds 1 --skip-torch)
  PREPARE=(--images 64)
  TRAIN=(--rounds 1 --steps 3 --warmup 1)
  TRAIN_BIG=(--batch 64 --rounds 1 --steps 2 --warmup 1)
  PROFILE=(--steps 2 --warmup 1)
  PROFILE_BIG=(--batch 64 --steps 2 --warmup 1)
else
  EMBED=(--images "${EMBED_IMAGES:-512}" --batch "${EMBED_BATCH:-32}" --threads "$(nproc)" --rounds 2 --dtypes fp32)
  if [ -n "$TORCH_EMBED" ]; then EMBED+=(--python "$PY" --torch-device "$TORCH_EMBED"); else EMBED+=(--skip-torch); fi
  PREPARE=(--images "${PREPARE_IMAGES:-1000}")
  PROFILE=(--steps 20)
  PROFILE_BIG=(--batch 4096 --steps 5)
  read -ra TRAIN <<<"${TRAIN_ARGS:---rounds 1 --steps 20}"
  read -ra TRAIN_BIG <<<"${TRAIN_BIG_ARGS:---batch 4096 --rounds 1 --steps 10 --warmup 3}"
fi
# The big batch times the webgpu engine alone (the CPU engines take seconds a step there), beside PyTorch on CUDA only.
TRAIN+=(--python "$PY")
TRAIN_BIG+=(--python "$PY" --skip-wasm --skip-ort)
case $TORCH_TRAIN in
  cuda) TRAIN+=(--torch-device cuda) && TRAIN_BIG+=(--torch-device cuda) ;;
  cpu) TRAIN_BIG+=(--skip-torch) ;;
  *) TRAIN+=(--skip-torch) && TRAIN_BIG+=(--skip-torch) ;;
esac

cd "$W/ctl" || exit 1
report() { # a bench's stdout (its results; progress goes to stderr) as RESULT lines, less the per-round ones
  "$@" | tee "$W/bench.out"
  local rc=${PIPESTATUS[0]}
  grep -v -e '^round ' -e '^ *$' "$W/bench.out" | sed 's/^/RESULT /'
  return "$rc"
}
export -f report
# The issues' figures first (embed, train at 256 and 4096), so a short budget cuts the preparation-only steps.
step embed 240 report node bench/embed/run.mjs --device webgpu "${EMBED[@]}"
step train 120 report node bench/train/run.mjs --webgpu "${TRAIN[@]}"
step train-4096 120 report node bench/train/run.mjs --webgpu "${TRAIN_BIG[@]}"
step profile 60 report node bench/train/profile.mjs "${PROFILE[@]}"
step profile-4096 60 report node bench/train/profile.mjs "${PROFILE_BIG[@]}"
step prepare 60 report node bench/embed/prepare.mjs "${PREPARE[@]}"
step prepare-uv 60 env UV_THREADPOOL_SIZE="$(nproc)" bash -c 'report "$@"' _ node bench/embed/prepare.mjs "${PREPARE[@]}"

echo
say "===== SUMMARY ($(($(date +%s) - T0))s)"
cat "$RES"
if [ -n "${OUT:-}" ]; then
  cp "$RES" "$OUT/results.txt"
  cp -r "$W/ctl/bench/out" "$OUT/bench-out" 2>/dev/null
fi
exit 0
