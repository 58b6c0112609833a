#!/usr/bin/env bash
# Sets everything up and runs genscope's main job on files shipped in the repository:
# installs missing Debian packages, builds the command line, then
#   1. fits RAID's SVM head on real AIM-3B features of 100 real images and their SD-VAE
#      reconstructions (examples/data/uar_sample.safetensors), scores 100 held-out pairs and
#      prints accuracy, AP and ROC-AUC (`genscope fit`, `score`, `eval`);
#   2. shows what a CLIP-style model sees for a photograph (`genscope preprocess`) and lists the
#      tensor file it wrote (`genscope inspect`).
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
S=examples/data/uar_sample.safetensors
"$gs" fit svm --real $S:real_fit --fake $S:fake_fit --gamma auto --out build-demo/svm.safetensors
"$gs" score --model build-demo/svm.safetensors --features $S:real_test --output build-demo/real.csv
"$gs" score --model build-demo/svm.safetensors --features $S:fake_test --output build-demo/sdvae.csv
"$gs" eval --real build-demo/real.csv --fake build-demo/sdvae.csv
"$gs" preprocess examples/data/astronaut.jpg --resize 224 --interp bicubic --crop 224 \
  --mean 0.48145466,0.4578275,0.40821073 --std 0.26862954,0.26130258,0.27577711 --out build-demo/astronaut.safetensors
"$gs" inspect build-demo/astronaut.safetensors
