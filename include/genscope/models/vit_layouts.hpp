// genscope/models/vit_layouts.hpp — the checkpoint key tables of the Vision Transformers genscope
// reads, one per layout, in this one place. Each names where the reference keeps every tensor and
// the hyper-parameters its code fixes (LayerNorm eps, activation, which linears carry biases):
//
//   aim       apple/ml-aim aim-v1/aim/v1/torch/{layers,models}.py: preprocessor.patchifier.{proj,
//             norm}, trunk.blocks.N.{norm_1, attn.qkv, attn.proj, norm_2, mlp.fc1, mlp.fc2},
//             trunk.post_trunk_norm, head.* (AttentionPoolingClassifier). Bias-free linears
//             (Transformer(use_bias=False), qkv_bias=False), exact GELU, eps 1e-6, no class token,
//             fixed 2-D sin-cos position embedding, heads = width / 128 for every published size.
//   clip      transformers models/clip/modeling_clip.py, CLIPVisionModel(WithProjection):
//             vision_model.embeddings.{patch_embedding (no bias), class_embedding [D],
//             position_embedding.weight [T, D]}, vision_model.pre_layrnorm,
//             vision_model.encoder.layers.N.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2,
//             mlp.fc1, mlp.fc2}, vision_model.post_layernorm (on the pooled class token only),
//             visual_projection (no bias). quick-GELU, eps 1e-5, head dim 64. The int64
//             embeddings.position_ids buffer is ignored. transformers 5 saves a bare
//             CLIPVisionModel without the "vision_model." prefix; such files are read too
//             (resolve_vit_layout).
//   spai-vit  mever-team/spai spai/models/vision_transformer.py (BEiT's code), under mfvit.vit.:
//             patch_embed.proj, cls_token, pos_embed, blocks.N.{norm1, attn.qkv (no bias) +
//             attn.q_bias + attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2, gamma_1, gamma_2 if
//             init_values}. Exact GELU, eps 1e-6 (build_vit's norm_layer), head dim 64.
//   timm-vit  timm models/vision_transformer.py VisionTransformer (vit_base_patch16_224):
//             patch_embed.proj, cls_token, pos_embed, blocks.N.{norm1, attn.qkv, attn.proj, norm2,
//             mlp.fc1, mlp.fc2, ls1.gamma, ls2.gamma if init_values}, norm, head. Exact GELU, eps 1e-6.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "genscope/core/error.hpp"
#include "genscope/nn/attention_block.hpp"
#include "genscope/nn/linear.hpp"
#include "genscope/nn/weights.hpp"
#include "genscope/ops/activation.hpp"

