// genscope/nn/conv2d.hpp — torch.nn.Conv2d as a layer: its weights, its geometry, and a call of
// ops::conv2d.
//
// Weights are held as contiguous f32 (f16/bf16 checkpoints are widened once at load), so every
// forward call packs f32 panels straight from memory. The padding is per side because the SD VAE
// encoder pads (left 0, right 1, top 0, bottom 1) before its stride-2 convolutions
// (diffusers Downsample2D.forward with padding=0).
//
// load() takes any weight source with get(name, shape) — nn::Weights, or a model's layout view
// that renames keys (models/vae_layouts.hpp) — so the layer never knows a checkpoint's layout.
#pragma once

#include <cstdint>
#include <string>

#include "genscope/core/tensor.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/conv2d.hpp"

namespace genscope::nn {

// A tensor as contiguous f32: a zero-copy view when it already is, else one converting copy.
inline Tensor as_f32(const Tensor& t) { return t.dtype() == DType::F32 ? t.contiguous() : t.to(DType::F32); }

// Whether t may be overwritten: contiguous f32 in memory genscope allocated (not a file mapping)
// that no other Tensor handle shares. Layers that take their input by value reuse it in place
// when the caller moved it in; a caller that keeps its own handle keeps its data.
inline bool is_exclusive(const Tensor& t) {
  return t.defined() && t.device() == Device::CPU && t.dtype() == DType::F32 && t.is_contiguous() &&
         t.storage().use_count() == 1 && t.storage()->owns_memory();
}

struct Conv2d {
  Tensor weight;  // [out, in, kh, kw] f32
  Tensor bias;    // [out] f32, or undefined
  ops::Conv2dParams params;

  int64_t out_channels() const { return weight.size(0); }
  int64_t in_channels() const { return weight.size(1); }

  // `name.weight` [out, in, k, k] and `name.bias` [out], PyTorch's Conv2d(in, out, k, stride, padding).
  template <class Source>
  static Conv2d load(const Source& w, const std::string& name, int64_t in, int64_t out, int64_t k,
                     ops::Conv2dParams params) {
    Conv2d c;
    const Source s = w.scope(name);
    c.weight = as_f32(s.get("weight", {out, in, k, k}));
    c.bias = as_f32(s.get("bias", {out}));
    c.params = params;
    return c;
  }

  Tensor operator()(const Tensor& x, ops::Activation act = ops::Activation::None) const {
    ops::Conv2dParams p = params;
    p.act = act;
    return ops::conv2d(x, weight, bias.defined() ? &bias : nullptr, p);
  }

  // With fused upsampling of x and/or a residual (ops::ConvFusion); into `out` when given.
  Tensor operator()(const Tensor& x, const ops::ConvFusion& f) const {
    return ops::conv2d(x, weight, bias.defined() ? &bias : nullptr, params, f);
  }
  void into(Tensor& out, const Tensor& x, const ops::ConvFusion& f = {}) const {
    ops::conv2d_into(out, x, weight, bias.defined() ? &bias : nullptr, params, f);
  }
};

}  // namespace genscope::nn
