// genscope/models/vit_features.hpp — one feature vector per image from a ViT checkpoint: what
// `genscope features` writes, and what the detectors built on a ViT start from.
//
// Pooling (VitPool):
//   probe  AIM's attention probe over the mean of the probe layers → x_cls [D] (AIM's default;
//          the layers default to the published "best layers" for the width, aim_best_layers).
//   cls    the class token. Without explicit layers: CLIP's pooler_output (post_layernorm of the
//          class token; with `project`, visual_projection of it = image_embeds), timm's pre-logits
//          (norm, then token 0), SPAI's raw token 0. The default for clip and timm-vit.
//   mean   the mean of the patch tokens (class token excluded). Without explicit layers, of the
//          last block after the final norm where the model applies one to all tokens (timm,
//          AIM's post_trunk_norm).
//
// Preprocessing (vit_pixels): the image each layout's reference pipeline feeds it.
//   rich    UAR/RAID: the rich-texture crop (io/rich_texture_crop.hpp), no resize, then
//           ToTensor and Normalize. The default for aim.
//   center  aim, spai-vit: AIM's val_transforms (aim/v1/torch/data.py): Resize(ceil(224/0.875) =
//           256, bicubic), CenterCrop(224); clip: CLIP's _transform at the model's size (224 or
//           336: Resize(S, bicubic), CenterCrop(S)); timm-vit: vit_base_patch16_224's pretrained
//           config (crop_pct 0.9: Resize(248, bicubic), CenterCrop(224)).
//   Normalisation: ImageNet mean/std (aim, spai-vit: SPAI's MFViT normalises with ImageNet
//   statistics), CLIP's (clip), 0.5/0.5 (timm-vit).
// With explicit layers A-B (and for spai-vit by default: all blocks, mean, as SPAI reads every
// block's patch tokens), each block's raw output is pooled and the results are concatenated in
// block order: [B, (B−A+1)·D]. For AIM with the probe, A-B are the probe layers instead.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/io/preprocess.hpp"
#include "genscope/io/rich_texture_crop.hpp"
#include "genscope/models/aim_head.hpp"
#include "genscope/models/vit.hpp"
#include "genscope/nn/weights.hpp"

namespace genscope::models {

enum class VitPool { Default, Cls, Mean, Probe };

struct VitFeatureOptions {
  std::optional<std::pair<int64_t, int64_t>> layers;  // 0-based, inclusive
  VitPool pool = VitPool::Default;
  std::optional<int64_t> heads;                       // trunk and probe heads (default width / head_dim)
  bool project = false;                               // CLIP: apply visual_projection to the pooled token
};

// Mean over the patch tokens (from `prefix` on) of x [B, T, D] → [B, D].
inline Tensor mean_tokens(const Tensor& x_in, int64_t prefix) {
  const Tensor x = nn::f32_contiguous(x_in);
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  Tensor out = Tensor::zeros({B, D}, DType::F32);
  const float* px = x.data<float>();
  float* po = out.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> acc(static_cast<size_t>(D), 0.0);
    for (int64_t t = prefix; t < T; ++t)
      for (int64_t d = 0; d < D; ++d) acc[static_cast<size_t>(d)] += px[(b * T + t) * D + d];
    for (int64_t d = 0; d < D; ++d) po[b * D + d] = static_cast<float>(acc[static_cast<size_t>(d)] / static_cast<double>(T - prefix));
  }
  return out;
}

struct VitFeatureExtractor {
  VisionTransformer vit;
  std::optional<AttentionPoolingClassifier> probe;
  VitPool pool = VitPool::Cls;
  std::vector<int64_t> layers;  // the blocks read; empty: the final output
  bool project = false;

