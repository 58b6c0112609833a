// genscope convert --from X.pth [--from Y.pth ...] --to OUT.safetensors [--layout L] [--dtype T]
// [--select KEY] — turn PyTorch checkpoints into one safetensors file, executing nothing.
//
// Each input is read by io/torch_checkpoint.hpp (zip or legacy torch.save; a .safetensors input
// is accepted too, so a released safetensors backbone can be merged with a .pth head). The state
// dict is found (top level, 'state_dict', 'model', ... or --select), the layout
// (io/checkpoint_layouts.hpp) picks and renames keys, several inputs are merged (a key present in
// two inputs is an error, never a silent overwrite), non-tensor entries are dropped and listed,
// and the result is written atomically: a failure at any point leaves no output file.
//
// Memory: tensors stored in place in a zip checkpoint (every torch.save since 1.6) are views of
// the memory-mapped input, and the writer copies them to the output one at a time, so a 10 GB
// checkpoint converts with little more than the page cache. Tensors that must be copied (legacy
// files whose data is not aligned, f64 and small-integer storages, big-endian files, deflated
// archives) and every tensor converted by --dtype are held in memory until the file is written.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "args.hpp"
#include "genscope/io/checkpoint_layouts.hpp"
#include "genscope/io/safetensors.hpp"
#include "genscope/io/torch_checkpoint.hpp"

namespace genscope::cli {

enum class ConvertDType { Keep, F32, F16, BF16 };

namespace convert_detail {

inline bool is_safetensors_file(const std::string& path) {
  // 8-byte little-endian header size, then '{': what a safetensors file starts with.
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  unsigned char b[9] = {};
  const size_t n = std::fread(b, 1, 9, f);
  std::fclose(f);
  return n == 9 && b[8] == '{' && b[6] == 0 && b[7] == 0;
}

inline bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return a == b;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

inline std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[64];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

// "a (int), b (str), ... and 12 more" — a short list for the summary.
inline std::string some(const std::vector<std::pair<std::string, std::string>>& items, size_t max = 6) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < max; ++i)
    s += cat(i ? ", " : "", "'", safetensors_detail::shown(items[i].first), "'", items[i].second.empty() ? "" : " (" + items[i].second + ")");
  if (items.size() > max) s += cat(" and ", items.size() - max, " more");
  return s;
}

}  // namespace convert_detail

