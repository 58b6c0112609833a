#!/usr/bin/env bash
# Sets everything up and runs all of genscope's tests on a fresh Debian machine:
#   1. installs missing Debian packages (tools/setup.sh --tests);
#   2. configures, builds and runs ctest (all labels; the nvcc tests when the CUDA toolkit is found);
#   3. installs genscope and builds a consumer with find_package(genscope), and one with add_subdirectory;
#   4. builds the tests with AddressSanitizer + UndefinedBehaviorSanitizer and runs them, and the
#      emulated CUDA kernel tests (label simt) with ThreadSanitizer;
#   5. runs each libFuzzer target for GENSCOPE_FUZZ_SECONDS (default 60) from its committed corpus.
# Options: --quick runs steps 1-2 only. Build folders: build/, build-asan/, build-tsan/, build-fuzz/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
jobs=$(nproc)
start=$(date +%s)
step() { echo; echo "=== $* ($(($(date +%s) - start)) s)"; }

step "setup"
bash tools/setup.sh --tests

step "build and test (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

if ((quick)); then
  step "done (quick)"
  exit 0
fi

step "install, then consume with find_package and add_subdirectory"
rm -rf build/prefix build/consumer-installed build/consumer-subdir
cmake --install build --prefix build/prefix >/dev/null
cmake -S tests/consumer -B build/consumer-installed -DCMAKE_PREFIX_PATH="$root/build/prefix" -DGENSCOPE_CUDA=OFF >/dev/null
cmake --build build/consumer-installed -j "$jobs" >/dev/null
build/consumer-installed/consumer
cmake -S tests/consumer -B build/consumer-subdir -DGENSCOPE_SOURCE_DIR="$root" -DGENSCOPE_CUDA=OFF >/dev/null
cmake --build build/consumer-subdir -j "$jobs" >/dev/null
build/consumer-subdir/consumer

step "tests under ASan + UBSan"
# -O0 -g1: with both sanitizers, -O2 -g compiles genscope's template-heavy tests ~6x slower than
# -O0 (measured: test_gemm.cpp 103 s vs 17 s), which would not fit CI. detect.shared_svm (an SMO
# fit on 2000 x 3072 features) takes minutes unoptimised under ASan and runs in the Release step.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" -DGENSCOPE_SANITIZE=ON \
  -DGENSCOPE_CUDA=OFF -DGENSCOPE_BUILD_BENCH=OFF -DGENSCOPE_BUILD_EXAMPLES=OFF
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE slow -E '^detect[.]shared_svm$'

step "emulated CUDA kernels under ThreadSanitizer (a missing __syncthreads is a data race)"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DGENSCOPE_TSAN=ON -DGENSCOPE_CUDA=OFF \
  -DGENSCOPE_BUILD_TOOLS=OFF -DGENSCOPE_BUILD_BENCH=OFF -DGENSCOPE_BUILD_EXAMPLES=OFF
cmake --build build-tsan -j "$jobs" --target genscope_simt_tests
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -j "$jobs" -L simt

step "fuzzers"
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGENSCOPE_FUZZ=ON \
  -DGENSCOPE_CUDA=OFF -DGENSCOPE_BUILD_TESTS=OFF -DGENSCOPE_BUILD_TOOLS=OFF -DGENSCOPE_BUILD_EXAMPLES=OFF -DGENSCOPE_BUILD_BENCH=OFF
cmake --build build-fuzz -j "$jobs"
for target in safetensors image torch_checkpoint; do
  work=$(mktemp -d)  # new inputs go here; the committed corpus is only read
  build-fuzz/tests/fuzz_$target -max_total_time="${GENSCOPE_FUZZ_SECONDS:-60}" -rss_limit_mb=2048 \
    -artifact_prefix=build-fuzz/ -print_final_stats=1 "$work" "tests/fuzz/corpus/$target" 2>&1 | tail -n 12
  rm -rf "$work"
done

step "all tests passed"
