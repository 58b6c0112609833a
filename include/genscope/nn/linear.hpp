// genscope/nn/linear.hpp — torch.nn.Linear: y = act(x · wᵀ + b) (+ residual).
//
// The weight is kept as f32 [out, in], contiguous: a view into the mapped checkpoint when it is
// stored that way, a converted copy when it is f16/bf16. forward() is one ops::gemm whose
// epilogue adds the bias, applies the activation and adds a residual on the tile it has just
// written, so a transformer block's "x + proj(attn)" costs no extra pass over memory.
#pragma once

#include <cstdint>
#include <string_view>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/nn/weights.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/gemm.hpp"

namespace genscope::nn {

// A parameter as contiguous f32: the tensor itself when it already is, else a converted copy.
inline Tensor f32_contiguous(const Tensor& t) {
  if (!t.defined()) return t;
  return t.dtype() == DType::F32 ? t.contiguous() : t.to(DType::F32);
}

enum class BiasMode { None, Required, Optional };

struct Linear {
  Tensor weight;  // f32 [out, in], contiguous
  Tensor bias;    // f32 [out], or undefined
  int64_t in_features = 0, out_features = 0;

  // Reads `<scope>.weight` [out, in] and, per `mode`, `<scope>.bias` [out].
  static Linear load(const Weights& w, int64_t in, int64_t out, BiasMode mode = BiasMode::Required) {
    Linear l;
    l.in_features = in;
    l.out_features = out;
    l.weight = f32_contiguous(w.get("weight", {out, in}));
    if (mode == BiasMode::Required || (mode == BiasMode::Optional && w.has("bias")))
      l.bias = f32_contiguous(w.get("bias", {out}));
    return l;
  }

  // x [..., in] f32 → [..., out] f32. `residual`, if given, has the output's shape and is added
  // after the activation.
  Tensor forward(const Tensor& x, ops::Activation act = ops::Activation::None, const Tensor* residual = nullptr) const {
    if (x.dtype() != DType::F32 || x.dim() < 1 || x.size(-1) != in_features)
      fail<ShapeError>("linear: input is ", x.str(), "; expected f32[..., ", in_features, "]");
    const Tensor in = x.contiguous();
    Shape out_shape = x.shape();
    out_shape[x.dim() - 1] = out_features;
    Tensor out = Tensor::empty(out_shape, DType::F32);
    const int64_t rows = in_features ? in.numel() / in_features : 0;
    ops::GemmEpilogue ep;
    ep.act = act;
    if (bias.defined()) ep.bias = bias.data<float>();
    Tensor res;
    if (residual) {
      if (!(residual->shape() == out_shape)) fail<ShapeError>("linear: residual is ", residual->str(), "; expected ", out_shape);
      res = f32_contiguous(*residual);
      ep.residual = res.data<float>();
      ep.ld_residual = out_features;
    }
    ops::gemm(ops::Trans::No, ops::Trans::Yes, rows, out_features, in_features, 1.0f, in.data<float>(), in_features,
              weight.data<float>(), in_features, 0.0f, out.data<float>(), out_features, ep);
    return out;
  }
};

}  // namespace genscope::nn
