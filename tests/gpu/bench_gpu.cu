// GPU benchmark of genscope's kernels (build: GENSCOPE_CUDA; run on a machine with a GPU):
//   bench_gpu [--quick]
// prints, per case, the time per call (CUDA events, median of 5 batches after a warm-up), the
// throughput — TFLOP/s for GEMM and attention, effective GB/s (bytes that must move: one read of
// each input, one write of each output) for the memory-bound kernels — the same GEMM through
// cuBLASLt for comparison, and the percentage of an H100 SXM's datasheet peak: 67 TFLOP/s FP32,
// 495 TF32 and 989 FP16/BF16 dense tensor-core TFLOP/s, 3.35 TB/s HBM3.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "genscope/cuda/blas.hpp"
#include "genscope/cuda/runtime.hpp"
#include "kernels/attention.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/gemm.cuh"
#include "kernels/groupnorm.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/softmax.cuh"

using namespace genscope;
using kernels::Activation;

namespace {

constexpr double kPeakFp32 = 67e12, kPeakTf32 = 495e12, kPeakFp16 = 989e12, kPeakBandwidth = 3.35e12;

// A device array filled with N(0, 1) values of T.
template <class T>
T* device_random(size_t n, unsigned seed) {
  std::vector<T> host(n);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (T& v : host) v = kernels::from_float<T>(dist(rng));
  T* p = nullptr;
  GENSCOPE_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
  GENSCOPE_CUDA_CHECK(cudaMemcpy(p, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}

// Milliseconds per call: median of 5 batches of `iters` calls, after one warm-up batch.
double time_ms(const std::function<void()>& call, int iters) {
  cuda::Event start(true), stop(true);
  for (int i = 0; i < iters; ++i) call();
  std::vector<double> batches;
  for (int b = 0; b < 5; ++b) {
    start.record(nullptr);
    for (int i = 0; i < iters; ++i) call();
    stop.record(nullptr);
    stop.synchronize();
    batches.push_back(stop.elapsed_ms_since(start) / iters);
  }
  std::sort(batches.begin(), batches.end());
  return batches[2];
}

void report_flops(const char* name, double flops, double ms, double peak, double baseline_ms = 0) {
  const double rate = flops / (ms * 1e-3);
  std::printf("%-44s %9.3f ms %8.1f TFLOP/s %6.1f%% of peak", name, ms, rate / 1e12, 100.0 * rate / peak);
  if (baseline_ms > 0) std::printf(" %6.1f%% of cuBLASLt", 100.0 * baseline_ms / ms);
  std::printf("\n");
}

void report_bytes(const char* name, double bytes, double ms) {
  const double rate = bytes / (ms * 1e-3);
  std::printf("%-44s %9.3f ms %8.1f GB/s    %6.1f%% of peak\n", name, ms, rate / 1e9, 100.0 * rate / kPeakBandwidth);
}

void bench_gemm(int n, int iters) {
  float* a = device_random<float>(size_t(n) * n, 1);
  float* b = device_random<float>(size_t(n) * n, 2);
  float* c = device_random<float>(size_t(n) * n, 3);
  f16* ah = device_random<f16>(size_t(n) * n, 4);
  f16* bh = device_random<f16>(size_t(n) * n, 5);
  f16* ch = device_random<f16>(size_t(n) * n, 6);
  bf16* ab = device_random<bf16>(size_t(n) * n, 7);
  bf16* bb = device_random<bf16>(size_t(n) * n, 8);
  bf16* cb = device_random<bf16>(size_t(n) * n, 9);
  const double flops = 2.0 * n * n * n;
  auto lt = [&](cuda::GemmPrecision p, const void* x, const void* y, void* z) {
    return time_ms([&] { cuda::gemm(ops::Trans::No, ops::Trans::No, n, n, n, 1.0f, x, n, y, n, 0.0f, z, n, p, nullptr); }, iters);
  };
  const double f32_ms = lt(cuda::GemmPrecision::F32, a, b, c);
  char name[96];
  std::snprintf(name, sizeof name, "gemm %d^3 f32 cuBLASLt", n);
  report_flops(name, flops, f32_ms, kPeakFp32);
  kernels::GemmArgs g{a, n, b, n, c, n, n, n, n, 1.0f, nullptr, nullptr, 0};
  const double ours = time_ms([&] { kernels::gemm_f32<false>(g, Activation::None, nullptr); }, iters);
  std::snprintf(name, sizeof name, "gemm %d^3 f32 genscope SIMT", n);
  report_flops(name, flops, ours, kPeakFp32, f32_ms);
  const double bias_ms = time_ms([&] {
    kernels::GemmArgs gb = g;
    gb.bias = a;
    gb.residual = b;
    gb.ld_residual = n;
    kernels::gemm_f32<true>(gb, Activation::Gelu, nullptr);
  }, iters);
  std::snprintf(name, sizeof name, "gemm %d^3 f32 genscope +bias+gelu+residual", n);
  report_flops(name, flops, bias_ms, kPeakFp32, f32_ms);
  std::snprintf(name, sizeof name, "gemm %d^3 tf32 cuBLASLt", n);
  report_flops(name, flops, lt(cuda::GemmPrecision::TF32, a, b, c), kPeakTf32);
  std::snprintf(name, sizeof name, "gemm %d^3 f16 cuBLASLt", n);
  report_flops(name, flops, lt(cuda::GemmPrecision::F16, ah, bh, ch), kPeakFp16);
  std::snprintf(name, sizeof name, "gemm %d^3 bf16 cuBLASLt", n);
  report_flops(name, flops, lt(cuda::GemmPrecision::BF16, ab, bb, cb), kPeakFp16);
  const double epi = time_ms([&] { kernels::gemm_epilogue(ch, n, a, Activation::Gelu, bh, n, n, n, nullptr); }, iters);
  std::snprintf(name, sizeof name, "gemm epilogue %dx%d f16 bias+gelu+residual", n, n);
  report_bytes(name, 3.0 * n * n * sizeof(f16), epi);
  for (void* p : {static_cast<void*>(a), static_cast<void*>(b), static_cast<void*>(c), static_cast<void*>(ah), static_cast<void*>(bh),
                  static_cast<void*>(ch), static_cast<void*>(ab), static_cast<void*>(bb), static_cast<void*>(cb)})
    cudaFree(p);
}

template <class T>
void bench_attention(const char* label, int heads, int len, int dim, int iters) {
  const size_t n = size_t(heads) * len * dim;
  T* q = device_random<T>(n, 1);
  T* k = device_random<T>(n, 2);
  T* v = device_random<T>(n, 3);
  T* o = device_random<T>(n, 4);
  const double ms = time_ms([&] { kernels::attention(q, k, v, o, heads, len, len, dim, 0.125f, nullptr); }, iters);
  char name[96];
  std::snprintf(name, sizeof name, "attention %s heads=%d S=%d D=%d", label, heads, len, dim);
  report_flops(name, 4.0 * heads * len * double(len) * dim, ms, sizeof(T) == 4 ? kPeakFp32 : kPeakFp16);
  for (T* p : {q, k, v, o}) cudaFree(p);
}

template <class T>
void bench_memory_bound(const char* label, int iters) {
  const int64_t rows = 8192, cols = 4096, n = rows * cols;
  T* x = device_random<T>(n, 1);
  T* y = device_random<T>(n, 2);
  float* gamma = device_random<float>(4096, 3);
  char name[96];
  std::snprintf(name, sizeof name, "gelu %s 32M", label);
  report_bytes(name, 2.0 * n * sizeof(T), time_ms([&] { kernels::activation(Activation::Gelu, x, y, n, nullptr); }, iters));
  std::snprintf(name, sizeof name, "softmax %s 8192x4096", label);
  report_bytes(name, 2.0 * n * sizeof(T), time_ms([&] { kernels::softmax(x, y, rows, cols, 1.0f, nullptr); }, iters));
  std::snprintf(name, sizeof name, "layer_norm %s 8192x4096", label);
  report_bytes(name, 2.0 * n * sizeof(T), time_ms([&] { kernels::layer_norm(x, gamma, gamma, y, rows, cols, 1e-5f, Activation::None, nullptr); }, iters));
  std::snprintf(name, sizeof name, "group_norm+silu %s [2,512,128x256] G=32", label);
  report_bytes(name, 2.0 * n * sizeof(T),
               time_ms([&] { kernels::group_norm(x, gamma, gamma, y, 2, 512, 128 * 256, 32, 1e-6f, Activation::Silu, nullptr); }, iters));
  cudaFree(x);
  cudaFree(y);
  cudaFree(gamma);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  if (!cuda::available()) {
    std::printf("bench_gpu: no CUDA device visible\n");
    return 1;
  }
  cudaDeviceProp prop{};
  GENSCOPE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, sm_%d%d\n", prop.name, prop.multiProcessorCount, prop.major, prop.minor);
  const int iters = quick ? 3 : 20;
  bench_gemm(quick ? 2048 : 4096, iters);
  bench_attention<float>("f32", 16, quick ? 1024 : 4096, 64, iters);
  bench_attention<f16>("f16", 16, quick ? 1024 : 4096, 64, iters);
  bench_attention<f16>("f16", 8, quick ? 1024 : 4096, 40, iters);
  bench_attention<f16>("f16", 1, quick ? 1024 : 4096, 512, iters);
  bench_memory_bound<float>("f32", iters);
  bench_memory_bound<f16>("f16", iters);
  return 0;
}