  static VitFeatureExtractor load(const nn::Weights& w, VitArch arch, const VitFeatureOptions& opt = {}) {
    VitFeatureExtractor f;
    f.pool = opt.pool;
    if (f.pool == VitPool::Default) f.pool = arch == VitArch::Aim ? VitPool::Probe : arch == VitArch::SpaiVit ? VitPool::Mean : VitPool::Cls;
    if (f.pool == VitPool::Probe && arch != VitArch::Aim) fail<UsageError>("features: the attention probe (--pool probe) exists only for --arch aim");
    if (f.pool == VitPool::Cls && arch == VitArch::Aim) fail<UsageError>("features: AIM has no class token; use --pool probe or mean");
    if (opt.project && arch != VitArch::Clip) fail<UsageError>("features: --project applies to --arch clip only");
    f.project = opt.project;
    // Probe layers or explicit layers: the deepest decides how many blocks are loaded.
    std::optional<std::pair<int64_t, int64_t>> range = opt.layers;
    VitLoadOptions lo;
    lo.heads = opt.heads;
    if (f.pool == VitPool::Probe && !range) {
      const Tensor pw = w.get(resolve_vit_layout(w, arch).patch_weight);
      range = aim_best_layers(pw.size(0));
    }
    if (range) {
      if (range->first < 0 || range->second < range->first) fail<UsageError>("features: bad layer range ", range->first, "-", range->second);
      lo.blocks = range->second + 1;
    }
    f.vit = VisionTransformer::load(w, arch, lo);
    if (!range && arch == VitArch::SpaiVit) range = std::pair<int64_t, int64_t>{0, f.vit.config.depth - 1};
    if (range)
      for (int64_t i = range->first; i <= range->second; ++i) f.layers.push_back(i);
    if (f.pool == VitPool::Probe)
      f.probe = AttentionPoolingClassifier::load(w.scope(f.vit.layout.head), f.vit.config.width, f.vit.config.heads);
    if (f.project && !f.vit.projection.weight.defined())
      fail<UsageError>(w.path(), ": --project needs 'visual_projection.weight', which the checkpoint lacks");
    return f;
  }

  // The length of one feature row.
  int64_t feature_dim() const {
    const int64_t D = vit.config.width;
    if (pool == VitPool::Probe) return D;
    if (!layers.empty()) return static_cast<int64_t>(layers.size()) * D;
    return project ? vit.projection.out_features : D;
  }

  // The square input size the checkpoint was trained at: its learned position grid, else 224.
  int64_t input_size() const { return vit.pos_embed.defined() ? vit.config.pos_grid_h * vit.config.patch : 224; }

  // pixels [B, C, H, W] → features [B, F].
  Tensor features(const Tensor& pixels) const {
    const VitTrace t = vit.forward(pixels, layers);
    const int64_t prefix = vit.config.class_token ? 1 : 0, D = vit.config.width, B = pixels.size(0);
    if (pool == VitPool::Probe) return probe->forward(average_layers(t.kept)).x_cls;
    if (!layers.empty()) {
      Tensor out = Tensor::empty({B, static_cast<int64_t>(layers.size()) * D}, DType::F32);
      for (size_t i = 0; i < layers.size(); ++i) {
        const Tensor p = pool == VitPool::Mean ? mean_tokens(t.kept[i], prefix) : t.kept[i].select(1, 0);
        out.slice(1, static_cast<int64_t>(i) * D, static_cast<int64_t>(i + 1) * D).copy_from(p);
      }
      return out;
    }
    const VitLayout& L = vit.layout;
    Tensor x = t.last;
    if (vit.final_norm.loaded() && !L.final_norm_pooled_only) x = vit.final_norm.forward(x);
    Tensor pooled = pool == VitPool::Mean ? mean_tokens(x, prefix) : x.select(1, 0).contiguous();
    if (pool == VitPool::Cls && vit.final_norm.loaded() && L.final_norm_pooled_only) pooled = vit.final_norm.forward(pooled);
    if (project) pooled = vit.projection.forward(pooled);
    return pooled;
  }
};

enum class VitCrop { Default, Rich, Center };

// A u8 RGB image [H, W, 3] → the float32 pixels [3, S, S] the layout's pipeline gives it (see the
// top of this file). `size` is the model's input size (VitFeatureExtractor::input_size()).
inline Tensor vit_pixels(const Tensor& hwc_u8, VitArch arch, VitCrop crop, uint64_t seed, int64_t size) {
  if (crop == VitCrop::Default) crop = arch == VitArch::Aim ? VitCrop::Rich : VitCrop::Center;
  std::vector<float> mean(kImageNetMean.begin(), kImageNetMean.end()), std(kImageNetStd.begin(), kImageNetStd.end());
  if (arch == VitArch::Clip) {
    mean.assign(kClipMean.begin(), kClipMean.end());
    std.assign(kClipStd.begin(), kClipStd.end());
  } else if (arch == VitArch::TimmVit) {
    mean.assign(3, 0.5f);
    std.assign(3, 0.5f);
  }
  if (crop == VitCrop::Rich) {
    Tensor chw = to_chw_float(rich_texture_crop(hwc_u8, seed, size));
    normalize(chw, mean, std);
    return chw;
  }
  Preprocess pre;
  pre.interp = Interp::Bicubic;
  pre.crop = static_cast<int>(size);
  pre.resize = arch == VitArch::Clip ? static_cast<int>(size)
             : arch == VitArch::TimmVit ? static_cast<int>(static_cast<double>(size) / 0.9)
                                        : static_cast<int>(std::ceil(static_cast<double>(size) / 0.875));
  pre.mean = mean;
  pre.std = std;
  return pre.run(hwc_u8);
}

}  // namespace genscope::models
