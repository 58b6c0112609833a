#!/usr/bin/env bash
# Installs the Debian packages genscope's build, tests and fuzzers need, if any are missing.
# Sourced or run by tools/demo.sh and tools/test.sh; safe to run again (installs nothing twice).
#   tools/setup.sh            packages to build the library and the command line
#   tools/setup.sh --tests    also what the tests read and the fuzzers need
set -euo pipefail

packages=(cmake make g++ pkg-config libstb-dev)
if [[ "${1:-}" == "--tests" ]]; then
  # doctest and Google Benchmark: test and benchmark frameworks; clang + libclang-rt: libFuzzer
  # and sanitizers; opencv-doc and python3-skimage: the real photographs the image tests decode.
  packages+=(doctest-dev libbenchmark-dev clang libclang-rt-dev opencv-doc python3-skimage)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: packages ready"