namespace genscope::models {

enum class VitArch { Aim, Clip, SpaiVit, TimmVit };

inline std::string_view vit_arch_name(VitArch a) {
  switch (a) {
    case VitArch::Aim: return "aim";
    case VitArch::Clip: return "clip";
    case VitArch::SpaiVit: return "spai-vit";
    case VitArch::TimmVit: return "timm-vit";
  }
  return "?";
}

inline std::optional<VitArch> parse_vit_arch(std::string_view name) {
  for (VitArch a : {VitArch::Aim, VitArch::Clip, VitArch::SpaiVit, VitArch::TimmVit})
    if (name == vit_arch_name(a)) return a;
  return std::nullopt;
}

struct VitLayout {
  VitArch arch = VitArch::TimmVit;
  // Embeddings. Empty names: the layout has no such part.
  std::string patch_weight, patch_bias;  // the patch conv [D, C, p, p] and its bias
  std::string patch_norm;                // AIM: LayerNorm right after the patch conv
  std::string cls_token;                 // [1, 1, D] or [D]
  std::string pos_embed;                 // learned [1, T, D] or [T, D]; empty: 2-D sin-cos (AIM)
  std::string pre_norm;                  // CLIP's pre_layrnorm
  std::string blocks;                    // block i lives under "<blocks>.<i>"
  nn::AttentionBlockKeys block;
  std::string final_norm;                // after the last block (CLIP: on the pooled token only)
  bool final_norm_pooled_only = false;
  std::string projection;                // CLIP's visual_projection [P, D], optional
  std::string head;                      // the classifier scope (timm: Linear; AIM: the probe)
  // Fixed by the reference's code, not stored in checkpoints.
  float eps = 1e-6f;
  ops::Activation act = ops::Activation::Gelu;
  nn::BiasMode qkv_bias = nn::BiasMode::Required, proj_bias = nn::BiasMode::Required, mlp_bias = nn::BiasMode::Required;
  int64_t head_dim = 64;                 // heads = width / head_dim unless given
  std::string optional_prefix;           // a prefix some checkpoints of this layout lack
};

inline const VitLayout& vit_layout(VitArch arch) {
  static const VitLayout aim = [] {
    VitLayout l;
    l.arch = VitArch::Aim;
    l.patch_weight = "preprocessor.patchifier.proj.weight";
    l.patch_bias = "preprocessor.patchifier.proj.bias";
    l.patch_norm = "preprocessor.patchifier.norm";
    l.blocks = "trunk.blocks";
    l.block.norm1 = "norm_1";
    l.block.norm2 = "norm_2";
    l.block.qkv = "attn.qkv";
    l.block.proj = "attn.proj";
    l.block.mlp = "mlp";
    l.final_norm = "trunk.post_trunk_norm";
    l.head = "head";
    l.qkv_bias = l.proj_bias = l.mlp_bias = nn::BiasMode::None;
    l.head_dim = 128;
    return l;
  }();
  static const VitLayout clip = [] {
    VitLayout l;
    l.arch = VitArch::Clip;
    l.patch_weight = "vision_model.embeddings.patch_embedding.weight";
    l.cls_token = "vision_model.embeddings.class_embedding";
    l.pos_embed = "vision_model.embeddings.position_embedding.weight";
    l.pre_norm = "vision_model.pre_layrnorm";
    l.blocks = "vision_model.encoder.layers";
    l.block.norm1 = "layer_norm1";
    l.block.norm2 = "layer_norm2";
    l.block.q = "self_attn.q_proj";
    l.block.k = "self_attn.k_proj";
    l.block.v = "self_attn.v_proj";
    l.block.proj = "self_attn.out_proj";
    l.block.mlp = "mlp";
    l.final_norm = "vision_model.post_layernorm";
    l.final_norm_pooled_only = true;
    l.projection = "visual_projection.weight";
    l.eps = 1e-5f;
    l.act = ops::Activation::QuickGelu;
    l.optional_prefix = "vision_model.";
    return l;
  }();
  static const VitLayout spai = [] {
    VitLayout l;
    l.arch = VitArch::SpaiVit;
    l.patch_weight = "mfvit.vit.patch_embed.proj.weight";
    l.patch_bias = "mfvit.vit.patch_embed.proj.bias";
    l.cls_token = "mfvit.vit.cls_token";
    l.pos_embed = "mfvit.vit.pos_embed";
    l.blocks = "mfvit.vit.blocks";
    l.block.norm1 = "norm1";
    l.block.norm2 = "norm2";
    l.block.qkv = "attn.qkv";
    l.block.q_bias = "attn.q_bias";
    l.block.v_bias = "attn.v_bias";
    l.block.proj = "attn.proj";
    l.block.mlp = "mlp";
    l.block.gamma1 = "gamma_1";
    l.block.gamma2 = "gamma_2";
    return l;
  }();
  static const VitLayout timm = [] {
    VitLayout l;
    l.arch = VitArch::TimmVit;
    l.patch_weight = "patch_embed.proj.weight";
    l.patch_bias = "patch_embed.proj.bias";
    l.cls_token = "cls_token";
    l.pos_embed = "pos_embed";
    l.blocks = "blocks";
    l.block.norm1 = "norm1";
    l.block.norm2 = "norm2";
    l.block.qkv = "attn.qkv";
    l.block.proj = "attn.proj";
    l.block.mlp = "mlp";
    l.block.gamma1 = "ls1.gamma";
    l.block.gamma2 = "ls2.gamma";
    l.final_norm = "norm";
    l.head = "head";
    return l;
  }();
  switch (arch) {
    case VitArch::Aim: return aim;
    case VitArch::Clip: return clip;
    case VitArch::SpaiVit: return spai;
    case VitArch::TimmVit: return timm;
  }
  fail<UsageError>("unknown ViT layout");
}

// The layout as a given checkpoint spells it: without the optional prefix when the checkpoint's
// patch weight is stored without it.
inline VitLayout resolve_vit_layout(const nn::Weights& w, VitArch arch) {
  VitLayout l = vit_layout(arch);
  const std::string& p = l.optional_prefix;
  if (p.empty() || w.has(l.patch_weight) || !w.has(l.patch_weight.substr(p.size()))) return l;
  for (std::string* key : {&l.patch_weight, &l.patch_bias, &l.patch_norm, &l.cls_token, &l.pos_embed, &l.pre_norm, &l.blocks,
                           &l.final_norm, &l.projection, &l.head})
    if (key->starts_with(p)) key->erase(0, p.size());
  return l;
}

}  // namespace genscope::models
