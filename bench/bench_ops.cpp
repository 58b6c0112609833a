// Benchmarks of the CPU ops other than GEMM and conv2d, at the shapes the models run
// (f32, threads = GENSCOPE_NUM_THREADS or nproc). Names: <op>/<key>:<value>/... as
// tools/bench_compare.py parses them, e.g. layer_norm/rows:197/dim:768.
//
// Counters: GB/s = bytes read + written per iteration (memory-bound ops); GFLOP/s for attention
// (4·B·H·Tq·Tk·D: the two matrix products) and FFT (the usual 5·N·log2(N) per complex 2-D
// transform of N = H·W points, per channel). Attention also reports working_MB: the peak bytes
// allocated during one attention_into call beyond what was allocated before it (the output is
// preallocated), counted by the replaced operator new below — the issue's < 64 MB target at 4096
// tokens × 512 dims, and the 65 536-token case that must fit.
//
// Shapes: ViT-B/16 (197 tokens, width 768, MLP 3072, 12 heads × 64), AIM-3B (256 tokens, width
// 3072, 24 heads × 128), SD VAE (GroupNorm 32 groups on 512 ch at 64² and 128 ch at 512², mid-block
// attention over 64² = 4096 tokens × 512, Upsample2D), the spectral detector's FFT (224² and
// 256², 3 channels).
#include <benchmark/benchmark.h>

#include <malloc.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <random>

#include "genscope/core/tensor.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/attention.hpp"
#include "genscope/ops/elementwise.hpp"
#include "genscope/ops/fft.hpp"
#include "genscope/ops/norm.hpp"
#include "genscope/ops/reduce.hpp"
#include "genscope/ops/similarity.hpp"
#include "genscope/ops/softmax.hpp"
#include "genscope/ops/upsample.hpp"

