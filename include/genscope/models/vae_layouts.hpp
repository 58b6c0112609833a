// genscope/models/vae_layouts.hpp — the SD VAE's checkpoint layouts and their key tables, in one
// place. The model (models/vae.hpp) asks for diffusers' names; VaeWeights translates each to the
// name the file uses:
//
//   Diffusers        vae/diffusion_pytorch_model(.fp16).safetensors: encoder.down_blocks.0.resnets.0.conv1.weight
//   DiffusersLegacy  diffusers before 0.14: the mid-block attention is query/key/value/proj_attn
//   Original         the single-file SD checkpoint (sd-v1-4.ckpt converted by `genscope convert`):
//                    first_stage_model.encoder.down.0.block.0.conv1.weight, attention as 1×1 convs
//                    (q/k/v/proj_out [C, C, 1, 1]), nin_shortcut, and the decoder's up blocks
//                    numbered the other way round (up.{n-1-i} is diffusers' up_blocks.{i}).
//
// The Original table is the inverse of diffusers' own conversion
// (diffusers/loaders/single_file_utils.py, convert_ldm_vae_checkpoint and
// update_vae_{resnet,attentions}_ldm_to_diffusers). Any prefix in front of the VAE's keys
// ("first_stage_model.", "vae.", none) is found from where `encoder.conv_in.weight` sits.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/nn/weights.hpp"

namespace genscope::models {

enum class VaeLayout { Diffusers, DiffusersLegacy, Original };

inline std::string_view vae_layout_name(VaeLayout l) {
  switch (l) {
    case VaeLayout::Diffusers: return "diffusers";
    case VaeLayout::DiffusersLegacy: return "diffusers (legacy attention names)";
    case VaeLayout::Original: return "original single-file (first_stage_model)";
  }
  return "?";
}

// One renaming rule: a key starting with `from` has that part replaced by `to`. Placeholders
// {e} (encoder|decoder), {i} and {j} (integers) match one dotted word; {r} in `to` is the
// reversed up-block index n_up − 1 − i.
struct VaeKeyRule {
  std::string_view from, to;
};

// diffusers → original single-file. Longer patterns first: the first matching rule wins.
inline constexpr VaeKeyRule kVaeOriginalRules[] = {
    {"encoder.down_blocks.{i}.resnets.{j}.conv_shortcut.", "encoder.down.{i}.block.{j}.nin_shortcut."},
    {"encoder.down_blocks.{i}.resnets.{j}.", "encoder.down.{i}.block.{j}."},
    {"encoder.down_blocks.{i}.downsamplers.0.", "encoder.down.{i}.downsample."},
    {"decoder.up_blocks.{i}.resnets.{j}.conv_shortcut.", "decoder.up.{r}.block.{j}.nin_shortcut."},
    {"decoder.up_blocks.{i}.resnets.{j}.", "decoder.up.{r}.block.{j}."},
    {"decoder.up_blocks.{i}.upsamplers.0.", "decoder.up.{r}.upsample."},
    {"{e}.mid_block.resnets.0.", "{e}.mid.block_1."},
    {"{e}.mid_block.resnets.1.", "{e}.mid.block_2."},
    {"{e}.mid_block.attentions.0.group_norm.", "{e}.mid.attn_1.norm."},
    {"{e}.mid_block.attentions.0.to_q.", "{e}.mid.attn_1.q."},
    {"{e}.mid_block.attentions.0.to_k.", "{e}.mid.attn_1.k."},
    {"{e}.mid_block.attentions.0.to_v.", "{e}.mid.attn_1.v."},
    {"{e}.mid_block.attentions.0.to_out.0.", "{e}.mid.attn_1.proj_out."},
    {"{e}.conv_norm_out.", "{e}.norm_out."},
};

// diffusers → diffusers before the Attention refactor (0.14): the mid-block attention's names.
inline constexpr VaeKeyRule kVaeLegacyRules[] = {
    {"{e}.mid_block.attentions.0.to_q.", "{e}.mid_block.attentions.0.query."},
    {"{e}.mid_block.attentions.0.to_k.", "{e}.mid_block.attentions.0.key."},
    {"{e}.mid_block.attentions.0.to_v.", "{e}.mid_block.attentions.0.value."},
    {"{e}.mid_block.attentions.0.to_out.0.", "{e}.mid_block.attentions.0.proj_attn."},
};

namespace vae_detail {

// Match `key` against rule.from; on success write the renamed key to `out`.
inline bool apply_rule(const VaeKeyRule& rule, std::string_view key, int64_t num_up_blocks, std::string& out) {
  std::string e, i, j;
  size_t k = 0;
  for (size_t p = 0; p < rule.from.size();) {
    if (rule.from[p] == '{') {
      const char name = rule.from[p + 1];
      p += 3;
      const size_t end = key.find('.', k);
      if (end == std::string_view::npos || end == k) return false;
      const std::string word(key.substr(k, end - k));
      k = end;
      if (name == 'e') {
        if (word != "encoder" && word != "decoder") return false;
        e = word;
      } else {
        if (word.find_first_not_of("0123456789") != std::string::npos) return false;
        (name == 'i' ? i : j) = word;
      }
      continue;
    }
    if (k >= key.size() || key[k] != rule.from[p]) return false;
    ++k, ++p;
  }
  out.clear();
  for (size_t p = 0; p < rule.to.size(); ++p) {
    if (rule.to[p] != '{') {
      out += rule.to[p];
      continue;
    }
    const char name = rule.to[p + 1];
    p += 2;
    if (name == 'e') out += e;
    else if (name == 'i') out += i;
    else if (name == 'j') out += j;
    else out += std::to_string(num_up_blocks - 1 - std::stoll(i));
  }
  out += key.substr(k);
  return true;
}

}  // namespace vae_detail

// The file's name for a diffusers VAE key (without any prefix).
template <size_t N>
std::string rename_vae_key(const VaeKeyRule (&rules)[N], std::string_view key, int64_t num_up_blocks) {
  std::string out;
  for (const auto& rule : rules)
    if (vae_detail::apply_rule(rule, key, num_up_blocks, out)) return out;
  return std::string(key);
}

inline std::string vae_file_key(VaeLayout layout, std::string_view diffusers_key, int64_t num_up_blocks) {
  switch (layout) {
    case VaeLayout::Diffusers: return std::string(diffusers_key);
    case VaeLayout::DiffusersLegacy: return rename_vae_key(kVaeLegacyRules, diffusers_key, num_up_blocks);
    case VaeLayout::Original: return rename_vae_key(kVaeOriginalRules, diffusers_key, num_up_blocks);
  }
  return std::string(diffusers_key);
}

// A checkpoint seen through diffusers' VAE names, whatever its layout. Same interface as
// nn::Weights (scope, key, has, get), so the nn layers load from either.
class VaeWeights {
 public:
  explicit VaeWeights(nn::Weights file) : file_(std::move(file)) { detect(); }
  static VaeWeights open(const std::string& path) { return VaeWeights(nn::Weights::open(path)); }

