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

  // x by value: moved in (is_exclusive), its memory is reused — normalised in place when the
  // shortcut is a conv, else conv2's output accumulates onto it — and GroupNorm+SiLU of conv1's
  // output runs in place. At most three tensors are alive: x, norm1(x) and conv1's output, or with
  // a conv_shortcut x (normalised in place), the shortcut and conv1's output; for the decoder's
  // 256 → 128-channel block at 512² that is 536 MB where normalising into new tensors held 670 MB.
  Tensor operator()(Tensor x) const {
    Tensor base;  // what conv2's output is added to: the shortcut
    Tensor t;
    if (conv_shortcut.weight.defined()) {
      base = conv_shortcut(x);
      t = norm1.apply(std::move(x), /*silu=*/true);
    } else {
      t = norm1(x, /*silu=*/true);
      base = std::move(x);
    }
    Tensor h = conv1(t);
    t = Tensor();
    h = norm2.apply(std::move(h), /*silu=*/true);
    // out = conv2(h) + base, written onto base when it is ours alone (bias first, then the
    // shortcut, as torch's `(input_tensor + hidden_states)`, up to f32 rounding order).
    Tensor out = is_exclusive(base) ? base : Tensor::empty(base.shape(), DType::F32);
    const Tensor residual = base.contiguous();
    base = Tensor();
    conv2.into(out, h, {.residual = &residual});
    return out;
  }
};

}  // namespace genscope::nn
