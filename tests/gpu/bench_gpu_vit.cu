// GPU benchmark of the Vision Transformers (models/vit_cuda.hpp; build: GENSCOPE_CUDA; run on a
// machine with a GPU):
//   bench_gpu_vit [--quick]
// Models with random weights built in memory, the shapes of the published checkpoints (as the CPU
// suite bench/bench_vit.cpp builds them):
//   vit_b16_224   timm vit_base_patch16_224: 12 blocks, width 768, 12 heads, 197 tokens, final
//                 norm, class-token feature; batch 1, 8, 64
//   aim_600m_224  AIM-600M: width 1536, 12 heads, patch 14 (256 tokens), blocks 0-19 (the probe
//                 reads 14-19) and the attention probe → x_cls; batch 1, 8, 64
// For each precision (f32, tf32, f16, bf16) it prints the time of one features() call — pixels
// uploaded from the host, features copied back, so what `genscope features --device cuda` pays
// per batch besides decoding — as the median of 5 timed rounds after a warm-up, then ms/image and
// images/s. --quick: batch 1 and 8 only, fewer iterations.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "genscope/models/aim_head.hpp"
#include "genscope/models/vit.hpp"
#include "genscope/models/vit_cuda.hpp"
#include "genscope/models/vit_features.hpp"
#include "bench/random_vit.hpp"

using namespace genscope;
using random_models::random_tensor;
using models::VitPrecision;

namespace {

// Milliseconds per call: the median of 5 rounds of `iters` calls, after one warm-up round.
// features() returns after its result reached the host, so wall time is the GPU's time plus
// the transfers.
double time_ms(models::CudaVitFeatureExtractor& gpu, const Tensor& x, int iters) {
  for (int i = 0; i < iters; ++i) gpu.features(x);
  std::vector<double> rounds;
  for (int r = 0; r < 5; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) gpu.features(x);
    rounds.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / iters);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[2];
}

void bench(const char* name, const models::VitFeatureExtractor& model, const std::vector<int64_t>& batches, bool quick) {
  for (VitPrecision p : {VitPrecision::F32, VitPrecision::TF32, VitPrecision::F16, VitPrecision::BF16}) {
    models::CudaVitFeatureExtractor gpu(model, p);
    for (int64_t batch : batches) {
      const Tensor x = random_tensor({batch, 3, 224, 224}, 2.0f);
      const int iters = quick ? 2 : std::max(2, static_cast<int>(64 / batch));
      const double ms = time_ms(gpu, x, iters);
      std::printf("%-14s %-5s batch %3lld %10.3f ms/batch %9.3f ms/image %10.1f images/s\n", name,
                  std::string(models::vit_precision_name(p)).c_str(), static_cast<long long>(batch), ms, ms / static_cast<double>(batch),
                  1e3 * static_cast<double>(batch) / ms);
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  try {
    const std::vector<int64_t> batches = quick ? std::vector<int64_t>{1, 8} : std::vector<int64_t>{1, 8, 64};
    std::printf("model          dtype batch   time per call, per image, throughput\n");
    bench("vit_b16_224", random_models::random_vit_b16(), batches, quick);
    bench("aim_600m_224", random_models::random_aim_600m(), batches, quick);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu_vit: %s\n", e.what());
    return 1;
  }
  return 0;
}