  VaeLayout layout() const { return layout_; }
  const std::string& file_prefix() const { return file_prefix_; }  // e.g. "first_stage_model."
  const std::string& path() const { return file_.path(); }
  int64_t num_up_blocks() const { return num_up_blocks_; }
  void release_resident_pages() const { file_.release_resident_pages(); }

  VaeWeights scope(std::string_view name) const {
    VaeWeights w = *this;
    if (!name.empty()) w.prefix_ = prefix_.empty() ? std::string(name) : cat(prefix_, ".", name);
    return w;
  }
  std::string diffusers_key(std::string_view name) const { return prefix_.empty() ? std::string(name) : cat(prefix_, ".", name); }
  // The name in the file.
  std::string key(std::string_view name) const { return file_prefix_ + vae_file_key(layout_, diffusers_key(name), num_up_blocks_); }
  bool has(std::string_view name) const { return file_.has(key(name)); }

  // The tensor for diffusers' `name`, checked against `expected`. A 2-D Linear weight may be
  // stored as a 1×1 convolution [out, in, 1, 1] (the original layout); it is viewed as [out, in].
  Tensor get(std::string_view name, const Shape& expected) const {
    const std::string k = key(name);
    Tensor t = file_.get(k);
    if (expected.size() == 2 && t.dim() == 4 && t.size(2) == 1 && t.size(3) == 1) t = t.view({t.size(0), t.size(1)});
    if (!(t.shape() == expected))
      fail<FormatError>(path(), ": tensor '", k, "' has shape ", t.shape().str(), ", expected ", expected.str(), " (",
                        vae_layout_name(layout_), " layout)");
    return t;
  }
  Tensor get(std::string_view name) const { return file_.get(key(name)); }

 private:
  void detect() {
    static constexpr std::string_view kAnchor = "encoder.conv_in.weight";
    bool found = false;
    for (const auto& k : file_.all_keys()) {
      if (k.size() < kAnchor.size() || k.compare(k.size() - kAnchor.size(), kAnchor.size(), kAnchor) != 0) continue;
      const std::string prefix = k.substr(0, k.size() - kAnchor.size());
      if (!prefix.empty() && prefix.back() != '.') continue;
      if (found) fail<FormatError>(path(), ": more than one VAE in the file ('", file_prefix_, "' and '", prefix, "'); extract one");
      file_prefix_ = prefix;
      found = true;
    }
    if (!found) fail<FormatError>(path(), ": not an SD VAE checkpoint: no tensor named '[prefix.]encoder.conv_in.weight'");
    const auto has_file = [&](const std::string& k) { return file_.has(file_prefix_ + k); };
    if (has_file("encoder.down_blocks.0.resnets.0.conv1.weight")) {
      layout_ = has_file("encoder.mid_block.attentions.0.query.weight") ? VaeLayout::DiffusersLegacy : VaeLayout::Diffusers;
      while (has_file(cat("decoder.up_blocks.", num_up_blocks_, ".resnets.0.conv1.weight"))) ++num_up_blocks_;
    } else if (has_file("encoder.down.0.block.0.conv1.weight")) {
      layout_ = VaeLayout::Original;
      while (has_file(cat("decoder.up.", num_up_blocks_, ".block.0.conv1.weight"))) ++num_up_blocks_;
    } else {
      fail<FormatError>(path(), ": '", file_prefix_, "encoder.conv_in.weight' found, but neither diffusers' "
                        "'encoder.down_blocks.0.resnets.0.conv1.weight' nor the original 'encoder.down.0.block.0.conv1.weight'");
    }
  }

  nn::Weights file_;
  std::string prefix_;       // diffusers scope, e.g. "encoder.down_blocks.0"
  std::string file_prefix_;  // in front of every key in the file
  VaeLayout layout_ = VaeLayout::Diffusers;
  int64_t num_up_blocks_ = 0;
};

}  // namespace genscope::models
