// genscope/nn/patch_embed.hpp — a ViT's patchifier: Conv2d(C, D, kernel = stride = p) on
// [B, C, H, W], flattened to tokens [B, (H/p)·(W/p), D] in row-major patch order, as timm's and
// AIM's PatchEmbed (`proj(x).flatten(2).transpose(1, 2)`) and CLIP's patch_embedding.
//
// A stride-p, kernel-p convolution is a GEMM on non-overlapping patches: each patch, read in the
// weight's (c, i, j) order, is one row of A [B·N, C·p·p], and the weight viewed [D, C·p·p] is
// Bᵀ. The output rows come out already in token order, so no transpose follows.
#pragma once

#include <cstdint>
#include <string_view>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/nn/linear.hpp"
#include "genscope/nn/weights.hpp"

namespace genscope::nn {

struct PatchEmbed {
  Tensor weight;  // f32 [D, C·p·p], the conv weight [D, C, p, p] flattened
  Tensor bias;    // f32 [D] or undefined (CLIP has none)
  int64_t dim = 0, channels = 0, patch = 0;

  // `weight_name` is [D, C, p, p] (square kernels only); `bias_name` empty means no bias.
  static PatchEmbed load(const Weights& w, std::string_view weight_name, std::string_view bias_name) {
    const Tensor conv = w.get(weight_name);
    if (conv.dim() != 4 || conv.size(2) != conv.size(3))
      fail<FormatError>(w.path(), ": tensor '", w.key(weight_name), "' is ", conv.str(), "; expected a square conv kernel [D, C, p, p]");
    PatchEmbed pe;
    pe.dim = conv.size(0);
    pe.channels = conv.size(1);
    pe.patch = conv.size(2);
    pe.weight = f32_contiguous(conv).view({pe.dim, pe.channels * pe.patch * pe.patch});
    if (!bias_name.empty()) pe.bias = f32_contiguous(w.get(bias_name, {pe.dim}));
    return pe;
  }

  // x [B, C, H, W] f32 with H and W multiples of the patch → [B, (H/p)·(W/p), D].
  Tensor forward(const Tensor& x_in) const {
    if (x_in.dtype() != DType::F32 || x_in.dim() != 4 || x_in.size(1) != channels)
      fail<ShapeError>("patch_embed: input is ", x_in.str(), "; expected f32[B, ", channels, ", H, W]");
    const int64_t B = x_in.size(0), H = x_in.size(2), W = x_in.size(3);
    if (H % patch || W % patch || H == 0 || W == 0)
      fail<ShapeError>("patch_embed: the input size ", H, " x ", W, " is not a positive multiple of the patch size ", patch);
    const Tensor x = x_in.contiguous();
    const int64_t gh = H / patch, gw = W / patch, K = channels * patch * patch, rows = B * gh * gw;
    Tensor cols = Tensor::empty({rows, K}, DType::F32);
    const float* px = x.data<float>();
    float* pc = cols.data<float>();
    parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / (gh * gw), py = (r / gw) % gh, pxi = r % gw;
        float* dst = pc + r * K;
        for (int64_t c = 0; c < channels; ++c)
          for (int64_t i = 0; i < patch; ++i) {
            const float* src = px + ((b * channels + c) * H + py * patch + i) * W + pxi * patch;
            for (int64_t j = 0; j < patch; ++j) *dst++ = src[j];
          }
      }
    });
    Linear proj{weight, bias, K, dim};
    return proj.forward(cols).view({B, gh * gw, dim});
  }
};

}  // namespace genscope::nn
