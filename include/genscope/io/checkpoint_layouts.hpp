// genscope/io/checkpoint_layouts.hpp — where each model family keeps its weights in a
// checkpoint, and the renames from the names in released checkpoints to the names genscope's
// loaders read. THE one place for these tables: a model issue that needs a rename adds it here.
//
// A layout says, in order:
//  1. state_dict_keys: where the state dict sits in the pickled object (tried in order after the
//     top level; torch_checkpoint.hpp's find_state_dict);
//  2. take_prefixes: for checkpoints that bundle several models (a full Stable Diffusion .ckpt
//     holds the VAE under `first_stage_model.`, the UNet under `model.diffusion_model.`), keep
//     only the keys under the first of these prefixes that occurs in the file, and remove it;
//     a file without any of them is taken as already holding just this model;
//  3. strip_if_all: wrappers removed when EVERY key has them (DataParallel's `module.`,
//     torch.compile's `_orig_mod.`), repeatedly;
//  4. renames: (from prefix, to prefix) pairs applied to each key, first match wins;
//  5. expect_any: the result must contain a key starting with one of these, else the file is not
//     this model (FormatError naming the layout), so a wrong --layout fails loudly.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "genscope/core/error.hpp"

namespace genscope {

enum class CheckpointLayout { Auto, Aim, Spai, SdVae, SdUnet, Clip, Timm };

struct LayoutSpec {
  CheckpointLayout layout;
  std::string_view name;         // the --layout value
  std::string_view description;
  std::vector<std::string> state_dict_keys;
  std::vector<std::string> take_prefixes;
  std::vector<std::string> strip_if_all;
  std::vector<std::pair<std::string, std::string>> renames;
  std::vector<std::string> expect_any;
};

inline const std::vector<LayoutSpec>& checkpoint_layouts() {
  static const std::vector<std::string> kDefaultKeys = {"state_dict", "model", "model_state_dict", "module",
                                                        "net", "network", "params", "weights"};
  static const std::vector<std::string> kWrappers = {"module.", "_orig_mod."};
  static const std::vector<LayoutSpec> kLayouts = {
      {CheckpointLayout::Auto, "auto", "keys as found, less DataParallel/compile/encoder wrappers", kDefaultKeys, {},
       {"module.", "_orig_mod.", "encoder."}, {}, {}},
      // AIM (UAR): a backbone file plus the released linear head (linear.weight/bias), merged.
      {CheckpointLayout::Aim, "aim", "AIM backbone and UAR head (several --from are merged)", {"model", "state_dict"}, {},
       kWrappers, {}, {}},
      // SPAI: train.py saves {'model': state_dict, 'config': yacs CfgNode, ...}.
      {CheckpointLayout::Spai, "spai", "SPAI: the state dict under 'model'", {"model", "state_dict"}, {}, kWrappers, {}, {}},
      // Stable Diffusion (CompVis/ldm): one .ckpt with {'state_dict': {first_stage_model.*,
      // model.diffusion_model.*, cond_stage_model.*, ...}}.
      {CheckpointLayout::SdVae, "sd-vae", "Stable Diffusion VAE (first_stage_model.* of a full .ckpt, or a bare VAE)",
       {"state_dict"}, {"first_stage_model."}, kWrappers, {}, {"encoder.", "decoder."}},
      {CheckpointLayout::SdUnet, "sd-unet", "Stable Diffusion UNet (model.diffusion_model.* of a full .ckpt, or a bare UNet)",
       {"state_dict"}, {"model.diffusion_model."}, kWrappers, {}, {"input_blocks.", "down_blocks.", "conv_in."}},
      // CLIP (OpenAI / open_clip naming: visual.*, transformer.*, token_embedding...); detectors
      // use the vision tower.
      {CheckpointLayout::Clip, "clip", "CLIP (OpenAI/open_clip naming; the vision tower must be present)",
       {"state_dict", "model"}, {}, {"module.", "_orig_mod.", "model."}, {}, {"visual."}},
      // timm: train.py checkpoints are {'state_dict': ..., 'state_dict_ema': ..., ...}.
      {CheckpointLayout::Timm, "timm", "timm models (state_dict of a train checkpoint, or a bare state dict)",
       {"state_dict", "model"}, {}, kWrappers, {}, {}},
  };
  return kLayouts;
}

inline const LayoutSpec& layout_spec(CheckpointLayout layout) {
  for (const auto& l : checkpoint_layouts())
    if (l.layout == layout) return l;
  return checkpoint_layouts().front();
}

// The --layout choices, for Args::get_choice.
inline std::vector<std::pair<std::string, CheckpointLayout>> layout_choices() {
  std::vector<std::pair<std::string, CheckpointLayout>> c;
  for (const auto& l : checkpoint_layouts()) c.emplace_back(std::string(l.name), l.layout);
  return c;
}

struct LayoutResult {
  // (new name, index into the input names) for every kept key, in input order.
  std::vector<std::pair<std::string, size_t>> kept;
  // (input name, reason) for every key left out.
  std::vector<std::pair<std::string, std::string>> dropped;
  std::vector<std::string> notes;  // "took 'first_stage_model.' (3 of 7 keys)", "removed prefix 'module.'"
};

// Apply `layout` to the tensor names of one file (`path` names it in errors).
inline LayoutResult apply_layout(CheckpointLayout layout, const std::vector<std::string>& names, const std::string& path) {
  const LayoutSpec& spec = layout_spec(layout);
  LayoutResult r;
  std::vector<std::pair<std::string, size_t>> keys;
  for (size_t i = 0; i < names.size(); ++i) keys.emplace_back(names[i], i);

  for (const auto& prefix : spec.take_prefixes) {
    bool any = false;
    for (const auto& k : keys) any = any || k.first.starts_with(prefix);
    if (!any) continue;
    std::vector<std::pair<std::string, size_t>> taken;
    for (auto& k : keys) {
      if (k.first.starts_with(prefix)) taken.emplace_back(k.first.substr(prefix.size()), k.second);
      else r.dropped.emplace_back(k.first, cat("outside '", prefix, "' (layout ", spec.name, ")"));
    }
    r.notes.push_back(cat("took the ", taken.size(), " of ", keys.size(), " tensors under '", prefix, "'"));
    keys = std::move(taken);
    break;
  }

  for (bool again = true; again && !keys.empty();) {
    again = false;
    for (const auto& prefix : spec.strip_if_all) {
      bool all = true;
      for (const auto& k : keys) all = all && k.first.starts_with(prefix) && k.first.size() > prefix.size();
      if (!all) continue;
      for (auto& k : keys) k.first.erase(0, prefix.size());
      r.notes.push_back(cat("removed the prefix '", prefix, "' shared by every tensor"));
      again = true;
    }
  }

  for (auto& k : keys)
    for (const auto& [from, to] : spec.renames)
      if (k.first.starts_with(from)) {
        k.first = to + k.first.substr(from.size());
        break;
      }

  if (!spec.expect_any.empty() && !keys.empty()) {
    bool found = false;
    for (const auto& k : keys)
      for (const auto& p : spec.expect_any) found = found || k.first.starts_with(p);
    if (!found) {
      std::string list;
      for (const auto& p : spec.expect_any) list += (list.empty() ? "'" : ", '") + p + "'";
      fail<FormatError>(path, ": does not look like layout '", spec.name, "' (no tensor name starts with ", list,
                        "; first is '", keys.front().first, "')");
    }
  }
  r.kept = std::move(keys);
  return r;
}

}  // namespace genscope
