// Benchmarks of the Vision Transformers (models/vit*.hpp), CPU, f32, random weights built in
// memory (no checkpoint needed):
//   vit_b16_224/batch:1, batch:8   timm vit_base_patch16_224: 12 blocks, width 768, 12 heads,
//                                  197 tokens, final norm, class-token feature
//   aim_600m_224/batch:1           AIM-600M: width 1536, 12 heads, patch 14 (256 tokens), blocks
//                                  0-19 (the probe reads 14-19) and the attention probe → x_cls
// Counters: images/s, and peak_MB = the process's peak resident memory so far (ru_maxrss); run one
// benchmark per process (--benchmark_filter) for a per-model figure. tools/bench_vit_torch.py
// times PyTorch on the same shapes and prints the ratios side by side.
#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <cstdint>

#include "random_vit.hpp"

using namespace genscope;
using random_models::random_tensor;

namespace {

void report(benchmark::State& state, int64_t batch) {
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(batch) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  state.counters["peak_MB"] = static_cast<double>(ru.ru_maxrss) / 1024.0;
}

void vit_b16_224(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const models::VitFeatureExtractor f = random_models::random_vit_b16();
  const Tensor x = random_tensor({batch, 3, 224, 224}, 2.0f);
  for (auto _ : state) benchmark::DoNotOptimize(f.features(x).data_ptr());
  report(state, batch);
}
BENCHMARK(vit_b16_224)->ArgName("batch")->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();

void aim_600m_224(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const models::VitFeatureExtractor f = random_models::random_aim_600m();
  const Tensor x = random_tensor({batch, 3, 224, 224}, 2.0f);
  for (auto _ : state) benchmark::DoNotOptimize(f.features(x).data_ptr());
  report(state, batch);
}
BENCHMARK(aim_600m_224)->ArgName("batch")->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
