// genscope/nn/group_norm.hpp — torch.nn.GroupNorm as a layer, optionally followed by SiLU in the
// same pass (every norm in the SD VAE is followed by SiLU except the attention's); apply() works
// in place on an activation its caller no longer needs.
#pragma once

#include <cstdint>
#include <string>

#include "genscope/core/tensor.hpp"
#include "genscope/nn/conv2d.hpp"
#include "genscope/ops/norm.hpp"

namespace genscope::nn {

struct GroupNorm {
  Tensor weight, bias;  // [channels] f32
  int64_t groups = 32;
  float eps = 1e-6f;

  template <class Source>
  static GroupNorm load(const Source& w, const std::string& name, int64_t channels, int64_t groups, float eps) {
    if (groups <= 0 || channels % groups != 0)
      fail<FormatError>(w.scope(name).key("weight"), ": ", channels, " channels do not split into ", groups, " groups");
    GroupNorm n;
    const Source s = w.scope(name);
    n.weight = as_f32(s.get("weight", {channels}));
    n.bias = as_f32(s.get("bias", {channels}));
    n.groups = groups;
    n.eps = eps;
    return n;
  }

  Tensor operator()(const Tensor& x, bool silu = false) const { return ops::group_norm(x, groups, weight, bias, eps, silu); }

  // Only the statistics, as per-channel maps, for a conv that normalises while it reads its input
  // (ops::ConvFusion::input_norm).
  ops::GroupNormMap map(const Tensor& x, bool silu = false) const { return ops::group_norm_map(x, groups, weight, bias, eps, silu); }

  // The same, overwriting x when the caller handed it over (is_exclusive), else into a new tensor.
  Tensor apply(Tensor x, bool silu = false) const {
    if (!is_exclusive(x)) return (*this)(x, silu);
    ops::group_norm_inplace(x, groups, weight, bias, eps, silu);
    return x;
  }
};

}  // namespace genscope::nn
