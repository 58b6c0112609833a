// genscope preprocess IMAGE [--resize N --interp bilinear|bicubic] [--crop N] [--mean … --std …]
//                          --out x.safetensors
// Writes what a model sees for an image: torchvision's Resize(N) → CenterCrop(N) → ToTensor() →
// Normalize(mean, std) on the PIL image, as a float32 tensor `pixel_values` [1, 3, H, W]. The
// steps are recorded in the file's metadata. The output is written atomically: a bad image
// leaves no file behind and an existing --out untouched.
#pragma once

#include <cstdio>
#include <sstream>
#include <string>

#include "args.hpp"
#include "genscope/io/image.hpp"
#include "genscope/io/preprocess.hpp"
#include "genscope/io/safetensors.hpp"

namespace genscope::cli {

inline std::string join_floats(const std::vector<float>& v) {
  std::ostringstream os;
  os.precision(9);  // enough digits to read the same float32 back
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
}

inline int run_preprocess(int argc, char** argv) {
  Args args("preprocess", "IMAGE [options] --out X.safetensors",
            {{"resize", "N", "resize the shorter side to N pixels (torchvision Resize(N) on a PIL image)"},
             {"interp", "NAME", "bilinear or bicubic (default bicubic), PIL's antialiased filters"},
             {"crop", "N", "center-crop to N x N (torchvision CenterCrop; pads with zeros if smaller)"},
             {"mean", "M M M", "per-channel mean subtracted after scaling to [0, 1] (default 0 0 0)", true},
             {"std", "S S S", "per-channel std divided by (default 1 1 1)", true},
             {"max-pixels", "N", "refuse images with more pixels than this (default 178956970, PIL's limit)"},
             {"out", "FILE", "output .safetensors file (written atomically)"}});
  if (!args.parse(argc, argv, 2)) return 0;
  if (args.positionals().size() != 1) fail<UsageError>("preprocess: expected exactly one IMAGE, got ", args.positionals().size());
  const std::string image_path = args.positionals()[0];
  const std::string out = args.require("out");

  Preprocess pre;
  if (auto n = args.get_int("resize", 1, 65536)) pre.resize = static_cast<int>(*n);
  pre.interp = args.get_choice<Interp>("interp", {{"bilinear", Interp::Bilinear}, {"bicubic", Interp::Bicubic}}).value_or(Interp::Bicubic);
  if (auto n = args.get_int("crop", 1, 65536)) pre.crop = static_cast<int>(*n);
  pre.mean = args.has("mean") ? args.get_floats("mean") : std::vector<float>{0, 0, 0};
  pre.std = args.has("std") ? args.get_floats("std") : std::vector<float>{1, 1, 1};
  if (pre.mean.size() != 3) fail<UsageError>("preprocess: --mean needs 3 values (R G B), got ", pre.mean.size());
  if (pre.std.size() != 3) fail<UsageError>("preprocess: --std needs 3 values (R G B), got ", pre.std.size());
  for (float s : pre.std)
    if (s == 0.0f) fail<UsageError>("preprocess: --std values must be non-zero");
  ImageLoadOptions load;
  if (auto n = args.get_int("max-pixels", 1, int64_t{1} << 40)) load.max_pixels = static_cast<uint64_t>(*n);

  const Tensor image = load_image_rgb(image_path, load);
  const Tensor chw = pre.run(image);
  const Tensor batch = chw.unsqueeze(0);
  save_safetensors(out, {{"pixel_values", batch}},
                   {{"source", image_path},
                    {"source_size", cat(image.size(1), "x", image.size(0))},
                    {"resize", pre.resize ? cat(*pre.resize) : "none"},
                    {"interp", pre.interp == Interp::Bilinear ? "bilinear" : "bicubic"},
                    {"crop", pre.crop ? cat(*pre.crop) : "none"},
                    {"mean", join_floats(pre.mean)},
                    {"std", join_floats(pre.std)},
                    {"layout", "NCHW float32, RGB"}});
  std::printf("%s: %dx%d -> %s written to %s\n", image_path.c_str(), static_cast<int>(image.size(1)),
              static_cast<int>(image.size(0)), batch.str().c_str(), out.c_str());
  return 0;
}

}  // namespace genscope::cli
