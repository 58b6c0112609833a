// Compiled by nvcc: genscope's headers must build in a CUDA translation unit (users include them
// from .cu files), and host code nvcc compiles must compute what the g++ build computes. The
// values are the IEEE ones checked in test_core; nothing here needs a GPU at run time.
#include <cmath>
#include <cstdio>

#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"

int main() {
  using namespace genscope;
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::printf("FAILED: %s\n", what);
      ++failures;
    }
  };
  check(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00, "f16 tie to even");
  check(f32_to_f16(65520.0f) == 0x7C00, "f16 overflow to Inf");
  check(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3F82, "bf16 tie to even");
  Tensor t = Tensor::zeros({2, 3}, DType::F32);
  t.data<float>()[4] = 7.0f;
  check(t.transpose(0, 1).contiguous().item({1, 1}) == 7.0, "transpose + contiguous");
  check(t.view({3, 2}).item({2, 0}) == 7.0, "view");
  std::printf("nvcc host code: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
