// bench/random_vit.hpp — the benchmarked Vision Transformers with random weights built in memory
// (no checkpoint needed), shared by the CPU benchmark (bench_vit.cpp) and the GPU one
// (tests/gpu/bench_gpu_vit.cu) so both time the same models:
//   random_vit_b16()    timm vit_base_patch16_224: 12 blocks, width 768, 12 heads, 197 tokens,
//                       class-token feature
//   random_aim_600m()   AIM-600M: width 1536, 12 heads, patch 14 (256 tokens), blocks 0-19 (the
//                       probe reads 14-19) and the attention probe → x_cls
#pragma once

#include <cstdint>
#include <utility>

#include "genscope/models/aim_head.hpp"
#include "genscope/models/vit.hpp"
#include "genscope/models/vit_features.hpp"

namespace genscope::random_models {

inline uint32_t g_state = 12345;

// Uniform values in (−scale/2, scale/2) from a 32-bit LCG: fast for the 600M-parameter model.
inline Tensor random_tensor(Shape shape, float scale) {
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    g_state = g_state * 1664525u + 1013904223u;
    p[i] = (static_cast<float>(g_state >> 8) / 16777216.0f - 0.5f) * scale;
  }
  return t;
}

inline nn::Linear random_linear(int64_t in, int64_t out, bool bias) {
  return nn::Linear{random_tensor({out, in}, 0.05f), bias ? random_tensor({out}, 0.02f) : Tensor(), in, out};
}

inline nn::LayerNorm random_norm(int64_t d, float eps) {
  Tensor w = random_tensor({d}, 0.1f);
  for (int64_t i = 0; i < d; ++i) w.data<float>()[i] += 1.0f;
  return nn::LayerNorm{w, random_tensor({d}, 0.1f), eps};
}

// A model of `arch`'s layout with random weights: what VisionTransformer::load would build.
inline models::VisionTransformer random_vit(models::VitArch arch, int64_t width, int64_t blocks, int64_t heads, int64_t patch, int64_t grid) {
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

inline models::VitFeatureExtractor random_vit_b16() {
  models::VitFeatureExtractor f;
  f.vit = random_vit(models::VitArch::TimmVit, 768, 12, 12, 16, 14);
  f.pool = models::VitPool::Cls;
  return f;
}

inline models::VitFeatureExtractor random_aim_600m() {
  models::VitFeatureExtractor f;
  f.vit = random_vit(models::VitArch::Aim, 1536, 20, 12, 14, 16);
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

}  // namespace genscope::random_models
