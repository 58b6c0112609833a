// genscope/nn/mlp.hpp — the transformer MLP: fc2(act(fc1(x))), as timm's Mlp, AIM's MLP and
// CLIP's CLIPMLP (module names fc1, fc2 in all three).
//
// The activation runs in fc1's GEMM epilogue; the block's residual is added in fc2's.
#pragma once

#include <cstdint>

#include "genscope/nn/linear.hpp"
#include "genscope/nn/weights.hpp"
#include "genscope/ops/activation.hpp"

namespace genscope::nn {

struct Mlp {
  Linear fc1, fc2;
  ops::Activation act = ops::Activation::Gelu;

  static Mlp load(const Weights& w, int64_t dim, int64_t hidden, ops::Activation act, BiasMode bias) {
    return Mlp{Linear::load(w.scope("fc1"), dim, hidden, bias), Linear::load(w.scope("fc2"), hidden, dim, bias), act};
  }

  // x + fc2(act(fc1(h))) when `residual` is x; fc2(act(fc1(h))) without it.
  Tensor forward(const Tensor& h, const Tensor* residual = nullptr) const {
    return fc2.forward(fc1.forward(h, act), ops::Activation::None, residual);
  }
};

}  // namespace genscope::nn
