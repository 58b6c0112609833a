// GEMM benchmarks at the shapes the models run (f32, threads = GENSCOPE_NUM_THREADS or nproc).
//
// Names follow the scheme tools/bench_compare.py parses: <op>/<key>:<value>/... e.g.
//   gemm/M:1024/N:1024/K:1024            C = A·B, all row-major
//   linear/M:197/N:2304/K:768            y = x·wᵀ (torch.nn.functional.linear), w [N, K] f32
//   linear_f16/M:197/N:2304/K:768        the same with w stored f16, converted while packing
// Counter GFLOP/s = 2·M·N·K per iteration.
//
// Shapes: ViT-B/16 at 224² (197 tokens, width 768: qkv 768→2304, proj 768→768, fc1 768→3072,
// fc2 3072→768) and AIM-3B (apple/ml-aim aim-3B: embed_dim 3072, 16×16 = 256 patch tokens at
// 224², mlp_ratio 4 → hidden 12288: qkv 3072→9216, proj 3072→3072, fc1 3072→12288, fc2
// 12288→3072); AIM's MLP is SwiGLU-free (plain GELU MLP, ml-aim `aim/v1/layers.py` MLP). AIM-600M
// (width 1536, hidden 6144, 256 tokens) and ViT-B/16's fc2 at batch 8 (1576 rows) are the shapes
// bench_vit's models spend their time in.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "genscope/core/tensor.hpp"
#include "genscope/ops/gemm.hpp"

using namespace genscope;

namespace {

Tensor random_tensor(Shape shape, DType dtype = DType::F32, unsigned seed = 1) {
  Tensor t = Tensor::empty(shape, DType::F32);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return dtype == DType::F32 ? t : t.to(dtype);
}

void set_flops(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_gemm(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const Tensor a = random_tensor({M, K}, DType::F32, 1), b = random_tensor({K, N}, DType::F32, 2);
  Tensor c = Tensor::empty({M, N}, DType::F32);
  for (auto _ : state) {
    ops::gemm(ops::Trans::No, ops::Trans::No, M, N, K, 1.0f, a.data<float>(), K, b.data<float>(), N, 0.0f,
              c.data<float>(), N);
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * M * N * K);
}

void linear_bench(benchmark::State& state, DType wtype) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const Tensor x = random_tensor({M, K}, DType::F32, 1), w = random_tensor({N, K}, wtype, 2);
  const Tensor bias = random_tensor({N}, DType::F32, 3);
  for (auto _ : state) {
    Tensor y = ops::linear(x, w, &bias);
    benchmark::DoNotOptimize(y.data<float>());
  }
  set_flops(state, 2.0 * M * N * K);
}
void BM_linear(benchmark::State& state) { linear_bench(state, DType::F32); }
void BM_linear_f16(benchmark::State& state) { linear_bench(state, DType::F16); }

// {tokens, out, in} of the model linears.
const std::vector<std::vector<int64_t>> kModelLinears = {
    {197, 2304, 768}, {197, 768, 768}, {197, 3072, 768}, {197, 768, 3072},           // ViT-B/16
    {256, 9216, 3072}, {256, 3072, 3072}, {256, 12288, 3072}, {256, 3072, 12288},  // AIM-3B
    {256, 4608, 1536}, {256, 1536, 1536}, {256, 6144, 1536}, {256, 1536, 6144},    // AIM-600M
    {1576, 768, 3072},                                                             // ViT-B/16 fc2, batch 8
};

}  // namespace

BENCHMARK(BM_gemm)->Name("gemm")->ArgNames({"M", "N", "K"})->Args({1024, 1024, 1024})->Args({197, 2304, 768})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_linear)->Name("linear")->ArgNames({"M", "N", "K"})->Apply([](auto* b) {
  for (const auto& s : kModelLinears) b->Args(s);
})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_linear_f16)->Name("linear_f16")->ArgNames({"M", "N", "K"})->Args({197, 2304, 768})->Args({256, 9216, 3072})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
