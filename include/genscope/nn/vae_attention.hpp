// genscope/nn/vae_attention.hpp — the SD VAE's mid-block self-attention: diffusers' Attention with
// one head as wide as the channels, a GroupNorm in front and the residual added back
// (diffusers attention_processor.py, AttnProcessor2_0 on a 4-D input):
//
//   t = GroupNorm(x) as [N, H·W, C] tokens;  q, k, v = Linear(t)
//   out = x + to_out(softmax(q·kᵀ / √C) · v) back as [N, C, H, W]
//
// The weights are [C, C] Linear matrices; the original single-file layout stores them as 1×1
// convolutions [C, C, 1, 1], which the layout view (models/vae_layouts.hpp) reshapes on load.
// The attention itself is ops::attention (online softmax, no H·W × H·W score matrix).
#pragma once

#include <cstdint>
#include <string>

#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/nn/conv2d.hpp"
#include "genscope/nn/group_norm.hpp"
#include "genscope/ops/attention.hpp"
#include "genscope/ops/gemm.hpp"

namespace genscope::nn {

struct VaeAttention {
  GroupNorm group_norm;
  Tensor to_q_w, to_q_b, to_k_w, to_k_b, to_v_w, to_v_b, to_out_w, to_out_b;  // [C, C] and [C], f32

  template <class Source>
  static VaeAttention load(const Source& w, int64_t channels, int64_t groups, float eps) {
    VaeAttention a;
    a.group_norm = GroupNorm::load(w, "group_norm", channels, groups, eps);
    auto linear = [&](const std::string& name, Tensor& weight, Tensor& bias) {
      const Source s = w.scope(name);
      weight = as_f32(s.get("weight", {channels, channels}));
      bias = as_f32(s.get("bias", {channels}));
    };
    linear("to_q", a.to_q_w, a.to_q_b);
    linear("to_k", a.to_k_w, a.to_k_b);
    linear("to_v", a.to_v_w, a.to_v_b);
    linear("to_out.0", a.to_out_w, a.to_out_b);
    return a;
  }

  // x by value: when moved in (is_exclusive) the residual sum overwrites it, no new tensor.
  Tensor operator()(Tensor x) const {
    if (!x.is_contiguous()) x = x.contiguous();
    const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
    Tensor out = is_exclusive(x) ? x : Tensor::empty(x.shape(), DType::F32);
    for (int64_t b = 0; b < n; ++b) {
      // [C, H·W] → tokens [H·W, C] as a transposed view; linear() reads it strided.
      const Tensor tokens = group_norm(x.slice(0, b, b + 1)).view({c, hw}).transpose(0, 1);
      const Tensor q = ops::linear(tokens, to_q_w, &to_q_b);
      const Tensor k = ops::linear(tokens, to_k_w, &to_k_b);
      const Tensor v = ops::linear(tokens, to_v_w, &to_v_b);
      const Tensor o = ops::attention(q.view({1, 1, hw, c}), k.view({1, 1, hw, c}), v.view({1, 1, hw, c}));
      const Tensor proj = ops::linear(o.view({hw, c}), to_out_w, &to_out_b);  // [H·W, C]
      // out[b, ch, p] = x[b, ch, p] + proj[p, ch]
      const float* px = x.data<float>() + b * c * hw;
      const float* pp = proj.data<float>();
      float* po = out.data<float>() + b * c * hw;
      parallel_for(0, c, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t ch = c0; ch < c1; ++ch)
          for (int64_t p = 0; p < hw; ++p) po[ch * hw + p] = px[ch * hw + p] + pp[p * c + ch];
      });
    }
    return out;
  }
};

}  // namespace genscope::nn
