// Benchmarks of core/: storage-dtype conversion and strided copies, reported in GB/s of bytes
// read plus written, and the fixed cost of one parallel_for.
#include <benchmark/benchmark.h>

#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"

using namespace genscope;

namespace {

Tensor random_f32(Shape shape) {
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  uint32_t s = 12345;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = static_cast<float>(s >> 8) / 16777216.0f - 0.5f;
  }
  return t;
}

void report_bytes(benchmark::State& state, const Tensor& in, const Tensor& out) {
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(in.nbytes() + out.nbytes()) * static_cast<double>(state.iterations()),
                                              benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

// f32 -> f16/bf16 of an AIM-3B linear weight's worth of values (3072 x 3072).
void BM_ConvertF32To(benchmark::State& state) {
  const auto dtype = static_cast<DType>(state.range(0));
  const Tensor x = random_f32({3072, 3072});
  Tensor y = Tensor::empty(x.shape(), dtype);
  for (auto _ : state) {
    y.copy_from(x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetLabel(std::string(dtype_name(dtype)));
  report_bytes(state, x, y);
}
BENCHMARK(BM_ConvertF32To)->Arg(static_cast<int>(DType::F16))->Arg(static_cast<int>(DType::BF16))->Unit(benchmark::kMillisecond);

// f16 -> f32 widening, as every f16 checkpoint tensor is read for compute.
void BM_ConvertF16ToF32(benchmark::State& state) {
  const Tensor x = random_f32({3072, 3072}).to(DType::F16);
  Tensor y = Tensor::empty(x.shape(), DType::F32);
  for (auto _ : state) {
    y.copy_from(x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  report_bytes(state, x, y);
}
BENCHMARK(BM_ConvertF16ToF32)->Unit(benchmark::kMillisecond);

// contiguous() of a transposed [1, 12, 197, 64] attention tensor (ViT-B/16 heads).
void BM_ContiguousTransposed(benchmark::State& state) {
  const Tensor x = random_f32({1, 197, 12, 64}).transpose(1, 2);
  for (auto _ : state) {
    Tensor y = x.contiguous();
    benchmark::DoNotOptimize(y.data_ptr());
  }
  report_bytes(state, x, x);
}
BENCHMARK(BM_ContiguousTransposed)->Unit(benchmark::kMicrosecond);

// The fixed cost of dispatching an (almost) empty parallel_for over the global pool.
void BM_ParallelForOverhead(benchmark::State& state) {
  std::atomic<int64_t> sink{0};
  for (auto _ : state) {
    parallel_for(0, 1024, 1, [&](int64_t lo, int64_t hi) { sink += hi - lo; });
  }
  state.counters["threads"] = num_threads();
}
BENCHMARK(BM_ParallelForOverhead)->Unit(benchmark::kMicrosecond);

}  // namespace