// ---- counted allocation ------------------------------------------------------------------------
// Every operator new of this program goes through malloc/aligned_alloc; live bytes (as
// malloc_usable_size reports them) and their high-water mark are kept in atomics.
namespace {
std::atomic<int64_t> g_live_bytes{0}, g_peak_bytes{0};

void* counted_alloc(size_t size, size_t align) {
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) p = std::malloc(size ? size : 1);
  else if (posix_memalign(&p, align, size ? size : 1) != 0) p = nullptr;
  if (!p) return nullptr;
  const int64_t live = g_live_bytes.fetch_add(static_cast<int64_t>(malloc_usable_size(p))) + static_cast<int64_t>(malloc_usable_size(p));
  int64_t peak = g_peak_bytes.load();
  while (live > peak && !g_peak_bytes.compare_exchange_weak(peak, live)) {
  }
  return p;
}
void counted_free(void* p) {
  if (!p) return;
  g_live_bytes.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)));
  std::free(p);
}
void* counted_or_throw(size_t size, size_t align) {
  if (void* p = counted_alloc(size, align)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(size_t n) { return counted_or_throw(n, 0); }
void* operator new[](size_t n) { return counted_or_throw(n, 0); }
void* operator new(size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new(size_t n, std::align_val_t a) { return counted_or_throw(n, static_cast<size_t>(a)); }
void* operator new[](size_t n, std::align_val_t a) { return counted_or_throw(n, static_cast<size_t>(a)); }
void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted_alloc(n, static_cast<size_t>(a)); }
void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return counted_alloc(n, static_cast<size_t>(a)); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, size_t) noexcept { counted_free(p); }
void operator delete[](void* p, size_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }

using namespace genscope;

namespace {

Tensor random_tensor(Shape shape, unsigned seed = 1, float scale = 1.0f) {
  Tensor t = Tensor::empty(shape, DType::F32);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

void set_bytes(benchmark::State& state, double bytes_per_iter) {
  state.counters["GB/s"] = benchmark::Counter(bytes_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void set_flops(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- norms ----------------------------------------------------------------------------------------

void BM_layer_norm(benchmark::State& state) {
  const int64_t rows = state.range(0), dim = state.range(1);
  const Tensor x = random_tensor({rows, dim}), w = random_tensor({dim}, 2), b = random_tensor({dim}, 3);
  for (auto _ : state) benchmark::DoNotOptimize(ops::layer_norm(x, w, b, 1e-6f).data_ptr());
  set_bytes(state, 2.0 * rows * dim * 4);
}
BENCHMARK(BM_layer_norm)->Name("layer_norm")->ArgNames({"rows", "dim"})->Args({197, 768})->Args({256, 3072})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_group_norm_silu(benchmark::State& state) {
  const int64_t ch = state.range(0), hw = state.range(1);
  const Tensor x = random_tensor({1, ch, hw, hw}), w = random_tensor({ch}, 2), b = random_tensor({ch}, 3);
  for (auto _ : state) benchmark::DoNotOptimize(ops::group_norm(x, 32, w, b, 1e-6f, true).data_ptr());
  set_bytes(state, 2.0 * ch * hw * hw * 4);
}
BENCHMARK(BM_group_norm_silu)->Name("group_norm_silu")->ArgNames({"ch", "hw"})->Args({512, 64})->Args({128, 512})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- softmax, activations, elementwise, reductions, upsample, similarity -----------------------

void BM_softmax(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const Tensor x = random_tensor({rows, cols}, 1, 3.0f);
  for (auto _ : state) benchmark::DoNotOptimize(ops::softmax(x, -1).data_ptr());
  set_bytes(state, 2.0 * rows * cols * 4);
}
// ViT-B attention probabilities (12 heads × 197 queries, 197 keys) and SD VAE mid-block (4096²).
BENCHMARK(BM_softmax)->Name("softmax")->ArgNames({"rows", "cols"})->Args({12 * 197, 197})->Args({4096, 4096})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_activation(benchmark::State& state, ops::Activation act) {
  const int64_t rows = state.range(0), dim = state.range(1);
  const Tensor x = random_tensor({rows, dim});
  for (auto _ : state) benchmark::DoNotOptimize(ops::activate(x, act).data_ptr());
  set_bytes(state, 2.0 * rows * dim * 4);
}
BENCHMARK_CAPTURE(BM_activation, gelu, ops::Activation::Gelu)->Name("gelu")->ArgNames({"rows", "dim"})->Args({197, 3072})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_activation, gelu_tanh, ops::Activation::GeluTanh)->Name("gelu_tanh")->ArgNames({"rows", "dim"})
    ->Args({197, 3072})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_activation, quick_gelu, ops::Activation::QuickGelu)->Name("quick_gelu")->ArgNames({"rows", "dim"})
    ->Args({257, 4096})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_activation, silu, ops::Activation::Silu)->Name("silu")->ArgNames({"rows", "dim"})->Args({128, 512 * 512})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_add_bias(benchmark::State& state) {
  const int64_t rows = state.range(0), dim = state.range(1);
  const Tensor x = random_tensor({rows, dim}), b = random_tensor({dim}, 2);
  for (auto _ : state) benchmark::DoNotOptimize(ops::add(x, b).data_ptr());
  set_bytes(state, 2.0 * rows * dim * 4);
}
BENCHMARK(BM_add_bias)->Name("add")->ArgNames({"rows", "dim"})->Args({197, 768})->Args({256, 3072})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_mean(benchmark::State& state) {
  const int64_t rows = state.range(0), dim = state.range(1);
  const Tensor x = random_tensor({rows, dim});
  for (auto _ : state) benchmark::DoNotOptimize(ops::mean(x, -1).data_ptr());
  set_bytes(state, 1.0 * rows * dim * 4);
}
BENCHMARK(BM_mean)->Name("mean")->ArgNames({"rows", "dim"})->Args({197, 768})->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_upsample(benchmark::State& state) {
  const int64_t ch = state.range(0), hw = state.range(1);
  const Tensor x = random_tensor({1, ch, hw, hw});
  for (auto _ : state) benchmark::DoNotOptimize(ops::upsample_nearest(x).data_ptr());
  set_bytes(state, 5.0 * ch * hw * hw * 4);  // read 1, write 4
}
BENCHMARK(BM_upsample)->Name("upsample_nearest")->ArgNames({"ch", "hw"})->Args({512, 64})->Args({256, 256})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_cosine_similarity(benchmark::State& state) {
  const int64_t rows = state.range(0), dim = state.range(1);
  const Tensor a = random_tensor({rows, dim}), b = random_tensor({rows, dim}, 2);
  for (auto _ : state) benchmark::DoNotOptimize(ops::cosine_similarity(a, b, 1).data_ptr());
  set_bytes(state, 2.0 * rows * dim * 4);
}
BENCHMARK(BM_cosine_similarity)->Name("cosine_similarity")->ArgNames({"rows", "dim"})->Args({1024, 768})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- attention ---------------------------------------------------------------------------------

// Times attention_into and records its working memory: the peak of counted allocations above
// what was live before the call, over all iterations, as the counter working_MB.
void time_attention(benchmark::State& state, Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v) {
  int64_t working = 0;
  for (auto _ : state) {
    const int64_t before = g_live_bytes.load();
    g_peak_bytes.store(before);
    ops::attention_into(out, q, k, v);
    working = std::max(working, g_peak_bytes.load() - before);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  state.counters["working_MB"] = static_cast<double>(working) / (1 << 20);
}

void BM_attention(benchmark::State& state) {
  const int64_t tokens = state.range(0), heads = state.range(1), dim = state.range(2);
  const Tensor q = random_tensor({1, heads, tokens, dim}, 1), k = random_tensor({1, heads, tokens, dim}, 2);
  const Tensor v = random_tensor({1, heads, tokens, dim}, 3);
  Tensor out = Tensor::empty({1, heads, tokens, dim}, DType::F32);
  time_attention(state, out, q, k, v);
  set_flops(state, 4.0 * heads * tokens * tokens * dim);
}
BENCHMARK(BM_attention)->Name("attention")->ArgNames({"tokens", "heads", "dim"})->Args({197, 12, 64})->Args({256, 24, 128})
    ->Args({4096, 1, 512})->Unit(benchmark::kMillisecond)->UseRealTime();

// 65 536 keys × 512 dims (the SD VAE mid-block at 2048²): q, k, v are 128 MiB each, and the
// working memory of one call is what must stay small. Only `queries` rows are computed (the full
// 65 536² product is ~9 TFLOP); working memory does not depend on the number of queries beyond
// one tile per thread.
void BM_attention_memory(benchmark::State& state) {
  const int64_t queries = state.range(0), keys = state.range(1), dim = state.range(2);
  const Tensor q = random_tensor({1, 1, queries, dim}, 1), k = random_tensor({1, 1, keys, dim}, 2, 0.05f);
  const Tensor v = random_tensor({1, 1, keys, dim}, 3);
  Tensor out = Tensor::empty({1, 1, queries, dim}, DType::F32);
  time_attention(state, out, q, k, v);
  set_flops(state, 4.0 * queries * keys * dim);
  state.counters["inputs_MB"] = static_cast<double>(q.nbytes() + k.nbytes() + v.nbytes()) / (1 << 20);
}
BENCHMARK(BM_attention_memory)->Name("attention_memory")->ArgNames({"queries", "keys", "dim"})->Args({128, 65536, 512})
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

// ---- FFT ---------------------------------------------------------------------------------------

void BM_fft2_real(benchmark::State& state) {
  const int64_t size = state.range(0), channels = state.range(1);
  const Tensor x = random_tensor({channels, size, size});
  for (auto _ : state) benchmark::DoNotOptimize(ops::fft2_real(x).data_ptr());
  const double n = static_cast<double>(size * size);
  set_flops(state, 5.0 * n * std::log2(n) * channels);
}
BENCHMARK(BM_fft2_real)->Name("fft2_real")->ArgNames({"size", "channels"})->Args({224, 3})->Args({256, 3})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_fft2(benchmark::State& state) {
  const int64_t size = state.range(0), channels = state.range(1);
  const Tensor x = random_tensor({channels, size, size, 2});
  for (auto _ : state) benchmark::DoNotOptimize(ops::fft2(x).data_ptr());
  const double n = static_cast<double>(size * size);
  set_flops(state, 5.0 * n * std::log2(n) * channels);
}
BENCHMARK(BM_fft2)->Name("fft2")->ArgNames({"size", "channels"})->Args({224, 3})->Args({256, 3})->Args({97, 3})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
