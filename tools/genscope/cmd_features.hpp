// genscope features --arch aim|clip|spai-vit|timm-vit --weights W.safetensors --input DIR|FILE|LIST.txt
//                   --output F.safetensors [--layers A-B] [--pool cls|mean|probe] [--crop rich|center]
//                   [--batch N] [--device cpu|cuda] [--precision f32|tf32|f16|bf16] [--seed S]
//                   [--heads N] [--project]
// One feature row per image from a Vision Transformer (models/vit_features.hpp): a tensor
// `features` [N, D] f32 and, in the metadata, `paths`, a JSON array of the image paths in row
// order. A directory is walked recursively in sorted order (files with an image extension); a
// .txt file lists one image path per line (blank lines and lines starting with '#' ignored);
// anything else is one image. Unreadable images are skipped with a warning naming each, and the
// count is reported at the end with exit 2; the output is still written, complete for all the
// others. The output is written atomically. A progress line with images/s goes to stderr when it
// is a terminal.
// --device cuda runs the model on the GPU (models/vit_cuda.hpp, through cuda_vit.hpp) when genscope
// is built with CUDA: the same rows, from weights uploaded once; --precision picks its storage and
// GEMM mode (f32, the default, is the CPU's arithmetic). Without a usable GPU: DeviceError, exit 2.
// A build without CUDA refuses --device cuda as a usage error (exit 1).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "args.hpp"
#include "genscope/io/image.hpp"
#include "genscope/io/json.hpp"
#include "genscope/io/safetensors.hpp"
#include "genscope/models/vit_features.hpp"
#include "genscope/nn/weights.hpp"
#if defined(GENSCOPE_CLI_CUDA)
#include "cuda_vit.hpp"
#endif

