// conv2d benchmarks at the SD VAE's shapes (f32, batch 1, threads = GENSCOPE_NUM_THREADS or nproc).
//
// diffusers AutoencoderKL for SD v1.x: block_out_channels (128, 256, 512, 512), 2 resnets per
// encoder block (3 per decoder block), 3×3 convs with padding 1, encoder downsamplers = 3×3
// stride-2 convs after a (0, 1, 0, 1) pad, 1×1 shortcuts where the channels change. For an image
// of S² the encoder runs at S², S/2², S/4², S/8² with 128, 256, 512, 512 channels and the decoder
// mirrors it. The set below (at S = 256 and S = 512):
//   conv2d/C:3/H:S/W:S/O:128/k:3/stride:1/pad:1        encoder conv_in
//   conv2d/C:128/H:S/W:S/O:128/k:3/stride:1/pad:1      encoder block 0 / decoder block 3 resnets
//   conv2d_down/C:128/H:S/W:S/O:128/k:3/stride:2        encoder downsampler 0, pad (0, 1, 0, 1)
//   conv2d/C:256/H:S/2/W:S/2/O:256/k:3/stride:1/pad:1  encoder block 1 resnets
//   conv2d/C:128/H:S/2/W:S/2/O:256/k:1/stride:1/pad:0  encoder block 1 1×1 shortcut
//   conv2d/C:512/H:S/4/W:S/4/O:512/k:3/stride:1/pad:1  encoder block 2, decoder up-block convs
//   conv2d/C:512/H:S/8/W:S/8/O:512/k:3/stride:1/pad:1  mid block (latent resolution)
// Counter GFLOP/s = 2·O·Ho·Wo·C·kh·kw per iteration (PyTorch's convention: a MAC is 2 flops).
#include <benchmark/benchmark.h>

#include <random>

#include "genscope/core/tensor.hpp"
#include "genscope/ops/conv2d.hpp"

using namespace genscope;

namespace {

Tensor random_tensor(Shape shape, unsigned seed) {
  Tensor t = Tensor::empty(shape, DType::F32);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

void run_conv(benchmark::State& state, const ops::Conv2dParams& params) {
  const int64_t C = state.range(0), H = state.range(1), W = state.range(2), O = state.range(3), k = state.range(4);
  const Tensor x = random_tensor({1, C, H, W}, 1), w = random_tensor({O, C, k, k}, 2), b = random_tensor({O}, 3);
  int64_t Ho = 0, Wo = 0;
  for (auto _ : state) {
    Tensor y = ops::conv2d(x, w, &b, params);
    Ho = y.size(2), Wo = y.size(3);
    benchmark::DoNotOptimize(y.data<float>());
  }
  const double flops = 2.0 * O * Ho * Wo * C * k * k;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_conv2d(benchmark::State& state) { run_conv(state, ops::Conv2dParams::make(state.range(5), state.range(6))); }

void BM_conv2d_down(benchmark::State& state) {
  ops::Conv2dParams p = ops::Conv2dParams::make(state.range(5), 0);
  p.pad_bottom = p.pad_right = 1;
  run_conv(state, p);
}

void sd_vae_convs(benchmark::internal::Benchmark* b) {
  for (int64_t s : {256, 512}) {
    b->Args({3, s, s, 128, 3, 1, 1});
    b->Args({128, s, s, 128, 3, 1, 1});
    b->Args({256, s / 2, s / 2, 256, 3, 1, 1});
    b->Args({128, s / 2, s / 2, 256, 1, 1, 0});
    b->Args({512, s / 4, s / 4, 512, 3, 1, 1});
    b->Args({512, s / 8, s / 8, 512, 3, 1, 1});
  }
}

}  // namespace

BENCHMARK(BM_conv2d)->Name("conv2d")->ArgNames({"C", "H", "W", "O", "k", "stride", "pad"})->Apply(sd_vae_convs)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_conv2d_down)->Name("conv2d_down")->ArgNames({"C", "H", "W", "O", "k", "stride"})
    ->Args({128, 256, 256, 128, 3, 2})->Args({128, 512, 512, 128, 3, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
