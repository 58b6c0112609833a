// genscope/models/aim_head.hpp — AIM v1's attention-probe head and the probe-layer average that
// feeds it (apple/ml-aim aim-v1/aim/v1/torch/layers.py: AverageLayers, AttentionPoolingClassifier).
//
//   x      = mean of the probe blocks' outputs                 AverageLayers(reduce=False)
//   x      = BatchNorm1d(x) over the width, running stats,     no affine, eps 1e-6
//   q      = the learned cls_token [1, 1, D], no projection, split into heads
//   k, v   = bias-free linears of x, split into heads
//   x_cls  = SDPA(q, k, v) merged back to [B, D]               UAR/RAID's feature
//   logits = linear(x_cls)                                     bias-free, 1000 classes
//
// heads = width / 128 for every published AIM (the trunk's count); the "best layers" the
// published probes were trained on depend on the width (aim_best_layers).
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/nn/linear.hpp"
#include "genscope/nn/weights.hpp"
#include "genscope/ops/attention.hpp"

namespace genscope::models {

// The published probes' layers, 0-based and inclusive: aim-600M (1536) 14-19, aim-1B (2048) and
// aim-3B (3072) 12-17, aim-7B (4096) 14-19. Other widths: UsageError (give --layers).
inline std::pair<int64_t, int64_t> aim_best_layers(int64_t width) {
  switch (width) {
    case 1536: return {14, 19};
    case 2048: return {12, 17};
    case 3072: return {12, 17};
    case 4096: return {14, 19};
    default: fail<UsageError>("aim: no published probe layers for width ", width, "; give the layers (--layers A-B)");
  }
}

// AverageLayers: the element-wise mean of equally shaped block outputs.
inline Tensor average_layers(const std::vector<Tensor>& xs) {
  if (xs.empty()) fail<UsageError>("average_layers: no layers given");
  Tensor out = nn::f32_contiguous(xs[0]).clone();
  float* po = out.data<float>();
  for (size_t i = 1; i < xs.size(); ++i) {
    if (!(xs[i].shape() == out.shape())) fail<ShapeError>("average_layers: ", xs[i].str(), " and ", out.str(), " differ");
    const Tensor x = nn::f32_contiguous(xs[i]);
    const float* px = x.data<float>();
    for (int64_t j = 0; j < out.numel(); ++j) po[j] += px[j];
  }
  const float n = static_cast<float>(xs.size());
  for (int64_t j = 0; j < out.numel(); ++j) po[j] /= n;
  return out;
}

struct AimHeadOutput {
  Tensor logits;  // [B, classes], undefined when the checkpoint has no head.linear
  Tensor x_cls;   // [B, D]
};

struct AttentionPoolingClassifier {
  nn::Linear k, v, linear;
  Tensor cls_token;               // f32 [D]
  Tensor bn_mean, bn_var;         // f32 [D], BatchNorm1d running statistics
  float bn_eps = 1e-6f;
  int64_t dim = 0, heads = 1;

  // `w` is the head's scope ("head"). The classifier linear is optional (a probe saved without it).
  static AttentionPoolingClassifier load(const nn::Weights& w, int64_t dim, int64_t heads) {
    if (heads < 1 || dim % heads != 0) fail<UsageError>(w.path(), ": ", heads, " probe heads do not divide the width ", dim);
    AttentionPoolingClassifier h;
    h.dim = dim;
    h.heads = heads;
    h.k = nn::Linear::load(w.scope("k"), dim, dim, nn::BiasMode::None);
    h.v = nn::Linear::load(w.scope("v"), dim, dim, nn::BiasMode::None);
    h.cls_token = nn::f32_contiguous(w.get("cls_token", {1, 1, dim})).reshape({dim});
    h.bn_mean = nn::f32_contiguous(w.get("bn.running_mean", {dim}));
    h.bn_var = nn::f32_contiguous(w.get("bn.running_var", {dim}));
    if (w.has("linear.weight")) {
      const Tensor lw = w.get("linear.weight");
      if (lw.dim() != 2 || lw.size(1) != dim) fail<FormatError>(w.path(), ": tensor '", w.key("linear.weight"), "' is ", lw.str(), "; expected [classes, ", dim, "]");
      h.linear = nn::Linear::load(w.scope("linear"), dim, lw.size(0), nn::BiasMode::Optional);
    }
    return h;
  }

  // x [B, N, D] (the averaged probe layers) → logits and x_cls.
  AimHeadOutput forward(const Tensor& x_in) const {
    if (x_in.dim() != 3 || x_in.size(2) != dim) fail<ShapeError>("aim head: input is ", x_in.str(), "; expected [B, N, ", dim, "]");
    const int64_t B = x_in.size(0), N = x_in.size(1), hd = dim / heads;
    // BatchNorm1d in eval: (x − mean) / √(var + eps), per channel.
    Tensor x = nn::f32_contiguous(x_in).clone();
    float* px = x.data<float>();
    std::vector<float> inv(static_cast<size_t>(dim));
    for (int64_t c = 0; c < dim; ++c) inv[static_cast<size_t>(c)] = 1.0f / std::sqrt(bn_var.data<float>()[c] + bn_eps);
    const float* mean = bn_mean.data<float>();
    for (int64_t r = 0; r < B * N; ++r)
      for (int64_t c = 0; c < dim; ++c) px[r * dim + c] = (px[r * dim + c] - mean[c]) * inv[static_cast<size_t>(c)];
    const Tensor kk = k.forward(x).view({B, N, heads, hd}).permute({0, 2, 1, 3});
    const Tensor vv = v.forward(x).view({B, N, heads, hd}).permute({0, 2, 1, 3});
    Tensor q = Tensor::empty({B, heads, 1, hd}, DType::F32);
    for (int64_t b = 0; b < B; ++b) q.select(0, b).copy_from(cls_token.view({heads, 1, hd}));
    AimHeadOutput out;
    out.x_cls = ops::attention(q, kk, vv).view({B, dim});  // [B, H, 1, hd] is [B, D] in head order
    if (linear.weight.defined()) out.logits = linear.forward(out.x_cls);
    return out;
  }
};

}  // namespace genscope::models
