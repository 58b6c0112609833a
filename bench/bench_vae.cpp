// Benchmarks of the SD VAE (models/vae.hpp): encode + decode of one image at 256² and 512², CPU,
// f32, SD v1.4's configuration. Counters: MP/s (input megapixels per second) and peak_rss_MB
// (getrusage's high-water mark of the whole process, so run one size per process for a clean
// figure: --benchmark_filter=/512), rss_before_MB (the same before the first pass) and cpu_s
// (process CPU seconds per pass, all threads). GENSCOPE_CONV_WINOGRAD=0 times the implicit-GEMM
// convolutions instead of Winograd (ops/conv2d.hpp).
//
// Weights: the file named by GENSCOPE_BENCH_VAE (any layout). Random SD v1.4 weights for it:
//   python3 tools/bench_vae_torch.py --write-weights /tmp/sd14_random.safetensors
// which also times diffusers on the same machine, side by side.
#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>

#include "genscope/models/vae.hpp"

using namespace genscope;

namespace {

const models::AutoencoderKL* vae() {
  static std::unique_ptr<models::AutoencoderKL> m = [] {
    const char* path = std::getenv("GENSCOPE_BENCH_VAE");
    return path ? std::make_unique<models::AutoencoderKL>(models::AutoencoderKL::load(path)) : nullptr;
  }();
  return m.get();
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

// CPU seconds of the whole process (all threads, user + system): on shared cores a steadier
// figure than wall time; tools/bench_vae_torch.py reports torch's the same way (process_time).
double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

Tensor smooth_image(int64_t size) {
  Tensor x = Tensor::empty({1, 3, size, size}, DType::F32);
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = std::sin(0.01f * static_cast<float>(i % size)) * std::cos(0.013f * static_cast<float>(i / size % size));
  return x;
}

// The UAR/RAID round trip's cost: encode to the posterior, decode its mean.
void BM_VaeEncodeDecode(benchmark::State& state) {
  const models::AutoencoderKL* m = vae();
  if (!m) {
    state.SkipWithError("set GENSCOPE_BENCH_VAE to an SD VAE .safetensors (see the file comment)");
    return;
  }
  const int64_t size = state.range(0);
  const Tensor x = smooth_image(size);
  // Resident before the first pass: the weights are a file mapping, resident only once touched.
  state.counters["rss_before_MB"] = peak_rss_mb();
  const double cpu0 = process_cpu_s();
  for (auto _ : state) {
    const Tensor y = m->decode(m->encode(x).mean);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.counters["cpu_s"] = (process_cpu_s() - cpu0) / static_cast<double>(state.iterations());
  state.counters["MP/s"] = benchmark::Counter(static_cast<double>(size * size) * 1e-6 * static_cast<double>(state.iterations()),
                                             benchmark::Counter::kIsRate);
  state.counters["peak_rss_MB"] = peak_rss_mb();
}
BENCHMARK(BM_VaeEncodeDecode)->Arg(256)->Arg(512)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();

void BM_VaeEncode(benchmark::State& state) {
  const models::AutoencoderKL* m = vae();
  if (!m) {
    state.SkipWithError("set GENSCOPE_BENCH_VAE to an SD VAE .safetensors (see the file comment)");
    return;
  }
  const Tensor x = smooth_image(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(m->encode(x).mean.data_ptr());
  state.counters["peak_rss_MB"] = peak_rss_mb();
}
BENCHMARK(BM_VaeEncode)->Arg(256)->Arg(512)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();

void BM_VaeDecode(benchmark::State& state) {
  const models::AutoencoderKL* m = vae();
  if (!m) {
    state.SkipWithError("set GENSCOPE_BENCH_VAE to an SD VAE .safetensors (see the file comment)");
    return;
  }
  const int64_t l = state.range(0) / m->config.downsample_factor();
  Tensor z = Tensor::empty({1, m->config.latent_channels, l, l}, DType::F32);
  for (int64_t i = 0; i < z.numel(); ++i) z.data<float>()[i] = std::sin(0.1f * static_cast<float>(i));
  for (auto _ : state) benchmark::DoNotOptimize(m->decode(z).data_ptr());
  state.counters["peak_rss_MB"] = peak_rss_mb();
}
BENCHMARK(BM_VaeDecode)->Arg(256)->Arg(512)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();

}  // namespace
