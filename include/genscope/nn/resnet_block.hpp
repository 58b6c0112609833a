// genscope/nn/resnet_block.hpp — diffusers' ResnetBlock2D without a time embedding (the VAE's):
//
//   h = conv2(SiLU(norm2(conv1(SiLU(norm1(x))))));   out = shortcut(x) + h
//
// shortcut is a 1×1 conv_shortcut when the channel count changes, else the identity
// (diffusers models/resnet.py ResnetBlock2D.forward; output_scale_factor is 1 in the VAE and
// dropout is inactive at inference).
#pragma once

#include <cstdint>
#include <string>

#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/nn/conv2d.hpp"
#include "genscope/nn/group_norm.hpp"

namespace genscope::nn {

struct ResnetBlock2D {
  GroupNorm norm1, norm2;
  Conv2d conv1, conv2;
  Conv2d conv_shortcut;  // weight undefined when in == out

  template <class Source>
  static ResnetBlock2D load(const Source& w, int64_t in, int64_t out, int64_t groups, float eps) {
    ResnetBlock2D b;
    const auto same = ops::Conv2dParams::make(1, 1);
    b.norm1 = GroupNorm::load(w, "norm1", in, groups, eps);
    b.conv1 = Conv2d::load(w, "conv1", in, out, 3, same);
    b.norm2 = GroupNorm::load(w, "norm2", out, groups, eps);
    b.conv2 = Conv2d::load(w, "conv2", out, out, 3, same);
    if (in != out) b.conv_shortcut = Conv2d::load(w, "conv_shortcut", in, out, 1, ops::Conv2dParams::make(1, 0));
    return b;
  }

  Tensor operator()(const Tensor& x) const {
    // Each intermediate is released as soon as the next exists: at most x and two more
    // full-size tensors are alive at once.
    Tensor h = conv1(norm1(x, /*silu=*/true));
    Tensor t = norm2(h, /*silu=*/true);
    h = Tensor();
    h = conv2(t);
    t = Tensor();
    const Tensor shortcut = conv_shortcut.weight.defined() ? conv_shortcut(x) : x.contiguous();
    add_in_place(h, shortcut);
    return h;
  }

 private:
  // h += s, both contiguous f32 of the same shape (h is the block's own fresh output).
  static void add_in_place(Tensor& h, const Tensor& s) {
    if (!(h.shape() == s.shape()) || s.dtype() != DType::F32)
      fail<ShapeError>("ResnetBlock2D: residual ", s.str(), " does not match ", h.str());
    float* ph = h.data<float>();
    const float* ps = s.data<float>();
    parallel_for(0, h.numel(), 1 << 16, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) ph[i] += ps[i];
    });
  }
};

}  // namespace genscope::nn
