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

using namespace genscope;
using models::VitArch;
using models::VitPrecision;

namespace {

uint32_t g_state = 12345;

// Uniform values in (−scale/2, scale/2) from a 32-bit LCG: fast for the 600M-parameter model.
Tensor random_tensor(Shape shape, float scale) {
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    g_state = g_state * 1664525u + 1013904223u;
    p[i] = (static_cast<float>(g_state >> 8) / 16777216.0f - 0.5f) * scale;
  }
  return t;
}

nn::Linear random_linear(int64_t in, int64_t out, bool bias) {
  return nn::Linear{random_tensor({out, in}, 0.05f), bias ? random_tensor({out}, 0.02f) : Tensor(), in, out};
}

nn::LayerNorm random_norm(int64_t d, float eps) {
  Tensor w = random_tensor({d}, 0.1f);
  for (int64_t i = 0; i < d; ++i) w.data<float>()[i] += 1.0f;
  return nn::LayerNorm{w, random_tensor({d}, 0.1f), eps};
}

// A model of `arch`'s layout with random weights: what VisionTransformer::load would build.
models::VisionTransformer random_vit(VitArch arch, int64_t width, int64_t blocks, int64_t heads, int64_t patch, int64_t grid) {
  models::VisionTransformer m;
  m.layout = models::vit_layout(arch);
  const models::VitLayout& L = m.layout;
  auto& c = m.config;
  c.arch = arch;
  c.width = width;
  c.depth = blocks;
  c.heads = heads;
  c.mlp_hidden = 4 * width;
  c.patch = patch;
  c.pos_grid_h = c.pos_grid_w = grid;
  const bool bias = L.qkv_bias != nn::BiasMode::None;
  m.patch_embed = nn::PatchEmbed{random_tensor({width, 3 * patch * patch}, 0.05f), random_tensor({width}, 0.02f), width, 3, patch};
  if (!L.patch_norm.empty()) m.patch_norm = random_norm(width, L.eps);
  if (!L.cls_token.empty()) {
    c.class_token = true;
    m.cls_token = random_tensor({width}, 0.1f);
  }
  if (!L.pos_embed.empty()) m.pos_embed = random_tensor({grid * grid + (c.class_token ? 1 : 0), width}, 0.1f);
  for (int64_t i = 0; i < blocks; ++i) {
    nn::AttentionBlock b;
    b.norm1 = random_norm(width, L.eps);
    b.norm2 = random_norm(width, L.eps);
    b.attn.qkv = random_linear(width, 3 * width, bias);
    b.attn.proj = random_linear(width, width, bias);
    b.attn.heads = heads;
    b.mlp = nn::Mlp{random_linear(width, 4 * width, bias), random_linear(4 * width, width, bias), L.act};
    m.blocks.push_back(std::move(b));
  }
  m.final_norm = random_norm(width, L.eps);
  return m;
}

models::VitFeatureExtractor vit_b16() {
  models::VitFeatureExtractor f;
  f.vit = random_vit(VitArch::TimmVit, 768, 12, 12, 16, 14);
  f.pool = models::VitPool::Cls;
  return f;
}

models::VitFeatureExtractor aim_600m() {
  models::VitFeatureExtractor f;
  f.vit = random_vit(VitArch::Aim, 1536, 20, 12, 14, 16);
  f.pool = models::VitPool::Probe;
  for (int64_t i = 14; i <= 19; ++i) f.layers.push_back(i);
  models::AttentionPoolingClassifier head;
  head.dim = 1536;
  head.heads = 12;
  head.k = random_linear(1536, 1536, false);
  head.v = random_linear(1536, 1536, false);
  head.cls_token = random_tensor({1536}, 0.1f);
  head.bn_mean = random_tensor({1536}, 0.1f);
  head.bn_var = random_tensor({1536}, 0.5f);
  for (int64_t i = 0; i < 1536; ++i) head.bn_var.data<float>()[i] += 1.0f;
  head.linear = random_linear(1536, 1000, false);
  f.probe = head;
  return f;
}

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
    bench("vit_b16_224", vit_b16(), batches, quick);
    bench("aim_600m_224", aim_600m(), batches, quick);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu_vit: %s\n", e.what());
    return 1;
  }
  return 0;
}
