# ctl in a container: Node 20, the npm dependencies (onnxruntime-node with its WebGPU provider, Dawn for Node), the
# built CLI. GPU embedding through WebGPU needs only the Vulkan loader here: the NVIDIA container toolkit mounts the
# driver and its Vulkan ICD when the `graphics` capability is asked for (below). CUDA is not in this image.
FROM node:20-bookworm-slim

RUN apt-get update \
  && apt-get install -y --no-install-recommends libvulkan1 libx11-6 libxext6 \
  && rm -rf /var/lib/apt/lists/*
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics

WORKDIR /app
COPY . .
# `npm ci` builds dist/ (the prepare script); then the dev dependencies go, and what this platform does not load
# (other platforms' binaries, browser builds, types, docs): scripts/prune-node-modules.sh.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev && scripts/prune-node-modules.sh node_modules \
  && npm cache clean --force

ENV CTL_WORKDIR=/work
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["--help"]
