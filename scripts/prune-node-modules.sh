#!/bin/sh
# Prunes a production node_modules to what ctl loads on this platform: other platforms' native binaries (onnxruntime-
# node, webgpu), the browser and source builds of tfjs and transformers.js (Node loads each package's *.node.js
# bundle, the wasm backend its .wasm files; transformers.js's node build bundles what it needs of onnxruntime-web),
# types, maps, docs and tests. Used by the Dockerfile and bench/gpu/pack.sh; run it after `npm prune --omit=dev`.
#
#   scripts/prune-node-modules.sh NODE_MODULES
set -eu
NM=${1:?usage: prune-node-modules.sh NODE_MODULES}
PLATFORM=$(node -p process.platform)
ARCH=$(node -p process.arch)
rm -rf "$NM"/@types "$NM"/onnxruntime-web
find "$NM" -depth -type d \( -name test -o -name tests -o -name __tests__ -o -name docs -o -name example -o -name examples \) \
  -exec rm -rf {} +
find "$NM" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '*.md' -o -name '*.ts' \) -delete
find "$NM/onnxruntime-node/bin" -mindepth 2 -maxdepth 2 ! -path "*/$PLATFORM" -exec rm -rf {} +
find "$NM/onnxruntime-node/bin" -mindepth 3 -maxdepth 3 ! -path "*/$PLATFORM/$ARCH" -exec rm -rf {} +
find "$NM/webgpu/dist" -mindepth 1 -maxdepth 1 -type d ! -name "$PLATFORM-$ARCH" -exec rm -rf {} +
for p in "$NM"/@tensorflow/*; do
  find "$p/dist" -mindepth 1 \( -type d -o ! \( -name '*.node.js' -o -name '*.wasm' \) \) -prune -exec rm -rf {} +
  rm -rf "$p/src" "$p/wasm-out" "$p/scripts"
done
find "$NM/@huggingface/transformers/dist" -type f ! -name transformers.node.mjs -delete
rm -rf "$NM/@huggingface/transformers/src" "$NM/@huggingface/transformers/types"
