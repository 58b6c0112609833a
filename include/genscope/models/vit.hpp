// genscope/models/vit.hpp — one configurable Vision Transformer for AIM v1, CLIP's vision tower,
// SPAI's BEiT-style ViT and timm's ViT (key tables: models/vit_layouts.hpp).
//
//   tokens = patch_embed(x)                       [B, N, D], N = (H/p)·(W/p)
//            (AIM: LayerNorm after the conv, preprocessor.patchifier.norm)
//   tokens = [cls | tokens] + pos_embed           learned (timm, CLIP, SPAI) or 2-D sin-cos (AIM)
//   tokens = pre_norm(tokens)                     CLIP only
//   for each block: tokens = block(tokens)        nn/attention_block.hpp
//
// The configuration is read off the checkpoint (width, depth, patch, MLP width, position grid);
// only the head count is not stored, so it defaults to width / head_dim of the layout (64, or
// 128 for AIM: true of every published size) and can be given.
//
// Inputs of any size divisible by the patch: AIM computes its sin-cos table for the grid; a
// learned table is resampled as timm's resample_abs_pos_embed does (timm/layers/pos_embed.py):
// the grid part bicubic with antialias (torch's _upsample_bicubic2d_aa, which is PIL's
// algorithm in floating point: Keys' cubic with a = -0.5, the filter widened by the scale when
// shrinking, weights normalised over the taps inside the image), the class row kept.
// (transformers' CLIP interpolate_pos_encoding uses plain bicubic, a = -0.75, no antialias;
// genscope resamples every layout the timm way.)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/models/vit_layouts.hpp"
#include "genscope/nn/attention_block.hpp"
#include "genscope/nn/layer_norm.hpp"
#include "genscope/nn/linear.hpp"
#include "genscope/nn/patch_embed.hpp"
#include "genscope/nn/weights.hpp"

namespace genscope::models {

// AIM's SinCosPosEmbed (aim/v1/torch/layers.py) for a gh × gw grid: [gh·gw, D]. For the patch at
// row r, column c the first D/2 values encode c and the last D/2 encode r (the meshgrid is built
// with indexing="xy" from (grid_w, grid_h), so its first plane holds column indices); each half is
// [sin(pos·ω_k) for k < D/4, cos(pos·ω_k) for k < D/4], ω_k = 10000^(−k / (D/4)).
inline Tensor sincos_pos_embed_2d(int64_t gh, int64_t gw, int64_t dim) {
  if (dim % 4 != 0) fail<ShapeError>("sin-cos position embedding: the width ", dim, " is not a multiple of 4");
  const int64_t quarter = dim / 4;
  Tensor out = Tensor::empty({gh * gw, dim}, DType::F32);
  float* p = out.data<float>();
  for (int64_t r = 0; r < gh; ++r)
    for (int64_t c = 0; c < gw; ++c) {
      float* row = p + (r * gw + c) * dim;
      for (int half = 0; half < 2; ++half) {
        const double pos = half == 0 ? static_cast<double>(c) : static_cast<double>(r);
        for (int64_t k = 0; k < quarter; ++k) {
          const double omega = 1.0 / std::pow(10000.0, static_cast<double>(k) / static_cast<double>(quarter));
          row[half * 2 * quarter + k] = static_cast<float>(std::sin(pos * omega));
          row[half * 2 * quarter + quarter + k] = static_cast<float>(std::cos(pos * omega));
        }
      }
    }
  return out;
}

namespace vit_detail {

// torch's antialiased bicubic weights for one axis (aten/src/ATen/native/cpu/UpSampleKernel.cpp,
// _compute_weights_aa with interp_size 4, align_corners=False): out index i reads inputs
// [first[i], first[i] + count[i]) with weights w[i·taps + j].
struct AxisWeights {
  int64_t taps = 0;
  std::vector<int64_t> first, count;
  std::vector<double> w;
};

inline double cubic_aa(double x) {  // Keys' cubic convolution with a = -0.5 (aa_filter)
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

inline AxisWeights bicubic_aa_weights(int64_t in, int64_t out) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;
  const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  AxisWeights a;
  a.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  a.first.resize(static_cast<size_t>(out));
  a.count.resize(static_cast<size_t>(out));
  a.w.assign(static_cast<size_t>(out * a.taps), 0.0);
  for (int64_t i = 0; i < out; ++i) {
    const double center = scale * (static_cast<double>(i) + 0.5);
    const int64_t xmin = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t xsize = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in) - xmin;
    double total = 0;
    double* w = a.w.data() + i * a.taps;
    for (int64_t j = 0; j < xsize; ++j) total += (w[j] = cubic_aa((static_cast<double>(j + xmin) - center + 0.5) * invscale));
    if (total != 0.0)
      for (int64_t j = 0; j < xsize; ++j) w[j] /= total;
    a.first[static_cast<size_t>(i)] = xmin;
    a.count[static_cast<size_t>(i)] = xsize;
  }
  return a;
}

}  // namespace vit_detail

