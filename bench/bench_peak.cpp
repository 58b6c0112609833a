// The machine's peak f32 rate, measured once so every op can report % of peak.
//
// Each thread runs 16 independent FMA chains on the widest vector registers the build targets
// (zmm with AVX-512F, ymm with AVX2+FMA): 16 chains exceed latency × FMA ports (4 cycles × 2 on
// Intel cores since Skylake-SP), so the loop is bound by FMA throughput alone. One FMA on a
// W-lane vector is 2·W flops.
//   peak_fma/threads:1   one thread
//   peak_fma/threads:N   every thread of genscope's pool (GENSCOPE_NUM_THREADS or nproc)
#include <benchmark/benchmark.h>

#include <thread>
#include <vector>

#include "genscope/core/thread_pool.hpp"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kIterations = 1 << 22;  // per thread per benchmark iteration
constexpr int kChains = 16;

#if defined(__AVX512F__)
constexpr int kLanes = 16;
float fma_chains(float seed) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(seed + static_cast<float>(c));
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < kIterations; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], m, a);
  }
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  float sum = 0;
  for (float v : out) sum += v;
  return sum;
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kLanes = 8;
float fma_chains(float seed) {
  __m256 acc[kChains / 2 + 4];  // 12 chains: AVX2 has 16 ymm registers
  constexpr int chains = kChains / 2 + 4;
  for (int c = 0; c < chains; ++c) acc[c] = _mm256_set1_ps(seed + static_cast<float>(c));
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < kIterations * kChains / chains; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < chains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
  }
  float out[8];
  __m256 s = acc[0];
  for (int c = 1; c < chains; ++c) s = _mm256_add_ps(s, acc[c]);
  _mm256_storeu_ps(out, s);
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
#else
constexpr int kLanes = 1;
float fma_chains(float seed) {
  float acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = seed + static_cast<float>(c);
  for (int64_t i = 0; i < kIterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * 0.999999f + 1e-7f;
  float s = 0;
  for (float v : acc) s += v;
  return s;
}
#endif

void BM_peak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  std::vector<float> sink(static_cast<size_t>(threads));
  for (auto _ : state) {
    std::vector<std::thread> workers;
    for (int t = 1; t < threads; ++t) workers.emplace_back([&, t] { sink[static_cast<size_t>(t)] = fma_chains(static_cast<float>(t)); });
    sink[0] = fma_chains(0.0f);
    for (auto& w : workers) w.join();
    benchmark::DoNotOptimize(sink.data());
  }
  const double flops = 2.0 * kLanes * kChains * static_cast<double>(kIterations) * threads;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_peak)->Name("peak_fma")->ArgName("threads")->Arg(1)->Apply([](auto* b) {
  if (genscope::num_threads() > 1) b->Arg(genscope::num_threads());
})->Unit(benchmark::kMillisecond)->UseRealTime();
