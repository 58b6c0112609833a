// genscope/nn/weights.hpp — where a model's parameters come from, and the checks on the way in.
//
// A model's C++ structs mirror the module tree of its reference implementation, so loading is a
// walk: each module asks `w.scope("blocks.3")` for its sub-scope and `w.get("weight", {out, in})`
// for a tensor. Every failure names the file, the full key and what was expected, so a checkpoint
// of the wrong layout says which key it lacks rather than crashing later in a GEMM.
//
// Key renames between layouts (diffusers vs the original single-file SD, HF vs timm) live in the
// model's own key table; Weights only joins prefixes and looks names up.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/io/safetensors.hpp"

namespace genscope::nn {

class Weights {
 public:
  // Opens a .safetensors file, or a sharded checkpoint through its .index.json.
  static Weights open(const std::string& path) {
    return Weights(std::make_shared<const SafetensorsCheckpoint>(path), "");
  }

  // The same weights seen under `prefix.` (nested scopes join with '.'; an empty name is a no-op).
  Weights scope(std::string_view name) const {
    if (name.empty()) return *this;
    return Weights(file_, prefix_.empty() ? std::string(name) : cat(prefix_, ".", name));
  }

  std::string key(std::string_view name) const { return prefix_.empty() ? std::string(name) : cat(prefix_, ".", name); }
  bool has(std::string_view name) const { return file_->contains(key(name)); }
  const std::string& path() const { return file_->path(); }
  const std::string& prefix() const { return prefix_; }

  // Every key of the file (not only this scope's), for layout detection and error messages.
  const std::vector<std::string>& all_keys() const { return file_->names(); }

  // The tensor named `name` in this scope; FormatError naming file and key when it is missing.
  Tensor get(std::string_view name) const {
    const std::string k = key(name);
    if (!file_->contains(k)) fail<FormatError>(path(), ": missing tensor '", k, "'");
    return file_->get(k);
  }

  // As get(), and checks the shape: a checkpoint for another configuration fails here, by name.
  Tensor get(std::string_view name, const Shape& expected) const {
    Tensor t = get(name);
    if (t.shape() != expected)
      fail<FormatError>(path(), ": tensor '", key(name), "' has shape ", t.shape().str(), ", expected ", expected.str());
    return t;
  }

  // Drop the file's pages from the resident set (MappedFile::release_resident_pages): for models
  // that read their weights layer by layer and never write them.
  void release_resident_pages() const { file_->release_resident_pages(); }

  // An optional tensor (a bias some checkpoints omit): undefined Tensor when absent.
  Tensor get_optional(std::string_view name) const { return has(name) ? get(name) : Tensor(); }

 private:
  Weights(std::shared_ptr<const SafetensorsCheckpoint> file, std::string prefix)
      : file_(std::move(file)), prefix_(std::move(prefix)) {}

  std::shared_ptr<const SafetensorsCheckpoint> file_;
  std::string prefix_;
};

}  // namespace genscope::nn