namespace genscope::cli {

namespace features_detail {

inline bool has_image_extension(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* e : {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga", ".ppm", ".pgm", ".pnm", ".pbm"})
    if (ext == e) return true;
  return false;
}

// The images named by --input, in row order.
inline std::vector<std::string> collect_inputs(const std::string& input) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> paths;
  if (fs::is_directory(input, ec)) {
    for (auto it = fs::recursive_directory_iterator(input, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file(ec) && has_image_extension(it->path())) paths.push_back(it->path().string());
    if (ec) fail<IoError>(input, ": cannot walk the directory: ", ec.message());
    std::sort(paths.begin(), paths.end());
    return paths;
  }
  if (!fs::exists(input, ec)) fail<IoError>(input, ": no such file or directory");
  if (fs::path(input).extension() == ".txt") {
    std::ifstream in(input);
    if (!in) fail<IoError>(input, ": cannot open the list");
    for (std::string line; std::getline(in, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
      if (line.empty() || line[0] == '#') continue;
      paths.push_back(line);
    }
    return paths;
  }
  return {input};
}

inline std::pair<int64_t, int64_t> parse_layer_range(const std::string& s) {
  const size_t dash = s.find('-');
  auto num = [&](const std::string& part) {
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos || part.size() > 6)
      fail<UsageError>("features: --layers expects A-B or N (0-based block indices), got '", s, "'");
    return static_cast<int64_t>(std::stoll(part));
  };
  if (dash == std::string::npos) return {num(s), num(s)};
  const int64_t a = num(s.substr(0, dash)), b = num(s.substr(dash + 1));
  if (b < a) fail<UsageError>("features: --layers ", s, ": the last block comes before the first");
  return {a, b};
}

}  // namespace features_detail

inline int run_features(int argc, char** argv) {
  using namespace models;
  using namespace features_detail;
  Args args("features", "--arch A --weights W.safetensors --input DIR|FILE|LIST.txt --output F.safetensors [options]",
            {{"arch", "NAME", "aim, clip, spai-vit or timm-vit (the checkpoint's key layout)"},
             {"weights", "FILE", "the model's .safetensors (or sharded .index.json)"},
             {"input", "PATH", "an image, a directory (walked recursively, sorted) or a .txt list of image paths"},
             {"output", "FILE", "the .safetensors to write: features [N, D] f32, metadata 'paths'"},
             {"layers", "A-B", "blocks to read, 0-based inclusive (aim: the probe layers; default the published ones)"},
             {"pool", "NAME", "cls, mean or probe (default: probe for aim, mean for spai-vit, cls otherwise)"},
             {"crop", "NAME", "rich (UAR/RAID's rich-texture crop; default for aim) or center (the reference eval transform)"},
             {"batch", "N", "images per forward pass (default 8)"},
             {"device", "NAME", "cpu (default) or cuda"},
             {"precision", "NAME", "cuda: f32 (default), tf32, f16 or bf16 weights and activations (f32 accumulation)"},
             {"seed", "S", "seed of the rich-texture crop's windows, as Python's random.seed(S) (default 0)"},
             {"heads", "N", "attention heads (default: width/128 for aim, width/64 otherwise)"},
             {"project", "", "clip: apply visual_projection to the pooled token (CLIP's image_embeds)"}});
  if (!args.parse(argc, argv, 2)) return 0;
  if (!args.positionals().empty()) fail<UsageError>("features: unexpected argument '", args.positionals()[0], "'");
  const std::string arch_name = args.require("arch");
  const auto arch = parse_vit_arch(arch_name);
  if (!arch) fail<UsageError>("features: option '--arch' must be one of aim, clip, spai-vit, timm-vit; got '", arch_name, "'");
  const std::string weights_path = args.require("weights"), input = args.require("input"), output = args.require("output");
  VitFeatureOptions opt;
  if (auto l = args.get("layers")) opt.layers = parse_layer_range(*l);
  opt.pool = args.get_choice<VitPool>("pool", {{"cls", VitPool::Cls}, {"mean", VitPool::Mean}, {"probe", VitPool::Probe}}).value_or(VitPool::Default);
  if (auto h = args.get_int("heads", 1, 4096)) opt.heads = *h;
  opt.project = args.has("project");
  const VitCrop crop = args.get_choice<VitCrop>("crop", {{"rich", VitCrop::Rich}, {"center", VitCrop::Center}}).value_or(VitCrop::Default);
  const int64_t batch = args.get_int("batch", 1, 4096).value_or(8);
  const uint64_t seed = static_cast<uint64_t>(args.get_int("seed", 0, (int64_t{1} << 62)).value_or(0));
  const Device device = args.get_choice<Device>("device", {{"cpu", Device::CPU}, {"cuda", Device::CUDA}}).value_or(Device::CPU);
  const std::string precision = args.get("precision").value_or("f32");
  if (precision != "f32" && precision != "tf32" && precision != "f16" && precision != "bf16")
    fail<UsageError>("features: option '--precision' must be one of f32, tf32, f16, bf16; got '", precision, "'");
  if (device == Device::CPU && precision != "f32") fail<UsageError>("features: --precision ", precision, " needs --device cuda (the CPU runs f32)");
#if !defined(GENSCOPE_CLI_CUDA)
  if (device == Device::CUDA) fail<UsageError>("features: --device cuda: this genscope was built without CUDA (GENSCOPE_CUDA=OFF)");
#endif

  const std::vector<std::string> paths = collect_inputs(input);
  const VitFeatureExtractor model = VitFeatureExtractor::load(nn::Weights::open(weights_path), *arch, opt);
  // The rows of one batch: the CPU model, or its copy on the GPU.
  std::function<Tensor(const Tensor&)> features_of = [&model](const Tensor& x) { return model.features(x); };
#if defined(GENSCOPE_CLI_CUDA)
  if (device == Device::CUDA) features_of = make_cuda_vit_features(model, precision);
#endif
  const int64_t D = model.feature_dim(), size = model.input_size();

  std::vector<float> rows;
  std::vector<std::string> kept;
  int64_t skipped = 0, done = 0;
  const bool tty = isatty(STDERR_FILENO) != 0;
  const auto start = std::chrono::steady_clock::now();
  auto progress = [&](bool final_line) {
    if (!tty) return;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "\rfeatures: %lld/%zu images, %.2f images/s%s", static_cast<long long>(done), paths.size(),
                 secs > 0 ? static_cast<double>(done) / secs : 0.0, final_line ? "\n" : "");
    std::fflush(stderr);
  };
  for (size_t first = 0; first < paths.size(); first += static_cast<size_t>(batch)) {
    const size_t last = std::min(paths.size(), first + static_cast<size_t>(batch));
    std::vector<Tensor> pixels;
    std::vector<std::string> names;
    for (size_t i = first; i < last; ++i) {
      try {
        if (!json::is_valid_utf8(paths[i])) fail<InputError>(paths[i], ": the path is not valid UTF-8");
        pixels.push_back(vit_pixels(load_image_rgb(paths[i]), *arch, crop, seed, size));
        names.push_back(paths[i]);
      } catch (const InputError& e) {
        if (tty) std::fprintf(stderr, "\n");
        std::fprintf(stderr, "genscope features: skipping %s: %s\n", paths[i].c_str(), e.what());
        ++skipped;
      }
      ++done;
    }
    if (!pixels.empty()) {
      Tensor x = Tensor::empty({static_cast<int64_t>(pixels.size()), 3, size, size}, DType::F32);
      for (size_t i = 0; i < pixels.size(); ++i) x.select(0, static_cast<int64_t>(i)).copy_from(pixels[i]);
      const Tensor f = features_of(x).contiguous();
      rows.insert(rows.end(), f.data<float>(), f.data<float>() + f.numel());
      kept.insert(kept.end(), names.begin(), names.end());
    }
    progress(false);
  }
  progress(true);

  Tensor features = Tensor::empty({static_cast<int64_t>(kept.size()), D}, DType::F32);
  std::copy(rows.begin(), rows.end(), features.data<float>());
  std::string paths_json = "[";
  for (size_t i = 0; i < kept.size(); ++i) paths_json += (i ? "," : "") + json::quote(kept[i]);
  paths_json += "]";
  save_safetensors(output, {{"features", features}},
                   {{"paths", paths_json}, {"arch", arch_name}, {"weights", weights_path}});
  std::printf("%zu images -> features [%zu, %lld] written to %s\n", kept.size(), kept.size(), static_cast<long long>(D), output.c_str());
  if (skipped) {
    std::fprintf(stderr, "genscope features: %lld of %zu images could not be read and were skipped\n", static_cast<long long>(skipped), paths.size());
    return 2;
  }
  return 0;
}

}  // namespace genscope::cli
