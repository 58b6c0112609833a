// genscope reconstruct --vae W.safetensors --input DIR --output DIR [--sample|--mode] [--seed S]
//                      [--tile N] [--device cpu|cuda] [--resume]
// The negatives of UAR and RAID: every image under DIR through the SD VAE and back, as their
// reconstruct.py does it — RGB at native resolution in [0, 1], ×2 − 1, encode, posterior sample
// (seeded: torch.manual_seed(S) before each image's latent_dist.sample()) or mean, decode,
// (y/2 + 0.5) clamped to [0, 1], saved as PNG (torchvision save_image rounding) under the same
// relative path with the extension .png. Sizes that are not multiples of 8 are reflect-padded
// and cropped back; large images run in blended tiles (models/vae_tiling.hpp).
//
// Unreadable images are skipped and named, the rest is done, and the exit code is 2. Each PNG is
// written atomically, so an interrupted run leaves only complete files and --resume skips them.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "args.hpp"
#include "genscope/io/image.hpp"
#include "genscope/io/image_write.hpp"
#include "genscope/models/vae.hpp"
#include "genscope/models/vae_tiling.hpp"
#if defined(GENSCOPE_CLI_CUDA)
#include "cuda_vae.hpp"
#endif

namespace genscope::cli {

// Files genscope's image reader handles, by extension (case-insensitive).
inline bool is_image_path(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const char* const kExts[] = {".png", ".jpg", ".jpeg", ".bmp", ".tga", ".gif", ".ppm", ".pgm", ".pnm"};
  return std::any_of(std::begin(kExts), std::end(kExts), [&](const char* e) { return ext == e; });
}

// U8 [H, W, 3] → f32 [1, 3, H, W] in [−1, 1]: ToTensor() then ×2 − 1.
inline Tensor image_to_vae_input(const Tensor& hwc) {
  const int64_t h = hwc.size(0), w = hwc.size(1);
  Tensor x = Tensor::empty({1, 3, h, w}, DType::F32);
  const uint8_t* src = hwc.contiguous().data<uint8_t>();
  float* dst = x.data<float>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < h * w; ++i) dst[c * h * w + i] = static_cast<float>(src[i * 3 + c]) / 255.0f * 2.0f - 1.0f;
  return x;
}

// (y/2 + 0.5) clamped to [0, 1] (to_u8_image clamps again after ×255, harmlessly).
inline Tensor vae_output_to_image(const Tensor& y) {
  Tensor t = y.contiguous().clone();
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::clamp(p[i] / 2.0f + 0.5f, 0.0f, 1.0f);
  return to_u8_image(t);
}

inline int run_reconstruct(int argc, char** argv) {
  namespace fs = std::filesystem;
  Args args("reconstruct", "--vae W.safetensors --input DIR --output DIR [options]",
            {{"vae", "FILE", "SD VAE weights (diffusers or original single-file layout, f32/f16/bf16)"},
             {"input", "DIR", "folder of images (searched recursively)"},
             {"output", "DIR", "where the PNGs go, under the same relative paths"},
             {"sample", "", "decode a posterior sample (default; UAR/RAID's reconstruct.py)"},
             {"mode", "", "decode the posterior mean instead of a sample"},
             {"seed", "S", "seed of each image's sample: torch.manual_seed(S) (default 0)"},
             {"tile", "N", "tile size in pixels, a multiple of 8 (default: chosen from a 2 GiB budget)"},
             {"device", "NAME", "cpu (default) or cuda"},
             {"resume", "", "skip images whose output PNG already exists"}});
  if (!args.parse(argc, argv, 2)) return 0;
  if (!args.positionals().empty()) fail<UsageError>("reconstruct: unexpected argument '", args.positionals()[0], "'");
  if (args.has("sample") && args.has("mode")) fail<UsageError>("reconstruct: --sample and --mode exclude each other");
  const std::string vae_path = args.require("vae");
  const fs::path input = args.require("input"), output = args.require("output");
  models::VaeRunOptions opts;
  opts.sample = !args.has("mode");
  opts.seed = static_cast<uint64_t>(args.get_int("seed", 0, (int64_t{1} << 32) - 1).value_or(0));
  opts.tile = args.get_int("tile", 16, 1 << 20).value_or(0);
  if (opts.tile % 8 != 0) fail<UsageError>("reconstruct: --tile ", opts.tile, " must be a multiple of 8");
  const bool cuda = args.get_choice<bool>("device", {{"cpu", false}, {"cuda", true}}).value_or(false);
  const bool resume = args.has("resume");
#if defined(GENSCOPE_CLI_CUDA)
  if (cuda) require_cuda_vae_device();
#else
  if (cuda) fail<DeviceError>("reconstruct: --device cuda: this genscope was built without CUDA (GENSCOPE_CUDA=OFF); use --device cpu");
#endif

  std::error_code ec;
  if (!fs::is_directory(input, ec)) fail<IoError>(input.string(), ": not a readable directory (--input)");
  std::vector<fs::path> images;
  for (auto it = fs::recursive_directory_iterator(input, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec) && is_image_path(it->path())) images.push_back(it->path());
  if (ec) fail<IoError>(input.string(), ": cannot list: ", ec.message());
  std::sort(images.begin(), images.end());

  // One round trip for every image, on the chosen device; the rest of the command is shared.
  std::function<Tensor(const Tensor&)> roundtrip;
  if (cuda) {
#if defined(GENSCOPE_CLI_CUDA)
    roundtrip = make_cuda_vae_roundtrip(models::AutoencoderKL::load(vae_path), opts);  // host copy freed once uploaded
#endif
  } else {
    auto vae = std::make_shared<const models::AutoencoderKL>(models::AutoencoderKL::load(vae_path));
    roundtrip = [vae, opts](const Tensor& x) { return models::vae_roundtrip(*vae, x, opts); };
  }
  const bool tty = ::isatty(STDERR_FILENO);
  std::vector<std::string> failed;
  std::map<fs::path, fs::path> claimed;  // output → the input that wrote it
  int64_t done = 0, skipped = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t n = 0; n < images.size(); ++n) {
    const fs::path& in = images[n];
    const fs::path out = (output / fs::relative(in, input)).replace_extension(".png");
    if (auto [it, fresh] = claimed.emplace(out, in); !fresh) {
      failed.push_back(cat(in.string(), ": its output ", out.string(), " is also ", it->second.string(), "'s; skipped"));
      continue;
    }
    if (resume && fs::exists(out, ec)) {
      ++skipped;
      continue;
    }
    try {
      const Tensor image = load_image_rgb(in.string());
      const Tensor y = roundtrip(image_to_vae_input(image));
      fs::create_directories(out.parent_path(), ec);
      if (ec) fail<IoError>(out.parent_path().string(), ": cannot create: ", ec.message());
      save_png(out.string(), vae_output_to_image(y));
      ++done;
    } catch (const InputError& e) {
      failed.push_back(e.what());
    }
    if (tty) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\r[%zu/%zu] %.2f images/s  %s\033[K", n + 1, images.size(), done / std::max(s, 1e-9),
                   fs::relative(in, input).c_str());
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (tty) std::fprintf(stderr, "\n");
  std::printf("reconstruct: %lld written, %lld already done, %zu failed, %.1f s (%.2f images/s) -> %s\n",
              static_cast<long long>(done), static_cast<long long>(skipped), failed.size(), secs,
              done / std::max(secs, 1e-9), output.c_str());
  for (const auto& f : failed) std::fprintf(stderr, "genscope reconstruct: skipped %s\n", f.c_str());
  return failed.empty() ? 0 : 2;
}

}  // namespace genscope::cli
