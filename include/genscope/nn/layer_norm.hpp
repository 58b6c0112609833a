// genscope/nn/layer_norm.hpp — torch.nn.LayerNorm over the last dim, with its eps.
//
// The eps is part of the layer, not of the checkpoint: AIM, timm and SPAI use 1e-6, CLIP 1e-5.
#pragma once

#include <cstdint>

#include "genscope/core/tensor.hpp"
#include "genscope/nn/linear.hpp"
#include "genscope/nn/weights.hpp"
#include "genscope/ops/norm.hpp"

namespace genscope::nn {

struct LayerNorm {
  Tensor weight, bias;  // f32 [dim]
  float eps = 1e-5f;

  static LayerNorm load(const Weights& w, int64_t dim, float eps) {
    return LayerNorm{f32_contiguous(w.get("weight", {dim})), f32_contiguous(w.get("bias", {dim})), eps};
  }

  bool loaded() const { return weight.defined(); }
  Tensor forward(const Tensor& x) const { return ops::layer_norm(x, weight, bias, eps); }
};

}  // namespace genscope::nn