// timm's resample_abs_pos_embed for the grid part of a learned table: grid [gh0·gw0, D] (row-major
// patches) → [gh·gw, D], bicubic with antialias; the width is resampled first, then the height,
// as torch's separable kernel does.
inline Tensor resample_pos_embed(const Tensor& grid_in, int64_t gh0, int64_t gw0, int64_t gh, int64_t gw) {
  const Tensor grid = nn::f32_contiguous(grid_in);
  if (grid.dim() != 2 || grid.size(0) != gh0 * gw0)
    fail<ShapeError>("resample_pos_embed: table is ", grid.str(), "; expected [", gh0 * gw0, ", D]");
  const int64_t D = grid.size(1);
  if (gh == gh0 && gw == gw0) return grid;
  const auto wx = vit_detail::bicubic_aa_weights(gw0, gw), wy = vit_detail::bicubic_aa_weights(gh0, gh);
  std::vector<double> tmp(static_cast<size_t>(gh0 * gw * D), 0.0);  // width done: [gh0, gw, D]
  const float* src = grid.data<float>();
  for (int64_t r = 0; r < gh0; ++r)
    for (int64_t c = 0; c < gw; ++c) {
      double* dst = tmp.data() + (r * gw + c) * D;
      for (int64_t j = 0; j < wx.count[static_cast<size_t>(c)]; ++j) {
        const double wt = wx.w[static_cast<size_t>(c * wx.taps + j)];
        const float* s = src + (r * gw0 + wx.first[static_cast<size_t>(c)] + j) * D;
        for (int64_t d = 0; d < D; ++d) dst[d] += wt * s[d];
      }
    }
  Tensor out = Tensor::empty({gh * gw, D}, DType::F32);
  float* po = out.data<float>();
  std::vector<double> acc(static_cast<size_t>(D));
  for (int64_t r = 0; r < gh; ++r)
    for (int64_t c = 0; c < gw; ++c) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < wy.count[static_cast<size_t>(r)]; ++j) {
        const double wt = wy.w[static_cast<size_t>(r * wy.taps + j)];
        const double* s = tmp.data() + ((wy.first[static_cast<size_t>(r)] + j) * gw + c) * D;
        for (int64_t d = 0; d < D; ++d) acc[static_cast<size_t>(d)] += wt * s[d];
      }
      for (int64_t d = 0; d < D; ++d) po[(r * gw + c) * D + d] = static_cast<float>(acc[static_cast<size_t>(d)]);
    }
  return out;
}

struct VitConfig {
  VitArch arch = VitArch::TimmVit;
  int64_t width = 0, depth = 0, heads = 0, mlp_hidden = 0, patch = 0, channels = 3;
  int64_t pos_grid_h = 0, pos_grid_w = 0;  // the grid the learned position table was trained at
  bool class_token = false;
};

struct VitLoadOptions {
  std::optional<int64_t> heads;   // default: width / the layout's head_dim
  std::optional<int64_t> blocks;  // load (and run) only the first N blocks
};

// The blocks' outputs that forward() was asked to keep, plus the last one it ran.
struct VitTrace {
  Tensor embeddings;            // the tokens entering block 0 [B, T, D]
  Tensor last;                  // the output of the last block run [B, T, D]
  std::vector<Tensor> kept;     // in the order of `keep`
};

