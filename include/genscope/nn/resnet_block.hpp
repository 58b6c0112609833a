// genscope/nn/resnet_block.hpp — diffusers' ResnetBlock2D without a time embedding (the VAE's):
//
//   h = conv2(SiLU(norm2(conv1(SiLU(norm1(x))))));   out = shortcut(x) + h
//
// shortcut is a 1×1 conv_shortcut when the channel count changes, else the identity
// (diffusers models/resnet.py ResnetBlock2D.forward; output_scale_factor is 1 in the VAE and
// dropout is inactive at inference).
#pragma once

#include <algorithm>
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

  // x by value: moved in (is_exclusive), its memory is reused. conv1 reads x through norm1+SiLU
  // (ops::ConvFusion::input_norm), so no normalised copy is made and x stays intact for the
  // shortcut; the identity shortcut then receives conv2's output in place, a conv_shortcut is
  // written over x (shortcut_in_place). At most two full tensors are alive: x and conv1's output.
  // For the decoder's 256 → 128-channel block at 512² that is 402 MB; normalising into a new
  // tensor beside x, the shortcut and conv1's output held 536 MB.
  Tensor operator()(Tensor x) const {
    const ops::GroupNormMap n1 = norm1.map(x, /*silu=*/true);
    Tensor h = conv1(x, ops::ConvFusion{.input_norm = &n1});
    Tensor base = conv_shortcut.weight.defined() ? shortcut_in_place(std::move(x)) : std::move(x);
    h = norm2.apply(std::move(h), /*silu=*/true);
    // out = conv2(h) + base, written onto base when it is ours alone (bias first, then the
    // shortcut, as torch's `(input_tensor + hidden_states)`, up to f32 rounding order).
    Tensor out = is_exclusive(base) ? base : Tensor::empty(base.shape(), DType::F32);
    const Tensor residual = base.contiguous();
    base = Tensor();
    conv2.into(out, h, {.residual = &residual});
    return out;
  }

  // conv_shortcut(x), a 1×1 conv, written over x when x is one image that is ours alone and the
  // conv narrows it (out ≤ in channels): output pixel p reads only input pixel p, so each run of
  // pixels is convolved from a copy of its input column into a small buffer, then copied over
  // x's first `out` planes at that run, which no later run reads. The pages of the planes beyond
  // are given back (Storage::discard). Otherwise a new tensor.
  Tensor shortcut_in_place(Tensor x) const {
    const int64_t in = x.size(1), out = conv_shortcut.out_channels();
    if (!is_exclusive(x) || x.size(0) != 1 || out > in) return conv_shortcut(x);
    const int64_t hw = x.size(2) * x.size(3);
    const int64_t run = std::min(hw, std::max<int64_t>(1024, (int64_t{1} << 20) / in));  // ≈ 4 MB of input per run
    Tensor column = Tensor::empty({1, in, 1, run}, DType::F32), result = Tensor::empty({1, out, 1, run}, DType::F32);
    float* d = x.data<float>();
    for (int64_t p0 = 0; p0 < hw; p0 += run) {
      const int64_t n = std::min(run, hw - p0);
      if (n < run) {
        column = Tensor::empty({1, in, 1, n}, DType::F32);
        result = Tensor::empty({1, out, 1, n}, DType::F32);
      }
      float* c = column.data<float>();
      for (int64_t i = 0; i < in; ++i) std::copy_n(d + i * hw + p0, n, c + i * n);
      conv_shortcut.into(result, column);
      const float* r = result.data<float>();
      for (int64_t o = 0; o < out; ++o) std::copy_n(r + o * n, n, d + o * hw + p0);
    }
    const size_t kept = static_cast<size_t>(out * hw) * sizeof(float);
    x.storage()->discard(static_cast<size_t>(x.offset()) * sizeof(float) + kept, static_cast<size_t>((in - out) * hw) * sizeof(float));
    return x.slice(1, 0, out);
  }
};

}  // namespace genscope::nn
