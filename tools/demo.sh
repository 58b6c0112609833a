#!/usr/bin/env bash
# Sets everything up and runs genscope's main job on files shipped in the repository:
# installs missing Debian packages, builds the command line, then shows what a CLIP-style
# model would see for a photograph (`genscope preprocess`) and lists the tensor file it wrote
# (`genscope inspect`). Later issues turn this into detection.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tools/setup.sh
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=Release -DGENSCOPE_BUILD_TESTS=OFF -DGENSCOPE_BUILD_EXAMPLES=OFF \
  -DGENSCOPE_BUILD_BENCH=OFF -DGENSCOPE_CUDA=OFF >/dev/null
cmake --build build-demo -j "$(nproc)" --target genscope_cli
gs=build-demo/tools/genscope
set -x
"$gs" --version
"$gs" preprocess examples/data/astronaut.jpg --resize 224 --interp bicubic --crop 224 \
  --mean 0.48145466,0.4578275,0.40821073 --std 0.26862954,0.26130258,0.27577711 --out build-demo/astronaut.safetensors
"$gs" inspect build-demo/astronaut.safetensors