struct VisionTransformer {
  VitLayout layout;
  VitConfig config;
  nn::PatchEmbed patch_embed;
  nn::LayerNorm patch_norm;      // AIM only
  Tensor cls_token;              // f32 [D], or undefined
  Tensor pos_embed;              // f32 [T0, D] learned (with the class row first), or undefined (sin-cos)
  nn::LayerNorm pre_norm;        // CLIP only
  std::vector<nn::AttentionBlock> blocks;
  nn::LayerNorm final_norm;      // see VitLayout::final_norm
  nn::Linear projection;         // CLIP's visual_projection, if the checkpoint has it

  static VisionTransformer load(const nn::Weights& w, VitArch arch, const VitLoadOptions& opt = {}) {
    VisionTransformer m;
    m.layout = resolve_vit_layout(w, arch);
    const VitLayout& L = m.layout;
    VitConfig& c = m.config;
    c.arch = arch;
    m.patch_embed = nn::PatchEmbed::load(w, L.patch_weight, L.patch_bias);
    c.width = m.patch_embed.dim;
    c.patch = m.patch_embed.patch;
    c.channels = m.patch_embed.channels;
    const int64_t D = c.width;
    if (!L.patch_norm.empty()) m.patch_norm = nn::LayerNorm::load(w.scope(L.patch_norm), D, L.eps);
    if (!L.cls_token.empty()) {
      const Tensor t = w.get(L.cls_token);
      if (t.numel() != D) fail<FormatError>(w.path(), ": tensor '", L.cls_token, "' is ", t.str(), "; expected ", D, " values");
      m.cls_token = nn::f32_contiguous(t).reshape({D});
      c.class_token = true;
    }
    if (!L.pos_embed.empty()) {
      const Tensor t = w.get(L.pos_embed);
      if (t.numel() % D != 0 || t.size(-1) != D)
        fail<FormatError>(w.path(), ": tensor '", L.pos_embed, "' is ", t.str(), "; expected [T, ", D, "]");
      m.pos_embed = nn::f32_contiguous(t).reshape({t.numel() / D, D});
      const int64_t grid_tokens = m.pos_embed.size(0) - (c.class_token ? 1 : 0);
      const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(grid_tokens))));
      if (side * side != grid_tokens)
        fail<FormatError>(w.path(), ": tensor '", L.pos_embed, "' holds ", grid_tokens, " grid positions, not a square grid");
      c.pos_grid_h = c.pos_grid_w = side;
    }
    if (!L.pre_norm.empty()) m.pre_norm = nn::LayerNorm::load(w.scope(L.pre_norm), D, L.eps);

    const nn::Weights blocks = w.scope(L.blocks);
    while (blocks.scope(std::to_string(c.depth)).has(L.block.norm1 + ".weight")) ++c.depth;
    if (c.depth == 0) fail<FormatError>(w.path(), ": no transformer blocks found (expected '", blocks.key("0." + L.block.norm1 + ".weight"), "')");
    c.heads = opt.heads.value_or(D / L.head_dim);
    if (c.heads < 1 || D % c.heads != 0)
      fail<UsageError>(w.path(), ": ", c.heads, " attention heads do not divide the width ", D);
    const std::string fc1 = L.block.mlp + ".fc1.weight";
    const Tensor fc1_w = blocks.scope("0").get(fc1);
    c.mlp_hidden = fc1_w.size(0);
    const int64_t n_load = opt.blocks ? *opt.blocks : c.depth;
    if (n_load < 1 || n_load > c.depth)
      fail<UsageError>(w.path(), ": asked for ", n_load, " blocks; the checkpoint has ", c.depth);
    nn::AttentionBlockConfig bc{D, c.heads, c.mlp_hidden, L.eps, L.act, L.qkv_bias, L.proj_bias, L.mlp_bias};
    for (int64_t i = 0; i < n_load; ++i) m.blocks.push_back(nn::AttentionBlock::load(blocks.scope(std::to_string(i)), L.block, bc));
    if (!L.final_norm.empty() && w.has(L.final_norm + ".weight")) m.final_norm = nn::LayerNorm::load(w.scope(L.final_norm), D, L.eps);
    if (!L.projection.empty() && w.has(L.projection)) {
      const Tensor p = w.get(L.projection);
      if (p.dim() != 2 || p.size(1) != D) fail<FormatError>(w.path(), ": tensor '", L.projection, "' is ", p.str(), "; expected [P, ", D, "]");
      m.projection = nn::Linear{nn::f32_contiguous(p), Tensor(), D, p.size(0)};
    }
    return m;
  }

  // The position table for a gh × gw grid, class row first when there is a class token: [T, D].
  Tensor position_table(int64_t gh, int64_t gw) const {
    if (!pos_embed.defined()) return sincos_pos_embed_2d(gh, gw, config.width);
    if (gh == config.pos_grid_h && gw == config.pos_grid_w) return pos_embed;
    const int64_t prefix = config.class_token ? 1 : 0;
    const Tensor grid = resample_pos_embed(pos_embed.slice(0, prefix, pos_embed.size(0)), config.pos_grid_h, config.pos_grid_w, gh, gw);
    Tensor out = Tensor::empty({prefix + gh * gw, config.width}, DType::F32);
    if (prefix) out.slice(0, 0, 1).copy_from(pos_embed.slice(0, 0, 1));
    out.slice(0, prefix, prefix + gh * gw).copy_from(grid);
    return out;
  }

  // pixels [B, C, H, W] f32 → the tokens entering block 0, [B, T, D].
  Tensor embed(const Tensor& pixels) const {
    if (pixels.dim() != 4) fail<ShapeError>("vit: input is ", pixels.str(), "; expected [B, C, H, W]");
    const int64_t B = pixels.size(0), gh = pixels.size(2) / config.patch, gw = pixels.size(3) / config.patch;
    Tensor patches = patch_embed.forward(pixels);  // checks the sizes
    if (patch_norm.loaded()) patches = patch_norm.forward(patches);
    const int64_t prefix = config.class_token ? 1 : 0, T = prefix + gh * gw, D = config.width;
    const Tensor pos = position_table(gh, gw);
    Tensor tokens = Tensor::empty({B, T, D}, DType::F32);
    float* pt = tokens.data<float>();
    const float* pp = patches.data<float>();
    const float* pe = pos.data<float>();
    for (int64_t b = 0; b < B; ++b) {
      float* tb = pt + b * T * D;
      if (prefix) {
        const float* cls = cls_token.data<float>();
        for (int64_t d = 0; d < D; ++d) tb[d] = cls[d] + pe[d];
      }
      const float* src = pp + b * gh * gw * D;
      for (int64_t i = 0; i < gh * gw * D; ++i) tb[prefix * D + i] = src[i] + pe[prefix * D + i];
    }
    if (pre_norm.loaded()) tokens = pre_norm.forward(tokens);
    return tokens;
  }

  // Runs the blocks up to the deepest one in `keep` (all loaded blocks when `keep` is empty) and
  // returns those blocks' outputs (all tokens, class token included).
  VitTrace forward(const Tensor& pixels, const std::vector<int64_t>& keep = {}) const {
    int64_t last = static_cast<int64_t>(blocks.size()) - 1;
    if (!keep.empty()) {
      last = *std::max_element(keep.begin(), keep.end());
      for (int64_t k : keep)
        if (k < 0 || k >= static_cast<int64_t>(blocks.size()))
          fail<UsageError>("vit: block ", k, " requested; ", blocks.size(), " blocks are loaded (0-", blocks.size() - 1, ")");
    }
    VitTrace t;
    t.embeddings = embed(pixels);
    t.kept.resize(keep.size());
    Tensor x = t.embeddings;
    for (int64_t i = 0; i <= last; ++i) {
      x = blocks[static_cast<size_t>(i)].forward(x);
      for (size_t j = 0; j < keep.size(); ++j)
        if (keep[j] == i) t.kept[j] = x;
    }
    t.last = x;
    return t;
  }
};

}  // namespace genscope::models