inline int run_convert(int argc, char** argv) {
  using namespace convert_detail;
  Args args("convert", "--from CHECKPOINT [--from CHECKPOINT ...] --to OUT.safetensors [options]",
            {
                {"from", "FILE", "a PyTorch checkpoint (.pth/.pt/.ckpt; zip or legacy torch.save) or a .safetensors file; repeat to merge"},
                {"to", "OUT.safetensors", "the file to write (atomically; never left half-written)"},
                {"layout", "NAME", "auto|aim|spai|sd-vae|sd-unet|clip|timm: where the weights are and how they are named (auto)"},
                {"dtype", "TYPE", "keep|f32|f16|bf16: convert floating-point tensors (keep; f64 always becomes f32)"},
                {"select", "KEY", "the key holding the state dict ('a/b' descends); once for all inputs, or once per --from"},
            });
  if (!args.parse(argc, argv, 2)) return 0;
  if (!args.positionals().empty())
    fail<UsageError>("convert: unexpected argument '", args.positionals().front(), "' (inputs are given with --from)");
  const std::vector<std::string> inputs = args.get_all("from");
  if (inputs.empty()) fail<UsageError>("convert: missing required option '--from'");
  const std::string out = args.require("to");
  const CheckpointLayout layout = args.get_choice<CheckpointLayout>("layout", layout_choices()).value_or(CheckpointLayout::Auto);
  const ConvertDType dtype = args.get_choice<ConvertDType>("dtype", {{"keep", ConvertDType::Keep}, {"f32", ConvertDType::F32},
                                                                    {"f16", ConvertDType::F16}, {"bf16", ConvertDType::BF16}})
                                 .value_or(ConvertDType::Keep);
  const std::vector<std::string> selects = args.get_all("select");
  if (selects.size() > 1 && selects.size() != inputs.size())
    fail<UsageError>("convert: give --select once (for every input) or once per --from (", inputs.size(), "), not ",
                     selects.size(), " times");
  for (const auto& in : inputs)
    if (same_file(in, out)) fail<UsageError>("convert: --to '", out, "' is also an input; choose another output file");
  const LayoutSpec& spec = layout_spec(layout);

  // Inputs stay open until the output is written: the tensors view their mappings.
  std::vector<std::unique_ptr<TorchCheckpoint>> torch_files;
  std::vector<std::unique_ptr<SafetensorsFile>> st_files;
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> owner;  // tensor name -> input it came from
  // Dropped entries, grouped by (input, why) for the summary, in the order met.
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> dropped;
  size_t dropped_count = 0;
  auto drop = [&](const std::string& group, const std::string& name, const std::string& what) {
    auto it = std::find_if(dropped.begin(), dropped.end(), [&](const auto& g) { return g.first == group; });
    if (it == dropped.end()) it = dropped.insert(dropped.end(), {group, {}});
    it->second.emplace_back(name, what);
    ++dropped_count;
  };
  std::vector<std::string> notes;
  size_t from_f64 = 0, converted = 0;

  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& path = inputs[i];
    const std::string select = selects.empty() ? std::string() : selects.size() == 1 ? selects[0] : selects[i];
    std::vector<std::string> names;
    std::vector<std::function<Tensor()>> loaders;
    std::string summary;
    if (is_safetensors_file(path)) {
      if (!select.empty()) fail<UsageError>("convert: --select does not apply to the safetensors input '", path, "'");
      st_files.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(path)));
      const SafetensorsFile* f = st_files.back().get();
      for (const auto& n : f->names()) {
        names.push_back(n);
        loaders.push_back([f, n] { return f->get(n); });
      }
      summary = cat(path, " (safetensors): ", names.size(), " tensors");
    } else {
      torch_files.push_back(std::make_unique<TorchCheckpoint>(TorchCheckpoint::open(path)));
      const TorchCheckpoint* ck = torch_files.back().get();
      const StateDict sd = ck->state_dict(select, spec.state_dict_keys);
      for (const auto& e : sd.entries) {
        if (!e.tensor) {
          drop(cat(path, ", not tensors"), e.name, e.dropped);
          continue;
        }
        names.push_back(e.name);
        const pickle::Node* node = e.tensor;
        const std::string name = e.name;
        loaders.push_back([ck, node, name, &from_f64] {
          const auto& t = *node->tensor;
          if ((t.dtype.empty() ? t.storage->storage->dtype : t.dtype) == "float64") ++from_f64;
          return ck->tensor(node, name);
        });
      }
      for (const auto& [k, what] : sd.ignored) drop(cat(path, ", outside the state dict"), k, what);
      summary = cat(path, " (", ck->format() == TorchFormat::Zip ? "zip archive '" + ck->archive_prefix() + "'" : std::string("legacy format"),
                    "): ", sd.tensor_count(), " tensors in ", sd.source);
      if (!ck->unknown_globals().empty()) {
        std::string list;
        for (const auto& g : ck->unknown_globals()) list += (list.empty() ? "" : ", ") + g;
        std::fprintf(stderr, "genscope convert: note: %s holds objects of classes genscope does not know (kept as inert placeholders, never executed): %s\n",
                     path.c_str(), list.c_str());
      }
    }
    std::printf("read %s\n", summary.c_str());

    const LayoutResult lr = apply_layout(layout, names, path);
    for (const auto& n : lr.notes) notes.push_back(cat(path, ": ", n));
    for (const auto& [n, why] : lr.dropped) drop(cat(path, ", ", why), n, "");
    for (const auto& [name, index] : lr.kept) {
      if (auto it = owner.find(name); it != owner.end())
        fail<InputError>("convert: tensor '", safetensors_detail::shown(name), "' is in both ", it->second, " and ", path,
                         "; merging refuses overlapping keys (use --layout or --select to pick)");
      Tensor t;
      try {
        t = loaders[index]();
      } catch (const FormatError& e) {
        // An unsupported dtype (complex, quantized, float8) drops that tensor, not the file.
        if (std::string(e.what()).find("is not supported by genscope") == std::string::npos) throw;
        drop(cat(path, ", unsupported dtype"), name, e.what());
        continue;
      }
      if (dtype != ConvertDType::Keep && is_floating(t.dtype())) {
        const DType target = dtype == ConvertDType::F32 ? DType::F32 : dtype == ConvertDType::F16 ? DType::F16 : DType::BF16;
        if (t.dtype() != target) {
          t = t.to(target);
          ++converted;
        }
      }
      owner.emplace(name, path);
      tensors.emplace_back(name, std::move(t));
    }
  }
  if (tensors.empty()) {
    std::string why;
    for (const auto& [group, items] : dropped) why += cat("; ", group, ": ", some(items));
    fail<InputError>("convert: no tensors to write", why);
  }

  std::string sources;
  for (const auto& in : inputs) sources += (sources.empty() ? "" : ", ") + in.substr(in.rfind('/') + 1);
  save_safetensors(out, tensors, {{"format", "pt"}, {"genscope.converted_from", sources}, {"genscope.layout", std::string(spec.name)}});

  uint64_t bytes = 0;
  for (const auto& [n, t] : tensors) bytes += t.nbytes();
  for (const auto& n : notes) std::printf("%s\n", n.c_str());
  if (from_f64) std::printf("stored %zu float64 tensors as f32 (genscope has no f64)\n", from_f64);
  if (converted) std::printf("converted %zu floating-point tensors to %s\n", converted, args.get("dtype")->c_str());
  if (dropped_count) {
    std::printf("dropped %zu entries:\n", dropped_count);
    for (const auto& [group, items] : dropped) std::printf("  %s: %zu: %s\n", group.c_str(), items.size(), some(items).c_str());
  }
  std::printf("wrote %s: %zu tensors, %llu bytes (%s) of tensor data\n", out.c_str(), tensors.size(),
              static_cast<unsigned long long>(bytes), human_bytes(bytes).c_str());
  return 0;
}

}  // namespace genscope::cli
