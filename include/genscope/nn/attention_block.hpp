// genscope/nn/attention_block.hpp — the pre-norm transformer block every ViT here shares:
//
//   x = x + γ₁ · proj(SDPA(qkv(norm1(x))))        timm Block, AIM Block (norm_1/norm_2),
//   x = x + γ₂ · fc2(act(fc1(norm2(x))))          BEiT Block (gamma_1/gamma_2), CLIPEncoderLayer
//
// Checkpoints spell the same block differently; AttentionBlockKeys (filled by a model's key table,
// models/vit_layouts.hpp) names the pieces, relative to the block's scope. The q, k, v projections
// always run as one fused GEMM: a fused `qkv` [3D, D] weight is used as stored; separate q/k/v
// linears (CLIP) are concatenated once at load; BEiT's q_bias and v_bias (its k has no bias,
// spai/models/vision_transformer.py Attention.forward cats a zero k bias) become the fused bias
// [q_bias, 0, v_bias]. The layer scale γ, when present, is folded into proj and fc2 at load
// (γ·(Wx + b) = (diag(γ)W)x + γb), so the block's residuals stay fused in the GEMM epilogues.
// Attention is ops::attention on head views of the fused projection (no copy), written straight
// into [B, T, H, hd] so proj reads it as [B, T, D].
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/nn/layer_norm.hpp"
#include "genscope/nn/linear.hpp"
#include "genscope/nn/mlp.hpp"
#include "genscope/nn/weights.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/attention.hpp"

namespace genscope::nn {

// Names inside one block's scope. Empty strings mean "this layout has no such tensor".
struct AttentionBlockKeys {
  std::string norm1, norm2;
  std::string qkv;              // fused [3D, D] linear scope, or empty when q, k, v are separate
  std::string q, k, v;          // separate linear scopes (CLIP's self_attn.q_proj, ...)
  std::string q_bias, v_bias;   // BEiT's separate bias parameters (no k bias)
  std::string proj, mlp;        // the attention output linear and the MLP scope (fc1, fc2 inside)
  std::string gamma1, gamma2;   // layer-scale parameters, loaded if present
};

struct AttentionBlockConfig {
  int64_t dim = 0, heads = 1, mlp_hidden = 0;
  float eps = 1e-6f;
  ops::Activation act = ops::Activation::Gelu;
  BiasMode qkv_bias = BiasMode::Required, proj_bias = BiasMode::Required, mlp_bias = BiasMode::Required;
};

// Multi-head self-attention with a fused q|k|v projection.
struct SelfAttention {
  Linear qkv;  // [3D, D]
  Linear proj;  // [D, D]
  int64_t heads = 1;

  // h: the normalised input [B, T, D]; returns residual + proj(attention).
  Tensor forward(const Tensor& h, const Tensor& residual) const {
    const int64_t B = h.size(0), T = h.size(1), D = proj.out_features, hd = D / heads;
    const Tensor fused = qkv.forward(h).view({B, T, 3, heads, hd});
    const Tensor q = fused.select(2, 0).permute({0, 2, 1, 3});
    const Tensor k = fused.select(2, 1).permute({0, 2, 1, 3});
    const Tensor v = fused.select(2, 2).permute({0, 2, 1, 3});
    Tensor out = Tensor::empty({B, T, heads, hd}, DType::F32);
    Tensor out_heads = out.permute({0, 2, 1, 3});
    ops::attention_into(out_heads, q, k, v);
    return proj.forward(out.view({B, T, D}), ops::Activation::None, &residual);
  }
};

struct AttentionBlock {
  LayerNorm norm1, norm2;
  SelfAttention attn;
  Mlp mlp;

  static AttentionBlock load(const Weights& w, const AttentionBlockKeys& keys, const AttentionBlockConfig& cfg) {
    const int64_t D = cfg.dim;
    if (cfg.heads < 1 || D % cfg.heads != 0)
      fail<UsageError>(w.path(), ": ", cfg.heads, " attention heads do not divide the width ", D, " (block '", w.prefix(), "')");
    AttentionBlock b;
    b.norm1 = LayerNorm::load(w.scope(keys.norm1), D, cfg.eps);
    b.norm2 = LayerNorm::load(w.scope(keys.norm2), D, cfg.eps);
    b.attn.heads = cfg.heads;
    if (!keys.qkv.empty()) {
      b.attn.qkv = Linear::load(w.scope(keys.qkv), D, 3 * D, keys.q_bias.empty() ? cfg.qkv_bias : BiasMode::None);
      if (!keys.q_bias.empty()) {
        Tensor bias = Tensor::zeros({3 * D}, DType::F32);
        bias.slice(0, 0, D).copy_from(w.get(keys.q_bias, {D}));
        bias.slice(0, 2 * D, 3 * D).copy_from(w.get(keys.v_bias, {D}));
        b.attn.qkv.bias = bias;
      }
    } else {
      const Linear q = Linear::load(w.scope(keys.q), D, D, cfg.qkv_bias), k = Linear::load(w.scope(keys.k), D, D, cfg.qkv_bias),
                   v = Linear::load(w.scope(keys.v), D, D, cfg.qkv_bias);
      b.attn.qkv = Linear{Tensor::empty({3 * D, D}, DType::F32), Tensor(), D, 3 * D};
      const bool has_bias = q.bias.defined() && k.bias.defined() && v.bias.defined();
      if (has_bias) b.attn.qkv.bias = Tensor::empty({3 * D}, DType::F32);
      int64_t row = 0;
      for (const Linear* part : {&q, &k, &v}) {
        b.attn.qkv.weight.slice(0, row, row + D).copy_from(part->weight);
        if (has_bias) b.attn.qkv.bias.slice(0, row, row + D).copy_from(part->bias);
        row += D;
      }
    }
    b.attn.proj = Linear::load(w.scope(keys.proj), D, D, cfg.proj_bias);
    b.mlp = Mlp::load(w.scope(keys.mlp), D, cfg.mlp_hidden, cfg.act, cfg.mlp_bias);
    if (!keys.gamma1.empty() && w.has(keys.gamma1)) fold_scale(b.attn.proj, w.get(keys.gamma1, {D}));
    if (!keys.gamma2.empty() && w.has(keys.gamma2)) fold_scale(b.mlp.fc2, w.get(keys.gamma2, {D}));
    return b;
  }

  // x [B, T, D] → the block's output [B, T, D].
  Tensor forward(const Tensor& x) const {
    const Tensor after_attn = attn.forward(norm1.forward(x), x);
    return mlp.forward(norm2.forward(after_attn), &after_attn);
  }

 private:
  // l ← diag(γ)·l: rows of the weight and the bias scaled (copies; the checkpoint is read-only).
  static void fold_scale(Linear& l, const Tensor& gamma_in) {
    const Tensor gamma = f32_contiguous(gamma_in);
    Tensor w = l.weight.clone();
    float* pw = w.data<float>();
    const float* g = gamma.data<float>();
    for (int64_t o = 0; o < l.out_features; ++o)
      for (int64_t i = 0; i < l.in_features; ++i) pw[o * l.in_features + i] *= g[o];
    l.weight = w;
    if (l.bias.defined()) {
      Tensor b = l.bias.clone();
      for (int64_t o = 0; o < l.out_features; ++o) b.data<float>()[o] *= g[o];
      l.bias = b;
    }
  }
};

}  // namespace genscope::nn
